//! `probectl`'s command line and commands. Returns the text to print, so the whole command
//! runs in tests against a real collector.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;

use crate::client::{Client, ClientError};
use crate::duration;
use crate::views::{
    HostView, NotificationList, ResolverList, ResolverOverview, ServerList, WhyView,
};
use crate::why::{render_alerts, render_host, render_resolvers, render_status, render_why};

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
    /// A read token (`causeway-collector read-token add NAME`), for a collector that requires
    /// one.
    #[arg(
        long,
        global = true,
        env = "CAUSEWAY_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the read token (its first line).
    #[arg(long, global = true, env = "CAUSEWAY_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

impl Ctl {
    /// The read token given, from `--token` or the first line of `--token-file`.
    fn read_token(&self) -> Result<Option<String>, CtlError> {
        if let Some(token) = &self.token {
            return Ok(Some(token.trim().to_owned()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| CtlError::TokenFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        match text.lines().next().map(str::trim) {
            Some(token) if !token.is_empty() => Ok(Some(token.to_owned())),
            _ => Err(CtlError::TokenFile {
                path: path.display().to_string(),
                reason: "it is empty".to_owned(),
            }),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// One line per server: availability over 1h, 24h and 7d, state, last report, cause.
    Status {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// A server's availability, incidents, resolver and host conditions over a window, with
    /// each one's evidence.
    Why {
        /// The server's name, as `status` lists it.
        server: String,
        #[command(flatten)]
        window: Window,
        /// Print the API's JSON instead of the story.
        #[arg(long)]
        json: bool,
    },
    /// One line per resolver of each canary: share of healthy answers over a window, what it
    /// says now, since when its open condition lasts, its latest answer.
    Resolvers {
        /// Only this server, by name as `status` lists it; every server when omitted.
        server: Option<String>,
        #[command(flatten)]
        window: Window,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The recent alert notifications: when, which server and event, on which channel, and
    /// whether it was delivered (attempts, last error).
    Alerts {
        /// Only this server's.
        #[arg(long)]
        server: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Maintenance windows: servers that raise no alert for a while.
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// A server's host as its probe reads it: the latest memory and pressure readings, boot
    /// id and uptime, and the host conditions (OOM kills, kernel memory leak, overload,
    /// reboot) over a window.
    Host {
        /// The server's name, as `status` lists it.
        server: String,
        #[command(flatten)]
        window: Window,
        /// Print the API's JSON instead of the readings and conditions.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence a server (or a glob: `web-*`) from now on; needs a read token made with
    /// `read-token add NAME --write`.
    Add {
        /// A server name or glob.
        servers: String,
        /// How long: a whole number and s, m, h or d (30m, 2h, 1d), at most 7d.
        #[arg(long = "for", value_parser = duration::parse)]
        duration: Duration,
        /// What the work is, for whoever wonders why the server did not page.
        #[arg(long)]
        reason: String,
    },
    /// The silences in force and those that ended in the last day.
    List {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now (its id, from `list`).
    Remove { id: i64 },
}

/// The window a command looks at, ending now.
#[derive(Debug, Clone, Args)]
pub struct Window {
    /// How far back to look: a whole number and s, m, h or d (90s, 30m, 1h, 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = duration::parse)]
    pub since: Duration,
}

impl Window {
    /// The window's length in milliseconds.
    pub fn ms(&self) -> i64 {
        i64::try_from(self.since.as_millis()).unwrap_or(i64::MAX)
    }

    /// Its start, for the API's `since_ms`.
    pub fn since_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.ms()).max(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read the token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
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

/// Runs a command; `now_ms` is this machine's clock (the end of the windows).
pub async fn run(ctl: &Ctl, now_ms: i64) -> Result<String, CtlError> {
    let client = Client::new(&ctl.collector)?.with_token(ctl.read_token()?);
    match &ctl.command {
        CtlCommand::Status { json } => {
            let value = client.servers().await?;
            if *json {
                return Ok(pretty(&value));
            }
            Ok(render_status(&shape::<ServerList>(value)?))
        }
        CtlCommand::Why {
            server,
            window,
            json,
        } => {
            let value = client.why(server, window.since_ms(now_ms)).await?;
            if *json {
                return Ok(pretty(&value));
            }
            Ok(render_why(&shape::<WhyView>(value)?, window.ms()))
        }
        CtlCommand::Resolvers {
            server,
            window,
            json,
        } => {
            let value = client
                .resolvers(server.as_deref(), window.since_ms(now_ms))
                .await?;
            if *json {
                return Ok(pretty(&value));
            }
            let overview = match server {
                Some(_) => shape::<ResolverList>(value)?.into(),
                None => shape::<ResolverOverview>(value)?,
            };
            Ok(render_resolvers(&overview))
        }
        CtlCommand::Alerts {
            server,
            limit,
            json,
        } => {
            let value = client.alerts(server.as_deref(), *limit).await?;
            if *json {
                return Ok(pretty(&value));
            }
            Ok(render_alerts(&shape::<NotificationList>(value)?))
        }
        CtlCommand::Silence(cmd) => silence(&client, cmd).await,
        CtlCommand::Host {
            server,
            window,
            json,
        } => {
            let value = client.host(server, window.since_ms(now_ms)).await?;
            if *json {
                return Ok(pretty(&value));
            }
            Ok(render_host(&shape::<HostView>(value)?, window.ms()))
        }
    }
}

/// The API's answer read as `T`.
fn shape<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, CtlError> {
    serde_json::from_value(value).map_err(CtlError::Shape)
}

fn pretty(value: &serde_json::Value) -> String {
    // Serialising a Value cannot fail; the fallback only keeps the code free of unwrap.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

async fn silence(client: &Client, cmd: &SilenceCommand) -> Result<String, CtlError> {
    match cmd {
        SilenceCommand::Add {
            servers,
            duration,
            reason,
        } => {
            let new = crate::silences::NewSilence {
                servers: servers.clone(),
                duration_s: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
                reason: reason.clone(),
            };
            let made: crate::silences::Silence = shape(client.add_silence(&new).await?)?;
            Ok(format!(
                "silence {}: {} until {} ({})\n",
                made.id,
                made.servers,
                crate::timefmt::rfc3339(made.ends_at_ms),
                made.reason
            ))
        }
        SilenceCommand::List { json } => {
            let value = client.silences().await?;
            if *json {
                return Ok(pretty(&value));
            }
            Ok(crate::why::render_silences(&shape(value)?))
        }
        SilenceCommand::Remove { id } => {
            client.remove_silence(*id).await?;
            Ok(format!("silence {id} removed\n"))
        }
    }
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
        let CtlCommand::Why { window, json, .. } = ctl.command else {
            panic!("why expected")
        };
        assert_eq!(window.since, Duration::from_secs(86_400));
        assert_eq!(window.since_ms(100_000_000), 100_000_000 - 86_400_000);
        assert_eq!(window.since_ms(5), 0);
        assert!(!json);
    }

    #[test]
    fn host_takes_a_server_and_a_window() {
        let ctl = Ctl::try_parse_from(["probectl", "host", "web-01", "--since", "1d", "--json"]);
        let CtlCommand::Host {
            server,
            window,
            json,
        } = ctl.unwrap().command
        else {
            panic!("host expected")
        };
        assert_eq!(server, "web-01");
        assert_eq!(window.since, Duration::from_secs(86_400));
        assert!(json);
        assert!(Ctl::try_parse_from(["probectl", "host"]).is_err());
    }

    #[test]
    fn resolvers_takes_an_optional_server() {
        let ctl = Ctl::try_parse_from(["probectl", "resolvers", "--since", "1h", "--json"]);
        let CtlCommand::Resolvers {
            server,
            window,
            json,
        } = ctl.unwrap().command
        else {
            panic!("resolvers expected")
        };
        assert_eq!(server, None);
        assert_eq!(window.since, Duration::from_secs(3600));
        assert!(json);
        let ctl = Ctl::try_parse_from(["probectl", "resolvers", "web-01"]).unwrap();
        let CtlCommand::Resolvers { server, .. } = ctl.command else {
            panic!("resolvers expected")
        };
        assert_eq!(server.as_deref(), Some("web-01"));
    }
}
