//! `causeway-collector`: see `causeway_collector::cli`.

use std::io::IsTerminal;
use std::process::ExitCode;

use causeway_collector::cli::{self, Cli};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout is for what scripts capture (`token add` prints the token).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for people at a terminal; the journal would store the escape codes.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        cli::run(cli, &mut out, &mut err).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
