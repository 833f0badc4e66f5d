//! `durable-streams-bench`: the benchmark of issue 8, and its baseline.
//!
//! `durable-streams-bench run --target SPEC …` starts each server under test
//! on a free loopback port (a fresh process and data directory per run),
//! drives the scenarios with one load-generator thread over keep-alive
//! connections, verifies what each scenario measured, and prints a table
//! (and JSON with `--out`). Throughputs of the append scenarios are also
//! reported as a ratio to a bare hyper server (`serve-bare`) measured in the
//! same run, alternating bare, target, bare, target, … The bare server also
//! runs fanout-sse, as the floor of an SSE fan-out on the same stack.
//!
//! `durable-streams-bench serve-bare --bind 127.0.0.1:PORT` is that
//! baseline: tokio's multi-threaded runtime and hyper, answering 204 (and
//! relaying each POST body to the open `live=sse` bodies).

#[path = "../bench/arrival.rs"]
mod arrival;
#[path = "../bench/bare.rs"]
mod bare;
#[path = "../bench/client.rs"]
mod client;
#[path = "../bench/scenarios.rs"]
mod scenarios;
#[path = "../bench/stats.rs"]
mod stats;
#[path = "../bench/target.rs"]
mod target;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;

use scenarios::{BodyKind, Ctx, Live, Opts, Report, Shape};
use target::{Kind, TargetSpec};

#[derive(Parser, Debug)]
#[command(
    name = "durable-streams-bench",
    about = "Benchmark of Durable Streams servers (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The baseline: a bare hyper server answering 204 to everything.
    ServeBare {
        /// Listen address (loopback).
        #[arg(long, default_value = "127.0.0.1:4499")]
        bind: SocketAddr,
        /// Worker threads; 0 = one per core, like the server.
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Runs scenarios against targets and prints the results.
    Run(Box<RunArgs>),
}

/// Every scenario, in the order they run.
const ALL: &[&str] = &[
    "append-many",
    "append-hot",
    "json-append",
    "append-c1",
    "catchup-read",
    "fanout-sse",
    "fanout-longpoll",
    "many-streams",
    "restart",
];

/// Scenarios whose throughput is compared with the bare server.
const WITH_BASELINE: &[&str] = &["append-many", "append-hot", "json-append", "append-c1"];
/// Scenarios the bare server also runs, as the floor of what the stack can
/// do (no ratio): the SSE fan-out (see `bare.rs`).
const WITH_FLOOR: &[&str] = &["fanout-sse"];

/// Scenarios run `--rounds` times, alternating targets: the throughputs,
/// and the fan-outs (one round's p99 is the tail of one sample of 500
/// readers; it moved by a millisecond between runs of the same binary).
const WITH_ROUNDS: &[&str] = &[
    "append-many",
    "append-hot",
    "json-append",
    "append-c1",
    "fanout-sse",
    "fanout-longpoll",
];

/// True when the bare server runs `scenario` too.
fn bare_runs(scenario: &str) -> bool {
    WITH_BASELINE.contains(&scenario) || WITH_FLOOR.contains(&scenario)
}

