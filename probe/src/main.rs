//! `causeway-probe`: the command line. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use causeway_probe::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use causeway_probe::cycle::Prober;
use causeway_probe::notify::Notifier;
use causeway_probe::run::{Service, reload_on_sighup, shutdown_signal};
use clap::{Parser, Subcommand};

/// Causeway's probe: requests a canary site on every address its resolvers give, says why a
/// request failed, and reports to the collector.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: a cycle every interval, reports spooled and uploaded. SIGHUP reads the
    /// config file again (a bad one is refused and the running config kept); SIGTERM or
    /// SIGINT finish the cycle in flight and stop. Under systemd (`NOTIFY_SOCKET`) it notifies
    /// readiness, status and the watchdog (`Type=notify`, `WatchdogSec=`).
    Run {
        /// The config file.
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run one cycle and print its report as JSON; uploads nothing and leaves the spool alone.
    /// Exits 0 even when checks fail: the report says so.
    Once {
        /// The config file.
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a config file: prints a summary and exits 0, or every problem and exits 2.
    CheckConfig {
        /// The config file.
        #[arg(value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        file: PathBuf,
    },
}

/// Exit code for an invalid config (as `check-config` documents).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    causeway_service::init_logging();
    causeway_probe::install_crypto_provider();

    let result = match cli.command {
        Command::CheckConfig { file } => return check_config(&file),
        Command::Run { config } => {
            load(&config).map(|c| runtime().and_then(|rt| rt.block_on(run(c, config))))
        }
        Command::Once { config } => {
            load(&config).map(|c| runtime().and_then(|rt| rt.block_on(once(c))))
        }
    };
    match result {
        Err(code) => code,
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("causeway-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Loads the config, printing every problem (exit code 2) when it is not valid.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        print_problems(path, &e);
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn print_problems(path: &std::path::Path, e: &ConfigError) {
    for problem in e.problems() {
        eprintln!("{}: {problem}", path.display());
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            println!("{}: ok ({})", path.display(), c.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_problems(path, &e);
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let mut service = Service::from_config(config)?;
    service.notifier = Notifier::from_env();
    service.config_path = Some(path);
    // Before the loop starts: SIGHUP's default action would end the process.
    let reload = Arc::new(tokio::sync::Notify::new());
    let hup = reload_on_sighup(reload.clone())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = tokio::spawn(async move {
        match shutdown_signal().await {
            Ok(name) => tracing::info!("{name}: finishing the cycle in flight"),
            Err(e) => {
                tracing::error!("{e}; stop the probe with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        let _ = stop.send(true);
    });
    let result = service.run(stopped, reload).await;
    signal.abort();
    hup.abort();
    Ok(result?)
}

async fn once(config: Config) -> anyhow::Result<()> {
    let prober = Prober::on_host(Arc::new(config));
    let report = prober.cycle().await;
    tracing::info!("{}", causeway_probe::cycle::summary(&report));
    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    println!("{json}");
    Ok(())
}
