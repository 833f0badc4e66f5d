//! The command line: `serve` (the default when no subcommand is given, so
//! `durable-streams-server --bind …` serves), `export`, `import`, `list` and
//! `inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ServeArgs, Settings};

/// A Durable Streams server (PROTOCOL.md): durable, append-only,
/// offset-addressable streams over HTTP, stored in redb file shards.
#[derive(Parser, Debug)]
#[command(
    name = "durable-streams-server",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Settings come from flags, then DS_* environment variables, then the --config TOML \
file, then defaults. Without a subcommand the server serves.\n\nExit codes: 0 clean shutdown, 2 invalid \
arguments or configuration, 3 data directory in use by another server, 4 unsupported data directory \
layout or format, 5 unreadable storage, 6 cannot bind the listen address, 1 anything else."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Operator subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the streams over HTTP (the default).
    Serve(Box<ServeArgs>),
    /// Write streams (all, or a path prefix) to one archive file.
    Export(ExportArgs),
    /// Load streams from an archive file.
    Import(ImportArgs),
    /// List streams with their size and state.
    List(StoreArgs),
    /// Show everything known about one stream.
    Inspect(InspectArgs),
}

/// Which data directory an offline command opens.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the server (it must not be running).
    #[arg(
        long,
        env = "DS_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Only streams whose path (relative to /v1/stream/) starts with this.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub prefix: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `export` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Data directory of the server (it must not be running).
    #[arg(
        long,
        env = "DS_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Only streams whose path (relative to /v1/stream/) starts with this;
    /// forks bring their sources along.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub prefix: String,
    /// The archive to write (`-` for standard output).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Never draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `import` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// Data directory of the server (it must not be running).
    #[arg(
        long,
        env = "DS_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// The archive to read.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// What to do when a stream already exists: skip it, replace it, or
    /// fail before importing anything.
    #[arg(long, default_value = "fail", value_parser = ["skip", "replace", "fail"])]
    pub on_conflict: String,
}

/// `inspect` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct InspectArgs {
    /// Data directory of the server (it must not be running).
    #[arg(
        long,
        env = "DS_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// The stream's path relative to /v1/stream/ (or its full URL path).
    pub stream: String,
    /// Also print the first N records.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub records: usize,
}

/// Parses the command line and runs what it asks for. Builds the tokio
/// runtime itself: the scheduling policy (`--scheduling`) is set on the
/// main thread first, so every thread the server starts inherits it.
pub fn run() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        None => serve(&cli.serve, &matches),
        Some(Command::Serve(args)) => {
            let sub = matches.subcommand_matches("serve").expect("serve matched");
            serve(&args, sub)
        }
        Some(Command::Export(args)) => in_runtime(async { crate::archive_cli::export(&args) }),
        Some(Command::Import(args)) => in_runtime(async { crate::archive_cli::import(&args) }),
        Some(Command::List(args)) => in_runtime(async { crate::inspect::list(&args) }),
        Some(Command::Inspect(args)) => in_runtime(async { crate::inspect::inspect(&args) }),
    }
}

fn serve(args: &ServeArgs, matches: &ArgMatches) -> ExitCode {
    let settings = match Settings::resolve(args, matches) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    // Before any other thread exists: threads inherit the policy.
    if settings.batch_scheduling() {
        crate::scheduling::yield_on_wake();
    }
    crate::logging::init(&settings.log);
    in_runtime(crate::serve(settings))
}

/// Runs `work` on a multi-thread tokio runtime (a worker per core) and
/// reports its outcome as the exit code.
fn in_runtime(
    work: impl std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => report(runtime.block_on(work)),
        Err(e) => report(Err(format!("cannot start the async runtime: {e}").into())),
    }
}

fn report(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            ExitCode::from(crate::exit_code(e.as_ref()))
        }
    }
}
