//! `durable-streams-server`: the command line; see
//! [`durable_streams_server::cli`] for the subcommands and
//! [`durable_streams_server::config`] for the settings.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    durable_streams_server::cli::run().await
}
