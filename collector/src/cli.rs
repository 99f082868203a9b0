//! `causeway-collector`'s command line, and what each command does.

use std::io::Write;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use std::sync::Arc;

use crate::access::{self, Access, AccessError, Mode};
use crate::access_cli::{self, ReadTokenCommand, UserCommand};
use crate::alerts::config::{CollectorConfig, ConfigError};
use crate::alerts::{self, AlertError, Alerter};
use crate::api::AppState;
use crate::clock::{Clock, system_now_ms};
use crate::db::{Db, DbError, Location};
use crate::duration;
use crate::healthcheck::{self, HealthError};
use crate::ingest::Retention;
use crate::migrate_to::{self, MigrateToError};
use crate::serve::{self, ServeError};
use crate::share::{self, ShareError};
use crate::timefmt::rfc3339;
use crate::tls::{Tls, TlsError};
use crate::tokens::{self, TokenError};

/// How long `serve` waits for the database to close once the server has stopped.
const DB_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Receives Causeway probes' reports, stores them in SQLite (or PostgreSQL) and serves the API
/// and web page.
#[derive(Debug, Parser)]
#[command(name = "causeway-collector", version)]
pub struct Cli {
    /// The database: a SQLite file, created (with its tables) if missing, or a PostgreSQL URL
    /// (`postgres://user:password@host/database`), whose tables are created on first use.
    #[arg(
        long,
        global = true,
        env = "CAUSEWAY_DB",
        default_value = "causeway.db",
        value_parser = Location::from_str
    )]
    pub db: Location,
    /// The config file: the page's public address, the alert channels and rules (see
    /// docs/alerts.md). SIGHUP reads it again; a file with a mistake is refused and the
    /// running one stays.
    #[arg(long, global = true, env = "CAUSEWAY_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the ingest API, the read API and the web page (the default).
    Serve(ServeArgs),
    /// Manage the tokens probes authenticate with.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage read-only links to one server's page, badge and summary, for its customer.
    #[command(subcommand)]
    Share(ShareCommand),
    /// Manage the people who sign in to the web page.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the tokens programs read with (probectl, Prometheus).
    #[command(subcommand)]
    ReadToken(ReadTokenCommand),
    /// Check a config file and say what it holds, or what is wrong with it (exit 1).
    CheckConfig {
        /// The file (TOML).
        file: std::path::PathBuf,
    },
    /// Ask a running collector's /healthz; exit 0 when it answers ok, 1 otherwise (for
    /// container health checks: no token needed).
    Healthcheck {
        /// The collector's address, as given to `serve --listen` (a wildcard address is asked
        /// on loopback).
        #[arg(long, env = "CAUSEWAY_LISTEN", default_value = "127.0.0.1:8750")]
        listen: SocketAddr,
        /// The URL to ask instead, e.g. https://collector.example:8750/healthz.
        #[arg(long)]
        url: Option<String>,
    },
    /// Copy this SQLite database (--db), history and all, into an empty PostgreSQL database;
    /// then run the collector with --db set to that URL.
    MigrateTo {
        /// The target: postgres://user:password@host/database (its tables are created).
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Create a link for a server; prints its path (`/s/cws_...`), to put after this
    /// collector's address. The link is shown once; only its hash is stored.
    Add {
        /// A server that has a token.
        server: String,
    },
    /// Revoke every link of a server.
    Revoke { server: String },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address and port to listen on.
    #[arg(long, env = "CAUSEWAY_LISTEN", default_value = "127.0.0.1:8750")]
    pub listen: SocketAddr,
    /// The largest report body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_body: u32,
    /// How long a report's body may take to arrive after its headers; slower ones get 408.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    pub body_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed (a silent client,
    /// half-sent headers, an unused keep-alive connection).
    #[arg(long, default_value = "75s", value_parser = duration::parse)]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long requests in flight may take before their connections are closed.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub shutdown_grace: Duration,
    /// How long a request's headers may take to arrive after its first byte; a client that
    /// trickles them is closed.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub header_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = serve::Limits::MAX_CONNECTIONS, value_parser = connections)]
    pub max_connections: usize,
    /// Connections open at once from one client address (raise it for a proxy in front of
    /// many clients); more are answered 503 and closed.
    #[arg(long, default_value_t = serve::Limits::PER_CLIENT, value_parser = connections)]
    pub max_connections_per_client: usize,
    /// How long raw checks, host readings and resolver answers are kept; older reports are
    /// acknowledged and not stored.
    #[arg(long, env = "CAUSEWAY_RETAIN_RAW", default_value = "14d", value_parser = duration::parse_retention)]
    pub retain_raw: Duration,
    /// How long failed checks keep their evidence (at least --retain-raw).
    #[arg(long, env = "CAUSEWAY_RETAIN_EVIDENCE", default_value = "90d", value_parser = duration::parse_retention)]
    pub retain_evidence: Duration,
    /// How long hourly rollups, incidents and conditions are kept (daily rollups: for ever).
    #[arg(long, env = "CAUSEWAY_RETAIN_HOURLY", default_value = "400d", value_parser = duration::parse_retention)]
    pub retain_hourly: Duration,
    /// Let anyone read the pages, the read API and /metrics, without signing in or a read
    /// token. Without it, a collector on a network address needs a user or a read token
    /// (`user add`, `read-token add`) to start; on a loopback address it is open until the
    /// first is made.
    #[arg(long, env = "CAUSEWAY_OPEN")]
    pub open: bool,
    /// Serve HTTPS with this PEM certificate chain (leaf first); SIGHUP reads it again.
    #[arg(long, env = "CAUSEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CAUSEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// The retention flags, checked against each other.
    pub fn retention(&self) -> Result<Retention, clap::Error> {
        let r = Retention {
            raw: self.retain_raw,
            evidence: self.retain_evidence,
            hourly: self.retain_hourly,
        };
        let days = |d: Duration| d.as_secs() / 86_400;
        if r.evidence < r.raw || r.hourly < r.evidence {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "retention: --retain-raw {}d <= --retain-evidence {}d <= --retain-hourly {}d \
                     is required (evidence outlives raw checks, rollups outlive evidence)\n",
                    days(r.raw),
                    days(r.evidence),
                    days(r.hourly)
                ),
            ));
        }
        Ok(r)
    }

    /// The defaults (and environment) of `serve`, for when no subcommand is given.
    pub fn from_env() -> Result<ServeArgs, clap::Error> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::try_parse_from(["serve"]).map(|o| o.args)
    }
}

