//! Delivering one notification on its channel: one POST, a 2xx answer is delivered, anything
//! else an error that says what came back (the sender retries).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::{Channel, ChannelKind};
use super::message::{Group, Message};

/// The header a webhook's signature is in: `sha256=` and the hex HMAC-SHA256 of the body
/// under the channel's secret.
pub const SIGNATURE_HEADER: &str = "X-Causeway-Signature";
/// The header with the message's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Bytes of an error answer kept in the notification's last error.
const ERROR_BODY_MAX: usize = 200;

/// Sends `messages` on `channel`: one message alone, or several DOWN of one cause as one
/// (see [`Group`]).
pub async fn send_all(
    http: &reqwest::Client,
    channel: &Channel,
    messages: &[Message],
) -> Result<(), String> {
    match messages {
        [] => Ok(()),
        [one] => send(http, channel, one).await,
        many => {
            let group = Group(many);
            let request = match channel.kind {
                ChannelKind::Webhook => {
                    let body = serde_json::to_vec(&group.webhook_body()).unwrap_or_default();
                    signed(http, channel, &group.key(), body)
                }
                ChannelKind::Slack => http.post(&channel.url).json(&serde_json::json!({
                    "username": "Causeway",
                    "text": format!("*{}*\n{}", group.title(), group.text()),
                })),
                ChannelKind::Ntfy => http
                    .post(&channel.url)
                    .body(group.text())
                    .header("Title", group.title())
                    .header("Priority", "5")
                    .header("Tags", format!("rotating_light,{}", many[0].cause)),
                // Alertmanager groups alerts itself: all of them in one POST.
                ChannelKind::Alertmanager => {
                    let alerts: Vec<serde_json::Value> = many
                        .iter()
                        .flat_map(|m| {
                            m.alertmanager_body()
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                        })
                        .collect();
                    let url = format!("{}/api/v2/alerts", channel.url.trim_end_matches('/'));
                    http.post(url).json(&alerts)
                }
                ChannelKind::Email => {
                    return mail(channel, group.title(), group.text(), &group.key()).await;
                }
            };
            answer(channel, request).await
        }
    }
}

/// A webhook POST of `body`, with its idempotency key and, with a secret, its signature.
fn signed(
    http: &reqwest::Client,
    channel: &Channel,
    key: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut r = http
        .post(&channel.url)
        .header("Content-Type", "application/json")
        .header(IDEMPOTENCY_HEADER, key);
    if let Some(secret) = &channel.secret {
        r = r.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    r.body(body)
}

pub async fn send(http: &reqwest::Client, channel: &Channel, m: &Message) -> Result<(), String> {
    let request = match channel.kind {
        ChannelKind::Webhook => {
            let body = serde_json::to_vec(&m.webhook_body()).unwrap_or_default();
            signed(http, channel, &m.key, body)
        }
        ChannelKind::Slack => http.post(&channel.url).json(&m.slack_body()),
        ChannelKind::Ntfy => {
            let mut r = http.post(&channel.url).body(m.text());
            for (name, value) in m.ntfy_headers() {
                if !value.is_empty() {
                    r = r.header(name, value);
                }
            }
            r
        }
        ChannelKind::Alertmanager => {
            let url = format!("{}/api/v2/alerts", channel.url.trim_end_matches('/'));
            http.post(url).json(&m.alertmanager_body())
        }
        ChannelKind::Email => return mail(channel, m.title(), m.text(), &m.key).await,
    };
    answer(channel, request).await
}

/// Mails `subject` and `body` on an email channel.
async fn mail(channel: &Channel, subject: String, body: String, key: &str) -> Result<(), String> {
    match &channel.email {
        Some(email) => email.send(subject, body, key).await,
        None => Err(format!("channel {:?} has no email settings", channel.name)),
    }
}

/// Sends `request`: a 2xx answer is delivered, anything else an error saying what came back.
async fn answer(channel: &Channel, request: reqwest::RequestBuilder) -> Result<(), String> {
    let answer = request.send().await.map_err(|e| {
        format!(
            "{} {}: {}",
            channel.kind.as_str(),
            channel.url,
            crate::outbound::error_chain(&e)
        )
    })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let body = answer.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_MAX)]);
    Err(format!(
        "{} {} answered {status}: {}",
        channel.kind.as_str(),
        channel.url,
        text.trim()
    ))
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` under `secret`, as receivers check it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
