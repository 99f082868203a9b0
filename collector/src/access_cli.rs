//! `causeway-collector user ...` and `read-token ...`: the accounts of people and the read
//! tokens of programs (see [`crate::access`]).

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;

use crate::access::{self, AccessError, Role};
use crate::clock::system_now_ms;
use crate::db::Db;
use crate::timefmt::rfc3339;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person who signs in to the web page. The password is asked for on a terminal,
    /// or read as the first line of standard input (`echo "$PW" | ... user add alice`).
    Add {
        /// 1 to 64 of letters, digits, '.', '-', '_' and '@'.
        name: String,
        /// admin, or viewer (read-only).
        #[arg(long, default_value = "viewer", value_parser = Role::parse)]
        role: Role,
    },
    /// List users: name, role, created.
    List,
    /// Remove a user and end their sessions.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ReadTokenCommand {
    /// Make a read token for a program (probectl's --token, Prometheus' bearer token); prints
    /// only the token, shown once.
    Add {
        /// What it is for, e.g. prometheus: 1 to 64 of letters, digits, '.', '-', '_', '@'.
        name: String,
        /// It may also write: make and remove silences (`probectl silence`).
        #[arg(long)]
        write: bool,
    },
    /// List read tokens: name, created, revoked, rights.
    List,
    /// Revoke the read tokens with this name.
    Revoke { name: String },
}

/// The password for `user add`: asked twice without echo on a terminal, else the first line
/// of standard input.
fn read_password(err: &mut dyn Write) -> Result<String, AccessError> {
    let io = AccessError::ReadPassword;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").map_err(io)?;
        let again = rpassword::prompt_password("again: ").map_err(io)?;
        if first != again {
            return Err(AccessError::PasswordsDiffer);
        }
        return Ok(first);
    }
    let _ = writeln!(err, "reading the password from standard input");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(io)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn user(
    db: &Db,
    cmd: UserCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), AccessError> {
    match cmd {
        UserCommand::Add { name, role } => {
            let password = read_password(err)?;
            access::add_user(&db.write, &name, &password, role, system_now_ms()).await?;
            writeln!(out, "added user {name:?} ({})", role.id())?;
        }
        UserCommand::List => {
            let users = access::list_users(&db.read).await?;
            if users.is_empty() {
                writeln!(err, "no users; add one with `user add NAME`")?;
            }
            writeln!(out, "{:<24}  {:<6}  CREATED", "NAME", "ROLE")?;
            for u in users {
                writeln!(
                    out,
                    "{:<24}  {:<6}  {}",
                    u.name,
                    u.role,
                    rfc3339(u.created_at_ms)
                )?;
            }
        }
        UserCommand::Remove { name } => {
            access::remove_user(&db.write, &name).await?;
            writeln!(out, "removed user {name:?}")?;
        }
    }
    Ok(())
}

pub async fn read_token(
    db: &Db,
    cmd: ReadTokenCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), AccessError> {
    let now_ms = system_now_ms();
    match cmd {
        ReadTokenCommand::Add { name, write } => {
            let token = access::add_read_token(&db.write, &name, now_ms, write).await?;
            writeln!(out, "{token}")?;
            writeln!(
                err,
                "read token {name:?}: it is shown once; only its hash is stored"
            )?;
        }
        ReadTokenCommand::List => {
            let list = access::list_read_tokens(&db.read).await?;
            if list.is_empty() {
                writeln!(err, "no read tokens; make one with `read-token add NAME`")?;
            }
            writeln!(
                out,
                "{:<24}  {:<20}  {:<20}  RIGHTS",
                "NAME", "CREATED", "REVOKED"
            )?;
            for t in list {
                let revoked = t.revoked_at_ms.map_or("-".to_owned(), rfc3339);
                let rights = if t.can_write != 0 {
                    "read, write"
                } else {
                    "read"
                };
                writeln!(
                    out,
                    "{:<24}  {:<20}  {revoked:<20}  {rights}",
                    t.name,
                    rfc3339(t.created_at_ms)
                )?;
            }
        }
        ReadTokenCommand::Revoke { name } => {
            let n = access::revoke_read_token(&db.write, &name, now_ms).await?;
            writeln!(out, "revoked {n} read token(s) named {name:?}")?;
        }
    }
    Ok(())
}
