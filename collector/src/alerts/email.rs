//! The email channel: a message as plain text over SMTP, with STARTTLS, implicit TLS or (for
//! a relay on the same host) none, and with a login when the server wants one.
//!
//! Config: `kind = "email"`, `url = "smtp://mail.example.net[:port]"`, `tls`, `from`, `to`,
//! `username` with `password` or `password_file`, and `ca_file` for a relay whose certificate
//! comes from a private CA. Files are read when the config is (at start and on SIGHUP), so a
//! missing one is refused with the rest of the config, not at 3 a.m. on the first page.

use std::fmt;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::SEND_TIMEOUT;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then STARTTLS, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465, "SMTPS").
    Implicit,
    /// No TLS at all: only for a relay on this host, and never with a login.
    None,
}

impl SmtpTls {
    fn parse(text: &str) -> Option<SmtpTls> {
        match text {
            "starttls" => Some(SmtpTls::Starttls),
            "implicit" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

/// An email channel's settings, checked.
#[derive(Clone, PartialEq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// User name and password.
    login: Option<(String, String)>,
    /// PEM certificates trusted besides the system's roots (`ca_file`).
    ca_pem: Option<Vec<u8>>,
}

// By hand, so that a config printed for debugging does not show the password.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.login.as_ref().map(|(u, _)| u))
            .field("ca_file", &self.ca_pem.is_some())
            .finish()
    }
}

/// The keys of `[[channel]]` that only an email channel has, as the file gives them.
#[derive(Debug, Default)]
pub struct EmailKeys {
    pub tls: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub ca_file: Option<String>,
}

impl EmailKeys {
    /// The first key set, for a channel of another kind (where it is an error).
    pub fn first_set(&self) -> Option<&'static str> {
        [
            ("tls", self.tls.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// Checks an email channel's keys; `at` is `channel "mail"`. The errors name the key, the
    /// value and what is allowed.
    pub fn check(self, at: &str, url: &str) -> Result<Email, String> {
        let tls = match self.tls.as_deref() {
            None => SmtpTls::Starttls,
            Some(t) => SmtpTls::parse(t).ok_or_else(|| {
                format!("{at}: tls: {t:?} is not allowed: starttls (default), implicit or none")
            })?,
        };
        let (host, port) = smtp_address(at, url, tls)?;
        let from = self
            .from
            .ok_or_else(|| format!("{at}: from: an email channel needs a sender"))?;
        let from: Mailbox = from.parse().map_err(|e| {
            format!("{at}: from: {from:?} is not an address like \"Causeway <causeway@example.net>\": {e}")
        })?;
        let to = self.to.unwrap_or_default();
        if to.is_empty() {
            return Err(format!("{at}: to: at least one recipient is required"));
        }
        let to = to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| format!("{at}: to: {t:?} is not an address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let password = match (self.password, self.password_file) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{at}: password and password_file are both set: give one"
                ));
            }
            (Some(p), None) => Some(p),
            (None, Some(file)) => Some(
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("{at}: password_file: cannot read {file:?}: {e}"))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let login = match (self.username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                    "{at}: username: a login needs password or password_file"
                ));
            }
            (None, Some(_)) => {
                return Err(format!("{at}: password: a login needs a username"));
            }
        };
        if login.is_some() && tls == SmtpTls::None {
            return Err(format!(
                "{at}: tls: \"none\" would send the password in clear: use starttls or implicit"
            ));
        }
        let ca_pem = match self.ca_file {
            None => None,
            Some(file) => {
                let pem = std::fs::read(&file)
                    .map_err(|e| format!("{at}: ca_file: cannot read {file:?}: {e}"))?;
                Certificate::from_pem(&pem).map_err(|e| {
                    format!("{at}: ca_file: {file:?} holds no PEM certificate: {e}")
                })?;
                Some(pem)
            }
        };
        Ok(Email {
            host,
            port,
            tls,
            from,
            to,
            login,
            ca_pem,
        })
    }
}