/// A connection limit: 1 to 1,000,000.
fn connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of connections: a whole number from 1 to 1000000 is allowed"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a server (creating the server if new); prints only the token.
    Add {
        /// The server's name: letters, digits, '.', '-' and '_' (usually its host name).
        server: String,
    },
    /// List tokens: server, created, revoked and a prefix of the token's hash.
    List,
    /// Revoke every token of a server.
    Revoke {
        /// The server whose tokens stop working.
        server: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Share(#[from] ShareError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Alerts(AlertError),
    #[error(
        "refusing to serve {addr} unprotected: no user and no read token exist, and the pages, \
         the read API and /metrics show command lines, kernel log lines and addresses to \
         whoever reaches them. Make one first (`causeway-collector user add NAME`, \
         `causeway-collector read-token add NAME`), listen on a loopback address, or pass \
         --open (CAUSEWAY_OPEN=true) to let anyone read"
    )]
    Unprotected { addr: SocketAddr },
    #[error(transparent)]
    MigrateTo(#[from] MigrateToError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("unhealthy: {0}")]
    Health(#[from] HealthError),
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs a parsed command line. `out` gets what scripts read, `err` what people read.
pub async fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    let serve_args = match cli.command {
        None => ServeArgs::from_env()?,
        Some(Command::Serve(args)) => args,
        Some(Command::Token(cmd)) => return token(&cli.db, cmd, out, err).await,
        Some(Command::Share(cmd)) => return share_cmd(&cli.db, cmd, out, err).await,
        Some(Command::User(cmd)) => {
            let db = Db::open_at(&cli.db).await?;
            let result = access_cli::user(&db, cmd, out, err).await;
            db.close().await;
            return Ok(result?);
        }
        Some(Command::ReadToken(cmd)) => {
            let db = Db::open_at(&cli.db).await?;
            let result = access_cli::read_token(&db, cmd, out, err).await;
            db.close().await;
            return Ok(result?);
        }
        Some(Command::CheckConfig { file }) => {
            let config = CollectorConfig::load(&file)?;
            writeln!(out, "{}: ok: {}", file.display(), config.summary())?;
            return Ok(());
        }
        Some(Command::Healthcheck { listen, url }) => {
            let url = url.unwrap_or_else(|| healthcheck::url_for(listen));
            healthcheck::check(&url).await?;
            writeln!(out, "{url}: ok")?;
            return Ok(());
        }
        Some(Command::MigrateTo { url }) => {
            let copied = migrate_to::migrate_to(&cli.db, &url).await?;
            out.write_all(copied.summary().as_bytes())?;
            return Ok(());
        }
    };
    let retention = serve_args.retention()?;
    // Before the database: a config with a mistake stops the start with its line.
    let config = cli
        .config
        .as_deref()
        .map(|path| CollectorConfig::load(path).map(|c| (path.to_owned(), alerts::shared(c))))
        .transpose()?;
    if let Some((_, shared)) = &config {
        let gap = shared.read().map(|c| c.merge_gap).unwrap_or_default();
        crate::ingest::set_merge_gap(gap);
    }
    let db = Db::open_at(&cli.db).await?;
    let ready = async {
        let tls = match (&serve_args.tls_cert, &serve_args.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
            _ => None,
        };
        let alerter = match &config {
            Some((path, shared)) => {
                let alerter = Alerter::new(db.clone(), shared.clone()).map_err(CliError::Alerts)?;
                let summary = shared.read().map(|c| c.summary()).unwrap_or_default();
                tracing::info!("alerts: {}: {summary}", path.display());
                Some(alerter)
            }
            None => None,
        };
        Ok::<_, CliError>((access_mode(&serve_args, &db).await?, tls, alerter))
    };
    let (mode, tls, alerter) = match ready.await {
        Ok(ready) => ready,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let result = async {
        // Before the "listening on" line: from then on a SIGHUP must find its handler.
        serve::explain_hangups(tls.clone(), config.clone());
        let listener = serve::bind(serve_args.listen).await?;
        let addr = listener.local_addr().unwrap_or(serve_args.listen);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(db = %cli.db, "listening on {scheme}://{addr}");
        let state = AppState {
            alerts: alerter,
            db: db.clone(),
            clock: Clock::system(),
            max_body: serve_args.max_body as usize,
            body_timeout: serve_args.body_timeout,
            ingest: Default::default(),
            retention,
            tokens: Default::default(),
            access: Arc::new(Access::new(mode).with_secure_cookies(tls.is_some())),
        };
        let limits = serve::Limits {
            idle: serve_args.idle_timeout,
            shutdown_grace: serve_args.shutdown_grace,
            header_timeout: serve_args.header_timeout,
            max_connections: serve_args.max_connections,
            per_client: serve_args.max_connections_per_client,
        };
        let listening = serve::Listening { tcp: listener, tls };
        serve::run(listening, state, limits, serve::shutdown_signal()).await
    }
    .await;
    // A request cut off at the end of the grace may still hold a connection to the database:
    // it is waited for, but not for ever (SQLite's journal keeps the file whole either way).
    if tokio::time::timeout(DB_CLOSE_WAIT, db.close())
        .await
        .is_err()
    {
        tracing::warn!(
            "the database was still busy {} s after the server stopped; exiting anyway",
            DB_CLOSE_WAIT.as_secs()
        );
    }
    tracing::info!("stopped");
    Ok(result?)
}

/// Who may read, from `--open`, the address and whether credentials exist; refuses to serve
/// a network address to anyone without `--open`.
async fn access_mode(args: &ServeArgs, db: &Db) -> Result<Mode, CliError> {
    let addr = args.listen;
    if args.open {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "--open: anyone who reaches {addr} reads every server (command lines, kernel \
                 log lines, addresses)"
            );
        }
        return Ok(Mode::Open);
    }
    if addr.ip().is_loopback() {
        if !access::credentials_exist(&db.read)
            .await
            .map_err(AccessError::from)?
        {
            tracing::info!(
                "no user and no read token: pages, the read API and /metrics answer anyone on \
                 this loopback address until the first is made (`user add`, `read-token add`)"
            );
        }
        return Ok(Mode::LoopbackUntilCredentials);
    }
    if access::credentials_exist(&db.read)
        .await
        .map_err(AccessError::from)?
    {
        Ok(Mode::Required)
    } else {
        Err(CliError::Unprotected { addr })
    }
}

