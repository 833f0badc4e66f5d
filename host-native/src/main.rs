//! `durable-streams-server`: the command line; see
//! [`durable_streams_server::cli`] for the subcommands and
//! [`durable_streams_server::config`] for the settings.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: under many small requests glibc's
/// `_int_malloc`/`malloc_consolidate` were ~20% of the server's CPU (issue 8).
#[global_allocator]
static ALLOCATOR: durable_streams_server::allocator::Allocator =
    durable_streams_server::allocator::Allocator;

fn main() -> ExitCode {
    durable_streams_server::cli::run()
}
