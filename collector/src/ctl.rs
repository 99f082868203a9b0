//! `probectl`'s command line and commands. Returns the text to print, so the whole command
//! runs in tests against a real collector.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::duration;
use crate::views::{ServerList, WhyView};
use crate::why::{render_status, render_why};

/// Asks a Causeway collector how the servers are doing, and why they failed.
#[derive(Debug, Parser)]
#[command(name = "probectl", version)]
pub struct Ctl {
    /// The collector's base URL.
    #[arg(
        long,
        global = true,
        env = "CAUSEWAY_COLLECTOR",
        default_value = "http://127.0.0.1:8750"
    )]
    pub collector: String,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// One line per server: availability over 1h, 24h and 7d, state, last report, cause.
    Status {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// A server's availability and incidents over a window, with each incident's evidence.
    Why {
        /// The server's name, as `status` lists it.
        server: String,
        /// How far back to look: a whole number and s, m, h or d (90s, 30m, 1h, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = duration::parse)]
        since: Duration,
        /// Print the API's JSON instead of the story.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the collector's answer does not have the expected shape: {0}")]
    Shape(#[source] serde_json::Error),
}

impl CtlError {
    /// 2 for an unknown server (the operator's typo), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Client(ClientError::UnknownServer { .. }) => 2,
            _ => 1,
        }
    }
}

/// Runs a command; `now_ms` is this machine's clock (the start of `why`'s window).
pub async fn run(ctl: &Ctl, now_ms: i64) -> Result<String, CtlError> {
    let client = Client::new(&ctl.collector)?;
    match &ctl.command {
        CtlCommand::Status { json } => {
            let value = client.servers().await?;
            if *json {
                return Ok(pretty(&value));
            }
            let list: ServerList = serde_json::from_value(value).map_err(CtlError::Shape)?;
            Ok(render_status(&list))
        }
        CtlCommand::Why {
            server,
            since,
            json,
        } => {
            let window_ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
            let since_ms = now_ms.saturating_sub(window_ms).max(0);
            let value = client.why(server, since_ms).await?;
            if *json {
                return Ok(pretty(&value));
            }
            let view: WhyView = serde_json::from_value(value).map_err(CtlError::Shape)?;
            Ok(render_why(&view, window_ms))
        }
    }
}

fn pretty(value: &serde_json::Value) -> String {
    // Serialising a Value cannot fail; the fallback only keeps the code free of unwrap.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Ctl::command().debug_assert();
    }

    #[test]
    fn bad_since_names_the_value_and_the_forms() {
        let err = Ctl::try_parse_from(["probectl", "why", "web-01", "--since", "5x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"5x\""), "{err}");
        assert!(err.contains("30m, 1h"), "{err}");
    }

    #[test]
    fn since_defaults_to_a_day() {
        let ctl = Ctl::try_parse_from(["probectl", "why", "web-01"]).unwrap();
        let CtlCommand::Why { since, json, .. } = ctl.command else {
            panic!("why expected")
        };
        assert_eq!(since, Duration::from_secs(86_400));
        assert!(!json);
    }
}