/// `smtp://host[:port]`, the port defaulting after `tls`.
fn smtp_address(at: &str, url: &str, tls: SmtpTls) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("{at}: url: {url:?} is not an smtp://host[:port] URL: {why}");
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "smtp" {
        return Err(bad(
            "the scheme must be smtp (tls = \"implicit\" for port 465)",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("the login goes in username and password_file"));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(bad("a path or query means nothing here"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, parsed.port().unwrap_or(tls.default_port())))
}

impl Email {
    /// Sends one message: `subject` and `body` as plain text, with a Message-ID made from the
    /// notification's key, so a receiver that sees the same message twice can tell.
    pub async fn send(&self, subject: String, body: String, key: &str) -> Result<(), String> {
        let mut message = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(self.message_id(key)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body)
            .map_err(|e| format!("{}: cannot build the message: {e}", self.shown()))?;
        let transport = self.transport()?;
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            // lettre's message already ends with its source's.
            Ok(Err(e)) => Err(format!("{}: {e}", self.shown())),
            Err(_) => Err(format!(
                "{}: no answer within {} s",
                self.shown(),
                SEND_TIMEOUT.as_secs()
            )),
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(SEND_TIMEOUT));
        if self.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                let ca = Certificate::from_pem(pem)
                    .map_err(|e| format!("{}: ca_file: {e}", self.shown()))?;
                params = params.add_root_certificate(ca);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("{}: TLS: {e}", self.shown()))?;
            builder = builder.tls(match self.tls {
                SmtpTls::Implicit => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some((user, password)) = &self.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }

    /// `<incident.12.down@example.net>`: the key with what a Message-ID may not hold replaced,
    /// at the sender's domain.
    fn message_id(&self, key: &str) -> String {
        let local: String = key
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "-_+=".contains(c) {
                true => c,
                false => '.',
            })
            .collect();
        format!("<causeway.{local}@{}>", self.from.email.domain())
    }

    /// `email smtp://mail.example.net:587`, the start of every error.
    fn shown(&self) -> String {
        format!("email smtp://{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> EmailKeys {
        EmailKeys {
            from: Some("Causeway <causeway@example.net>".into()),
            to: Some(vec!["oncall@example.net".into()]),
            ..EmailKeys::default()
        }
    }

    #[test]
    fn the_port_follows_tls_and_the_message_id_the_key() {
        let mail = keys().check("c", "smtp://mail.example.net").unwrap();
        assert_eq!((mail.host.as_str(), mail.port), ("mail.example.net", 587));
        assert_eq!(
            mail.message_id("incident:12/down"),
            "<causeway.incident.12.down@example.net>"
        );
        let implicit = EmailKeys {
            tls: Some("implicit".into()),
            ..keys()
        };
        assert_eq!(implicit.check("c", "smtp://[::1]").unwrap().port, 465);
        let relay = EmailKeys {
            tls: Some("none".into()),
            ..keys()
        };
        assert_eq!(
            relay.check("c", "smtp://127.0.0.1:2525").unwrap().port,
            2525
        );
    }

    #[test]
    fn bad_email_keys_name_the_key_and_what_is_allowed() {
        let cases: Vec<(EmailKeys, &str, &str)> = vec![
            (
                keys(),
                "https://mail",
                "url: \"https://mail\" is not an smtp://host[:port] URL: the scheme must be smtp",
            ),
            (
                keys(),
                "smtp://u:p@mail",
                "the login goes in username and password_file",
            ),
            (
                EmailKeys {
                    tls: Some("ssl".into()),
                    ..keys()
                },
                "smtp://m",
                "tls: \"ssl\" is not allowed: starttls (default), implicit or none",
            ),
            (
                EmailKeys {
                    from: None,
                    ..keys()
                },
                "smtp://m",
                "from: an email channel needs a sender",
            ),
            (
                EmailKeys {
                    from: Some("not an address".into()),
                    ..keys()
                },
                "smtp://m",
                "from: \"not an address\" is not an address",
            ),
            (
                EmailKeys {
                    to: Some(vec![]),
                    ..keys()
                },
                "smtp://m",
                "to: at least one recipient is required",
            ),
            (
                EmailKeys {
                    username: Some("u".into()),
                    ..keys()
                },
                "smtp://m",
                "username: a login needs password or password_file",
            ),
            (
                EmailKeys {
                    password: Some("p".into()),
                    ..keys()
                },
                "smtp://m",
                "password: a login needs a username",
            ),
            (
                EmailKeys {
                    username: Some("u".into()),
                    password: Some("p".into()),
                    tls: Some("none".into()),
                    ..keys()
                },
                "smtp://m",
                "would send the password in clear",
            ),
            (
                EmailKeys {
                    password_file: Some("/nonexistent/pw".into()),
                    username: Some("u".into()),
                    ..keys()
                },
                "smtp://m",
                "password_file: cannot read \"/nonexistent/pw\"",
            ),
            (
                EmailKeys {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..keys()
                },
                "smtp://m",
                "ca_file: cannot read",
            ),
        ];
        for (keys, url, want) in cases {
            let got = keys.check("channel \"mail\"", url).unwrap_err();
            assert!(
                got.starts_with("channel \"mail\": ") && got.contains(want),
                "{got:?} should contain {want:?}"
            );
        }
    }

    #[test]
    fn a_password_file_is_read_without_its_newline_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mail = EmailKeys {
            username: Some("causeway".into()),
            password_file: Some(file.display().to_string()),
            ..keys()
        }
        .check("c", "smtp://m")
        .unwrap();
        assert_eq!(mail.login, Some(("causeway".into(), "s3cret".into())));
        assert!(!format!("{mail:?}").contains("s3cret"));
    }
}