#[derive(Parser, Debug)]
struct RunArgs {
    /// A server under test (repeatable):
    /// `name=N;durable=true|false;base=/v1/stream/;cmd=PROGRAM ARGS…` with
    /// `{port}`, `{addr}` and `{dir}` placeholders in the command, or
    /// `name=N;url=127.0.0.1:PORT[;pid=P]` for a running server.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Comma-separated scenarios (default: all): append-many, append-hot,
    /// json-append, append-c1, catchup-read, fanout-sse, fanout-longpoll,
    /// many-streams, restart.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Rounds of the append and fan-out scenarios (bare and targets
    /// alternate each round; the results are the medians). Odd, so a median
    /// is one round's value, not the mean of a fast round and a slow one.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Skip the bare hyper baseline.
    #[arg(long)]
    no_bare: bool,
    /// Worker threads of the bare server (0 = one per core).
    #[arg(long, default_value_t = 0)]
    bare_threads: usize,
    /// Connections (writers) of append-many, append-hot, json-append; also
    /// used to build streams in catchup-read, many-streams and restart.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Seconds each append scenario runs.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Body bytes of append-many, append-hot and append-c1.
    #[arg(long, default_value_t = 128)]
    append_bytes: usize,
    /// Approximate bytes of each JSON object in json-append.
    #[arg(long, default_value_t = 200)]
    json_bytes: usize,
    /// MiB in the catch-up stream.
    #[arg(long, default_value_t = 64)]
    catchup_mib: u64,
    /// Append size used to build the catch-up stream.
    #[arg(long, default_value_t = 1024)]
    catchup_append_bytes: usize,
    /// Times the catch-up stream is read (the median is reported).
    #[arg(long, default_value_t = 3)]
    catchup_reads: usize,
    /// Live readers of fanout-sse and fanout-longpoll.
    #[arg(long, default_value_t = 500)]
    readers: usize,
    /// Appends per second of the fan-out writer.
    #[arg(long, default_value_t = 50.0)]
    fanout_rate: f64,
    /// Seconds the fan-out writer writes.
    #[arg(long, default_value_t = 10.0)]
    fanout_secs: f64,
    /// Streams created by many-streams.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Initial bytes of each stream of many-streams.
    #[arg(long, default_value_t = 1024)]
    stream_bytes: usize,
    /// Streams written before restart restarts the server.
    #[arg(long, default_value_t = 10_000)]
    restart_streams: usize,
    /// MiB written (over those streams) before restart restarts the server.
    #[arg(long, default_value_t = 1024)]
    restart_mib: u64,
    /// Restarts measured in the restart scenario.
    #[arg(long, default_value_t = 2)]
    restart_times: usize,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Data directories of spawned servers go under here (default: the
    /// system temp directory); each is removed after its run.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Server logs go here.
    #[arg(long, default_value = "target/bench/logs")]
    logs: PathBuf,
    /// Write every run and the summary as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the summary as a Markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::ServeBare { bind, threads } => {
            if !bind.ip().is_loopback() {
                eprintln!("serve-bare listens on loopback only");
                return ExitCode::from(2);
            }
            match bare::serve(bind, threads) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("serve-bare: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run(args) => run_main(*args),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn run_main(args: RunArgs) -> ExitCode {
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("durable-streams-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// One run of one scenario against one target.
struct RunRecord {
    scenario: String,
    target: String,
    round: usize,
    load1: f64,
    report: Report,
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

async fn run(args: RunArgs) -> Result<bool, String> {
    let mut targets = Vec::new();
    for t in &args.targets {
        targets.push(TargetSpec::parse(t)?);
    }
    let scenarios: Vec<String> = if args.scenarios.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    for s in &scenarios {
        if !ALL.contains(&s.as_str()) {
            return Err(format!("unknown scenario `{s}`; known: {}", ALL.join(", ")));
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bare = TargetSpec {
        name: "bare-hyper".into(),
        durable: false,
        base: "/v1/stream/".into(),
        kind: Kind::Spawn(vec![
            exe.display().to_string(),
            "serve-bare".into(),
            "--bind".into(),
            "{addr}".into(),
            "--threads".into(),
            args.bare_threads.to_string(),
        ]),
    };
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("ds-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    std::fs::create_dir_all(&args.logs).map_err(|e| format!("{}: {e}", args.logs.display()))?;
    let opts = Opts {
        conns: args.conns,
        duration: Duration::from_secs_f64(args.duration_secs),
        append_bytes: args.append_bytes,
        json_bytes: args.json_bytes,
        catchup_bytes: args.catchup_mib << 20,
        catchup_append_bytes: args.catchup_append_bytes,
        catchup_reads: args.catchup_reads,
        readers: args.readers,
        fanout_rate: args.fanout_rate,
        fanout_duration: Duration::from_secs_f64(args.fanout_secs),
        streams: args.streams,
        stream_bytes: args.stream_bytes,
        restart_streams: args.restart_streams,
        restart_bytes: args.restart_mib << 20,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    eprintln!(
        "durable-streams-bench: {} target(s), scenarios {}, load {:.2}",
        targets.len(),
        scenarios.join(","),
        load1()
    );

    let mut records = Vec::new();
    for scenario in &scenarios {
        let with_bare = bare_runs(scenario) && !args.no_bare;
        let rounds = if WITH_ROUNDS.contains(&scenario.as_str()) {
            args.rounds.max(1)
        } else {
            1
        };
        for round in 0..rounds {
            let mut order: Vec<(&TargetSpec, bool)> = Vec::new();
            if with_bare {
                order.push((&bare, true));
            }
            order.extend(targets.iter().map(|t| (t, false)));
            for (spec, is_bare) in order {
                if scenario == "restart" && !(spec.durable && spec.spawnable()) {
                    continue;
                }
                let prefix = format!("b{stamp}-{scenario}-{round}");
                let dir = work.join(format!("{}-{scenario}-{round}", spec.name));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let log = args.logs.join(format!("{}.log", spec.name));
                let load = load1();
                let report = run_one(
                    scenario,
                    spec,
                    is_bare,
                    &dir,
                    &log,
                    prefix,
                    &opts,
                    args.restart_times,
                )
                .await;
                let _ = std::fs::remove_dir_all(&dir);
                eprintln!(
                    "  {scenario:<16} {:<14} round {}  {}  [cpu: server {:.2} loadgen {:.2} other {:.2}]{}",
                    spec.name,
                    round + 1,
                    headline(scenario, &report),
                    m(&report, "cpu_server_cores"),
                    m(&report, "cpu_loadgen_cores"),
                    m(&report, "cpu_other_cores"),
                    if report.errors.count > 0 {
                        format!(
                            "  ERRORS {}: {}",
                            report.errors.count,
                            report.errors.first.join(" | ")
                        )
                    } else {
                        String::new()
                    }
                );
                records.push(RunRecord {
                    scenario: scenario.clone(),
                    target: spec.name.clone(),
                    round,
                    load1: load,
                    report,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let mut names = Vec::new();
    if !args.no_bare && scenarios.iter().any(|s| bare_runs(s)) {
        names.push(bare.name.clone());
    }
    names.extend(targets.iter().map(|t| t.name.clone()));
    let summary = summarize(&records, &scenarios, &names);
    let table = markdown(&summary, &scenarios, &names);
    println!("{table}");
    let ok = records.iter().all(|r| r.report.errors.count == 0);
    if !ok {
        println!("Errors:");
        for r in records.iter().filter(|r| r.report.errors.count > 0) {
            println!(
                "  {} / {} round {}: {} error(s): {}",
                r.scenario,
                r.target,
                r.round + 1,
                r.report.errors.count,
                r.report.errors.first.join(" | ")
            );
        }
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.out {
        let runs: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario,
                    "target": r.target,
                    "round": r.round + 1,
                    "load1_before": r.load1,
                    "metrics": clean(&r.report.metrics),
                    "errors": r.report.errors.count,
                    "error_messages": r.report.errors.first,
                    "checks": r.report.checks,
                })
            })
            .collect();
        let doc = json!({
            "tool": "durable-streams-bench",
            "started_unix_ms": stamp as u64,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "options": format!("{opts:?}"),
            "runs": runs,
            "summary": summary,
        });
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ok)
}

fn clean(m: &BTreeMap<String, f64>) -> serde_json::Value {
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.is_finite() { json!(v) } else { json!(null) },
                )
            })
            .collect(),
    )
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    scenario: &str,
    spec: &TargetSpec,
    bare: bool,
    dir: &std::path::Path,
    log: &std::path::Path,
    prefix: String,
    opts: &Opts,
    restart_times: usize,
) -> Report {
    let mut server = match spec.start(dir, log).await {
        Ok(s) => s,
        Err(e) => {
            let mut r = Report::default();
            r.errors.push(format!("start {}: {e}", spec.name));
            return r;
        }
    };
    let ctx = Ctx {
        addr: server.addr,
        base: spec.base.clone(),
        bare,
        prefix,
        opts: opts.clone(),
    };
    let o = opts;
    let cpu = target::CpuSnapshot::take(server.pid);
    let mut report = match scenario {
        "append-many" => {
            scenarios::append(
                &ctx,
                o.conns,
                Shape::OwnStream,
                BodyKind::Bytes(o.append_bytes),
            )
            .await
        }
        "append-hot" => {
            scenarios::append(
                &ctx,
                o.conns,
                Shape::OneStream,
                BodyKind::Bytes(o.append_bytes),
            )
            .await
        }
        "json-append" => {
            scenarios::append(
                &ctx,
                o.conns,
                Shape::OwnStream,
                BodyKind::Json(o.json_bytes),
            )
            .await
        }
        "append-c1" => {
            scenarios::append(&ctx, 1, Shape::OwnStream, BodyKind::Bytes(o.append_bytes)).await
        }
        "catchup-read" => scenarios::catchup(&ctx, || server.memory()).await,
        "fanout-sse" => scenarios::fanout(&ctx, Live::Sse).await,
        "fanout-longpoll" => scenarios::fanout(&ctx, Live::LongPoll).await,
        "many-streams" => scenarios::many_streams(&ctx, || server.memory()).await,
        "restart" => {
            let mut report = scenarios::restart_populate(&ctx).await;
            let mut ready = Vec::new();
            for i in 0..restart_times.max(1) {
                if report.errors.count > 0 {
                    break;
                }
                let stopped = server.stop(Duration::from_secs(60)).await;
                report.metrics.insert(
                    format!("shutdown_{}_ms", i + 1),
                    stopped.as_secs_f64() * 1000.0,
                );
                let t0 = Instant::now();
                if let Err(e) = server.spawn() {
                    report.errors.push(e);
                    break;
                }
                match scenarios::first_head(&ctx, t0, Duration::from_secs(300)).await {
                    Ok(d) => ready.push(d.as_secs_f64() * 1000.0),
                    Err(e) => {
                        let why = server.exited().unwrap_or_default();
                        report.errors.push(format!("{e} {why}"));
                        break;
                    }
                }
                if let Some((rss, _)) = server.memory() {
                    report
                        .metrics
                        .insert("rss_after_restart_mib".into(), rss as f64 / 1048576.0);
                }
                report
                    .errors
                    .merge(scenarios::restart_verify(&ctx, 200).await);
            }
            for (i, ms) in ready.iter().enumerate() {
                report.metrics.insert(format!("ready_{}_ms", i + 1), *ms);
            }
            report
                .metrics
                .insert("ready_ms".into(), stats::median(&ready));
            report
                .checks
                .push("after each restart: 200 sampled streams read back byte-exact".into());
            report
        }
        other => {
            let mut r = Report::default();
            r.errors.push(format!("unknown scenario {other}"));
            r
        }
    };
    let (server_cores, loadgen_cores, other_cores, secs) = cpu.since(server.pid);
    if scenario != "restart" {
        // (The restart scenario replaces the process: its counters restart.)
        report
            .metrics
            .insert("cpu_server_cores".into(), server_cores);
        let deliveries = m(&report, "deliveries");
        if server.pid.is_some() && deliveries > 0.0 {
            // A fan-out's server CPU per delivery, setup included (500
            // connections against ~250k deliveries): the fan-out number
            // that varies least between rounds.
            report.metrics.insert(
                "server_us_per_delivery".into(),
                server_cores * secs / deliveries * 1e6,
            );
        }
    }
    report
        .metrics
        .insert("cpu_loadgen_cores".into(), loadgen_cores);
    report.metrics.insert("cpu_other_cores".into(), other_cores);
    if let Some(e) = server.exited() {
        report.errors.push(e);
    }
    server.stop(Duration::from_secs(30)).await;
    report
}

fn m(report: &Report, key: &str) -> f64 {
    report.metrics.get(key).copied().unwrap_or(f64::NAN)
}

fn headline(scenario: &str, r: &Report) -> String {
    match scenario {
        "append-many" | "append-hot" | "json-append" | "append-c1" => format!(
            "{:.0} appends/s  p50 {:.2} ms  p99 {:.2} ms",
            m(r, "appends_per_s"),
            m(r, "p50_ms"),
            m(r, "p99_ms")
        ),
        "catchup-read" => format!(
            "{:.0} MiB/s (best {:.0})  {} round trips  peak RSS {:.0} MiB",
            m(r, "mib_per_s"),
            m(r, "mib_per_s_best"),
            m(r, "round_trips"),
            m(r, "peak_rss_mib")
        ),
        "fanout-sse" | "fanout-longpoll" => format!(
            "ack→recv p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  arrival p50 {:.2} p99 {:.2}  send→recv p50 {:.2} p99 {:.2}  lost {}  dup {}  writer {:.1}/s ack p50 {:.2} p99 {:.2} ms (kernel p50 {:.2})  server {:.2} µs/delivery",
            m(r, "p50_ms"),
            m(r, "p99_ms"),
            m(r, "max_ms"),
            m(r, "arrival_p50_ms"),
            m(r, "arrival_p99_ms"),
            m(r, "send_to_receive_p50_ms"),
            m(r, "send_to_receive_p99_ms"),
            m(r, "lost"),
            m(r, "duplicates"),
            m(r, "writer_rate"),
            m(r, "writer_p50_ms"),
            m(r, "writer_p99_ms"),
            m(r, "writer_ack_arrival_p50_ms"),
            m(r, "server_us_per_delivery")
        ),
        "many-streams" => format!(
            "{:.0} creations/s  RSS {:.0} B/stream settled ({:.0} at 200 ms)",
            m(r, "creations_per_s"),
            m(r, "rss_per_stream_bytes"),
            m(r, "rss_per_stream_at_200ms_bytes")
        ),
        "restart" => format!(
            "ready in {:.0} ms (populate {:.0} MiB/s)",
            m(r, "ready_ms"),
            m(r, "populate_mib_per_s")
        ),
        _ => String::new(),
    }
}

/// Counts of failures, summed over rounds (every other metric is a median).
const SUMMED: &[&str] = &["lost", "duplicates", "unacknowledged_seen"];

/// Per scenario and target: the median of every metric over rounds (the
/// sum of the failure counts in [`SUMMED`]), the ratio to bare hyper
/// (append scenarios), and error counts.
fn summarize(records: &[RunRecord], scenarios: &[String], names: &[String]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for s in scenarios {
        let mut per_target = serde_json::Map::new();
        let bare_rates: Vec<f64> = records
            .iter()
            .filter(|r| &r.scenario == s && r.target == "bare-hyper")
            .map(|r| m(&r.report, "appends_per_s"))
            .collect();
        for name in names {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| &r.scenario == s && &r.target == name)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let mut keys: Vec<&String> =
                runs.iter().flat_map(|r| r.report.metrics.keys()).collect();
            keys.sort();
            keys.dedup();
            let mut med = BTreeMap::new();
            for k in keys {
                let vals: Vec<f64> = runs.iter().map(|r| m(&r.report, k)).collect();
                // A loss in one round must not vanish in a median.
                let v = if SUMMED.contains(&k.as_str()) {
                    vals.iter().sum()
                } else {
                    stats::median(&vals)
                };
                med.insert(k.clone(), v);
            }
            let mut entry = serde_json::Map::new();
            if WITH_BASELINE.contains(&s.as_str()) && !bare_rates.is_empty() {
                let rates: Vec<f64> = runs.iter().map(|r| m(&r.report, "appends_per_s")).collect();
                let ratio = stats::median(&rates) / stats::median(&bare_rates);
                let per_round: Vec<f64> = runs
                    .iter()
                    .map(|r| {
                        let b = records
                            .iter()
                            .find(|b| {
                                &b.scenario == s && b.target == "bare-hyper" && b.round == r.round
                            })
                            .map_or(f64::NAN, |b| m(&b.report, "appends_per_s"));
                        m(&r.report, "appends_per_s") / b
                    })
                    .collect();
                entry.insert("ratio_to_bare".into(), json!(finite(ratio)));
                entry.insert(
                    "ratio_per_round".into(),
                    json!(per_round.into_iter().map(finite).collect::<Vec<_>>()),
                );
                entry.insert(
                    "appends_per_s_per_round".into(),
                    json!(rates.into_iter().map(finite).collect::<Vec<_>>()),
                );
            }
            if matches!(s.as_str(), "fanout-sse" | "fanout-longpoll") {
                // A latency's median hides how far rounds spread (on a
                // shared 2-core machine, more than the servers differ).
                let p99s: Vec<f64> = runs.iter().map(|r| m(&r.report, "p99_ms")).collect();
                entry.insert(
                    "p99_ms_per_round".into(),
                    json!(p99s.into_iter().map(finite).collect::<Vec<_>>()),
                );
            }
            entry.insert("median".into(), clean(&med));
            entry.insert(
                "errors".into(),
                json!(runs.iter().map(|r| r.report.errors.count).sum::<u64>()),
            );
            entry.insert("rounds".into(), json!(runs.len()));
            per_target.insert(name.clone(), serde_json::Value::Object(entry));
        }
        out.insert(s.clone(), serde_json::Value::Object(per_target));
    }
    serde_json::Value::Object(out)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn fmt_rate(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// ` (rounds a, b, …)` for two rounds or more; empty otherwise.
fn per_round(values: &serde_json::Value) -> String {
    let Some(values) = values.as_array().filter(|v| v.len() > 1) else {
        return String::new();
    };
    let listed: Vec<String> = values
        .iter()
        .map(|v| fmt_ms(v.as_f64().unwrap_or(f64::NAN)))
        .collect();
    format!(" (rounds {})", listed.join(", "))
}

/// The summary as a Markdown table: a row per scenario, a column per target.
fn markdown(summary: &serde_json::Value, scenarios: &[String], names: &[String]) -> String {
    let mut t = String::new();
    t.push_str("| scenario |");
    for n in names {
        t.push_str(&format!(" {n} |"));
    }
    t.push_str("\n|---|");
    for _ in names {
        t.push_str("---|");
    }
    t.push('\n');
    for s in scenarios {
        t.push_str(&format!("| {s} |"));
        for n in names {
            let e = &summary[s.as_str()][n.as_str()];
            let cell = if e.is_null() {
                "–".to_string()
            } else {
                let g = |k: &str| e["median"][k].as_f64().unwrap_or(f64::NAN);
                let errors = e["errors"].as_u64().unwrap_or(0);
                let mut c = match s.as_str() {
                    "append-many" | "append-hot" | "json-append" | "append-c1" => {
                        let ratio = e["ratio_to_bare"].as_f64();
                        let mut c = format!("{}/s", fmt_rate(g("appends_per_s")));
                        if let Some(r) = ratio {
                            c.push_str(&format!(" ({r:.2}×)"));
                        }
                        c.push_str(&format!(
                            " p50 {} p99 {} ms",
                            fmt_ms(g("p50_ms")),
                            fmt_ms(g("p99_ms"))
                        ));
                        c
                    }
                    "catchup-read" => format!(
                        "{} MiB/s, {} trips, peak RSS {} MiB",
                        fmt_rate(g("mib_per_s")),
                        g("round_trips"),
                        fmt_ms(g("peak_rss_mib"))
                    ),
                    "fanout-sse" | "fanout-longpoll" => format!(
                        "ack→recv p50 {} p99 {}{} max {} ms (arrival p50 {} p99 {}; send→recv p50 {} p99 {}); lost {} dup {}; writer {:.1}/s, ack p50 {} p99 {} ms (kernel p50 {}); server {} µs/delivery",
                        fmt_ms(g("p50_ms")),
                        fmt_ms(g("p99_ms")),
                        per_round(&e["p99_ms_per_round"]),
                        fmt_ms(g("max_ms")),
                        fmt_ms(g("arrival_p50_ms")),
                        fmt_ms(g("arrival_p99_ms")),
                        fmt_ms(g("send_to_receive_p50_ms")),
                        fmt_ms(g("send_to_receive_p99_ms")),
                        g("lost"),
                        g("duplicates"),
                        g("writer_rate"),
                        fmt_ms(g("writer_p50_ms")),
                        fmt_ms(g("writer_p99_ms")),
                        fmt_ms(g("writer_ack_arrival_p50_ms")),
                        fmt_ms(g("server_us_per_delivery"))
                    ),
                    "many-streams" => format!(
                        "{}/s, {:.0} B RSS/stream ({:.0} at 200 ms)",
                        fmt_rate(g("creations_per_s")),
                        g("rss_per_stream_bytes"),
                        g("rss_per_stream_at_200ms_bytes")
                    ),
                    "restart" => format!("{} ms", fmt_ms(g("ready_ms"))),
                    _ => String::new(),
                };
                if errors > 0 {
                    c.push_str(&format!(" **{errors} errors**"));
                }
                c
            };
            t.push_str(&format!(" {cell} |"));
        }
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: usize, p99: f64, lost: f64) -> RunRecord {
        let mut report = Report::default();
        report.metrics.insert("p99_ms".into(), p99);
        report.metrics.insert("lost".into(), lost);
        RunRecord {
            scenario: "fanout-sse".into(),
            target: "ours".into(),
            round,
            load1: 0.0,
            report,
        }
    }

    #[test]
    fn rounds_give_medians_but_failures_add_up() {
        let records = [
            record(0, 5.0, 0.0),
            record(1, 9.0, 0.0),
            record(2, 6.0, 3.0),
        ];
        let summary = summarize(&records, &["fanout-sse".into()], &["ours".into()]);
        let ours = &summary["fanout-sse"]["ours"];
        assert_eq!(ours["median"]["p99_ms"], 6.0);
        assert_eq!(ours["median"]["lost"], 3.0, "a loss in one round shows");
        assert_eq!(ours["rounds"], 3);
        assert_eq!(ours["p99_ms_per_round"], json!([5.0, 9.0, 6.0]));
        let table = markdown(&summary, &["fanout-sse".into()], &["ours".into()]);
        assert!(
            table.contains("p99 6.00 (rounds 5.00, 9.00, 6.00) max"),
            "{table}"
        );
    }
}
