//! The scenarios, grouped by spec area. Each is an `async fn` generic over
//! [`Target`] whose doc comment cites the PROTOCOL section it checks.
//!
//! [`for_each_scenario!`](crate::for_each_scenario) is the one list of
//! them: a target's test file passes it a macro that turns each entry into
//! a test, and [`all`] builds the same list at run time.

use std::future::Future;
use std::pin::Pin;

use crate::target::Target;

pub mod append;
pub mod caching;
pub mod close;
pub mod cors;
pub mod create;
pub mod delete;
pub mod forks;
pub mod json;
pub mod limits;
pub mod long_poll;
pub mod producers;
pub mod read;
pub mod restart;
pub mod sse;
pub mod stream_seq;
pub mod ttl;

/// A boxed scenario future borrowing its target.
pub type ScenarioFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One scenario, runnable against any target `T`.
pub struct Scenario<T> {
    /// The spec-area module, e.g. `long_poll`.
    pub module: &'static str,
    /// The scenario's function name.
    pub name: &'static str,
    /// Runs the scenario; panics on a failed check.
    pub run: for<'a> fn(&'a mut T) -> ScenarioFuture<'a>,
}

/// Calls `$callback! { ($($args)*) module: [scenario, ...], ... }` with
/// every scenario of the suite, grouped by module.
///
/// A scenario that fails because of a known engine bug is commented out
/// here with a `// BUG:` note until the bug is fixed.
#[macro_export]
macro_rules! for_each_scenario {
    ($callback:ident!($($args:tt)*)) => {
        $callback! {
            ($($args)*)
            create: [
                put_creates_stream,
                put_location_names_the_stream,
                put_is_idempotent,
                put_conflicting_content_type,
                put_conflicting_ttl,
                put_default_content_type,
                put_with_initial_body,
                empty_stream_offset_is_real,
                put_closure_status_must_match,
                put_rejects_malformed_ttl,
                put_validates_expires_at,
                put_response_is_not_cacheable,
            ],
            append: [
                append_returns_increasing_offsets,
                append_to_missing_stream,
                append_content_type_must_match,
                append_empty_body_is_rejected,
                append_without_content_type,
                append_preserves_binary,
                offsets_are_stable,
                closed_wins_over_other_conflicts,
                rejected_append_changes_nothing,
            ],
            json: [
                arrays_flatten_one_level,
                empty_arrays,
                invalid_json_is_rejected,
                reads_from_offsets_are_arrays,
                charset_parameter_keeps_json_mode,
                offset_now_is_empty_array,
                chunks_never_split_messages,
                pretty_printed_messages,
            ],
            read: [
                catch_up_returns_everything,
                minus_one_means_beginning,
                read_at_tail_is_empty,
                malformed_offsets_are_rejected,
                unknown_query_parameters_are_ignored,
                live_requires_offset,
                offset_now_catch_up,
                missing_stream_is_404_in_every_mode,
                head_reports_metadata,
                head_reports_expiry,
                unknown_method_and_bare_root,
                reads_see_acknowledged_writes,
            ],
            long_poll: [
                data_available_answers_at_once,
                append_wakes_waiting_poll,
                timeout_answers_204,
                poll_waits_until_timeout,
                offset_now_waits_for_new_data,
                offset_now_timeout_offset_reads_next_append,
                closed_stream_answers_immediately,
                close_wakes_waiting_poll,
                append_and_close_wakes_with_final_data,
                delete_ends_waiting_poll,
                append_wakes_only_its_stream,
                long_poll_answers_carry_security_headers,
            ],
            sse: [
                sse_response_headers,
                base64_header_follows_content_type,
                catch_up_then_close_at_eof,
                first_control_reports_tail,
                live_appends_are_delivered,
                append_and_close_race,
                line_breaks_cannot_inject_events,
                text_lines_use_bare_data_prefix,
                binary_data_is_base64,
                json_data_events_are_arrays,
                offset_now_skips_history,
                offset_now_on_closed_stream,
                sse_ends_after_reconnect_interval,
                delete_ends_sse,
                control_offsets_increase,
                close_only_sends_closed_control,
                sse_cursor_moves_past_echo,
                many_readers_each_get_their_events,
            ],
            producers: [
                first_append_is_200,
                duplicates_are_204,
                epochs_fence_zombies,
                new_epoch_must_start_at_zero,
                gaps_are_409,
                unknown_producer_must_start_at_zero,
                malformed_producer_headers,
                producers_are_independent,
                producer_state_is_per_stream,
                dedupe_runs_before_stream_seq,
                refused_append_keeps_producer_state,
                producer_appends_follow_append_rules,
                producer_close_is_idempotent,
                producer_close_only_is_204,
                closed_stream_refuses_other_producers,
                stale_epoch_after_close,
            ],
            stream_seq: [
                seq_is_lexicographic,
                seq_must_strictly_increase,
                appends_without_seq_keep_it,
                seq_is_per_stream,
                close_checks_seq,
            ],
            close: [
                close_only_closes,
                close_is_idempotent,
                close_ignores_content_type,
                append_and_close,
                append_after_close_is_409,
                create_closed,
                close_missing_stream,
                closed_reads_signal_eof,
                closure_found_at_next_offset,
                delete_closed_stream,
                only_true_closes,
            ],
            delete: [
                delete_removes_stream,
                delete_missing_stream,
                recreate_after_delete_is_fresh,
                delete_is_per_stream,
            ],
            forks: [
                fork_reads_source_then_own,
                fork_at_offsets,
                fork_shares_offset_space,
                fork_errors,
                fork_is_idempotent,
                fork_inherits_content_type,
                fork_of_closed_source_is_open,
                closure_is_per_stream,
                fork_has_fresh_writer_state,
                fork_sub_offsets,
                fork_sub_offset_errors,
                sub_offset_stops_at_append_boundary,
                fork_sub_offset_chain,
                fork_chains_stitch,
                json_fork_reads_one_array,
                fork_long_poll_ignores_source_appends,
                fork_sse_stitches,
                soft_deleted_source,
                last_fork_delete_cleans_source,
                cascade_cleans_chain,
                fork_references_are_exact,
                fork_outlives_source,
            ],
            ttl: [
                ttl_expires_idle_stream,
                head_does_not_renew,
                reads_renew_ttl,
                writes_renew_ttl,
                long_poll_renews_at_start,
                expiry_ends_live_reads,
                expires_at_is_absolute,
                past_expires_at,
                expired_path_can_be_recreated,
                fork_expiry_inheritance,
                fork_ttl_is_independent,
                expired_source_keeps_data_for_forks,
            ],
            caching: [
                etag_and_304,
                etag_changes_on_append,
                etag_changes_on_close,
                etag_differs_after_recreate,
                cache_control_per_response,
                cursor_is_the_interval,
                echoed_cursor_moves_forward,
                cursors_never_go_backwards,
            ],
            cors: [
                security_headers_everywhere,
                errors_are_typed_and_uncached,
                preflight_allows_protocol,
                protocol_headers_are_exposed,
                writes_get_cors_headers_when_a_browser_asks,
            ],
            limits: [
                body_over_limit_is_413,
                catch_up_is_chunked,
                closed_flag_only_on_last_chunk,
                sse_catch_up_of_large_stream,
            ],
            restart: [
                data_survives_restart,
                closure_survives_restart,
                producer_state_survives_restart,
                stream_seq_survives_restart,
                forks_survive_restart,
                fork_reference_counts_reload,
                expiry_survives_restart,
                expired_streams_stay_gone,
                delete_survives_restart,
                etag_unique_across_restart,
                repeated_restarts,
            ],
        }
    };
}

macro_rules! scenario_list {
    (() $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        /// Every scenario, in suite order.
        pub fn all<T: Target>() -> Vec<Scenario<T>> {
            vec![$($(Scenario {
                module: stringify!($module),
                name: stringify!($name),
                run: |t| Box::pin($module::$name(t)),
            },)*)*]
        }
    };
}

crate::for_each_scenario!(scenario_list!());