async fn share_cmd(
    location: &Location,
    cmd: ShareCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let db = Db::open_at(location).await?;
    let now_ms = system_now_ms();
    let result = async {
        match cmd {
            ShareCommand::Add { server } => {
                let secret = share::add(&db.write, &server, now_ms).await?;
                writeln!(out, "/s/{secret}")?;
                writeln!(
                    err,
                    "link for server {server:?}: the page, /badge.svg and /summary.json under \
                     it; shown once, only its hash is stored"
                )?;
            }
            ShareCommand::Revoke { server } => {
                let n = share::revoke(&db.write, &server, now_ms).await?;
                writeln!(out, "revoked {n} link(s) of server {server:?}")?;
            }
        }
        Ok::<(), CliError>(())
    }
    .await;
    db.close().await;
    result
}

async fn token(
    location: &Location,
    cmd: TokenCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    // Validate before creating a database file for nothing.
    if let TokenCommand::Add { server } = &cmd
        && !causeway_schema::is_valid_server_name(server)
    {
        return Err(TokenError::InvalidServerName {
            name: server.clone(),
        }
        .into());
    }
    let db = Db::open_at(location).await?;
    let result = token_with(&db, cmd, out, err).await;
    db.close().await;
    result
}

async fn token_with(
    db: &Db,
    cmd: TokenCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let now_ms = system_now_ms();
    match cmd {
        TokenCommand::Add { server } => {
            let new = tokens::add(&db.write, &server, now_ms).await?;
            writeln!(out, "{}", new.token)?;
            let created = if new.server_created {
                " (new server)"
            } else {
                ""
            };
            writeln!(
                err,
                "token for server {:?}{created}: it is shown once; only its hash is stored",
                new.server
            )?;
        }
        TokenCommand::List => {
            let list = tokens::list(&db.read).await?;
            if list.is_empty() {
                writeln!(err, "no tokens; create one with `token add <server>`")?;
            }
            let width = list
                .iter()
                .map(|t| t.server.len())
                .max()
                .unwrap_or(0)
                .max(6);
            writeln!(
                out,
                "{:<width$}  {:<20}  {:<20}  SHA-256",
                "SERVER", "CREATED", "REVOKED"
            )?;
            for t in list {
                let revoked = t.revoked_at_ms.map_or("-".to_owned(), rfc3339);
                writeln!(
                    out,
                    "{:<width$}  {:<20}  {:<20}  {}…",
                    t.server,
                    rfc3339(t.created_at_ms),
                    revoked,
                    t.hash_prefix
                )?;
            }
        }
        TokenCommand::Revoke { server } => {
            let n = tokens::revoke(&db.write, &server, now_ms).await?;
            writeln!(out, "revoked {n} token(s) of server {server:?}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_no_subcommand() {
        let cli = Cli::try_parse_from(["causeway-collector"]).unwrap();
        assert!(cli.command.is_none());
        let serve = ServeArgs::from_env().unwrap();
        assert_eq!(serve.max_body, 1_048_576);
        // The flags' defaults are the library's.
        assert_eq!(serve.body_timeout, crate::api::BODY_TIMEOUT);
        assert_eq!(serve.idle_timeout, serve::Limits::IDLE);
        assert_eq!(serve.shutdown_grace, serve::Limits::SHUTDOWN_GRACE);
        assert_eq!(serve.header_timeout, serve::Limits::HEADER_TIMEOUT);
        assert_eq!(serve.max_connections, serve::Limits::MAX_CONNECTIONS);
        assert_eq!(serve.max_connections_per_client, serve::Limits::PER_CLIENT);
        let cli = Cli::try_parse_from([
            "causeway-collector",
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--db",
            "/tmp/x.db",
        ])
        .unwrap();
        assert_eq!(cli.db, Location::Sqlite("/tmp/x.db".into()));
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(args.listen, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn a_bad_timeout_names_the_flag_the_value_and_the_forms() {
        for (flag, value) in [
            ("--idle-timeout", "0s"),
            ("--body-timeout", "30"),
            ("--shutdown-grace", "ten"),
        ] {
            let err = Cli::try_parse_from(["causeway-collector", "serve", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{err}");
            assert!(err.contains(&format!("{value:?}")), "{err}");
            assert!(
                err.contains("a whole number followed by ms, s, m, h or d"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn bad_server_name_names_the_value_and_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let cli = Cli::try_parse_from([
            "causeway-collector",
            "--db",
            db.to_str().unwrap(),
            "token",
            "add",
            "web 01",
        ])
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = run(cli, &mut out, &mut err).await.unwrap_err().to_string();
        assert!(e.contains("\"web 01\""), "{e}");
        assert!(e.contains("ASCII letters, digits"), "{e}");
        assert!(out.is_empty());
        assert!(!db.exists(), "no database for a refused command");
    }
}
