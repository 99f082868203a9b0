//! The uploader task: whenever woken, it drains the spool to the collector, oldest first, and
//! backs off while the collector fails. It runs beside the service loop, which never waits
//! for it.

use std::sync::Arc;

use tokio::sync::{Notify, watch};

use super::{Backoff, UploadOutcome, Uploader};
use crate::config::format_duration;
use crate::signalled;
use crate::spool::{SharedSpool, SpoolError, with_spool};

/// Waits for a new value; forever once the sender is gone.
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The uploader task: drains the spool when woken, backs off while the collector fails. Each
/// drain uses the latest uploader (a reload may change the collector or the token); a new one
/// ends the backoff at once.
pub(crate) async fn upload_loop(
    spool: SharedSpool,
    mut uploaders: watch::Receiver<Uploader>,
    wake: Arc<Notify>,
    mut backoff: Backoff,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            () = signalled(&mut stop) => return,
            () = wake.notified() => {}
        }
        loop {
            let uploader = uploaders.borrow_and_update().clone();
            let drained = tokio::select! {
                biased;
                () = signalled(&mut stop) => return,
                drained = drain(&spool, &uploader, &mut backoff) => drained,
            };
            if drained {
                break;
            }
            let delay = backoff.next_delay();
            tracing::info!("next upload attempt in {}", format_duration(delay));
            tokio::select! {
                biased;
                () = signalled(&mut stop) => return,
                () = changed(&mut uploaders) => {
                    tracing::info!("new collector settings: uploading now");
                    backoff.reset();
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Uploads waiting reports, strictly oldest first, until the spool is empty (true) or an
/// upload must be retried later (false).
pub(crate) async fn drain(spool: &SharedSpool, uploader: &Uploader, backoff: &mut Backoff) -> bool {
    loop {
        let next = with_spool(spool, |s| {
            let name = s.oldest()?;
            s.set_in_flight(name.clone());
            Ok::<_, SpoolError>(name.map(|n| {
                let bytes = s.read(&n);
                (n, bytes)
            }))
        })
        .await;
        let (name, bytes) = match next {
            Ok(Some(next)) => next,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!("cannot look into the spool: {e}");
                return false;
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                // An unreadable file would block the queue forever: set it aside.
                tracing::error!("cannot read spooled report {name}: {e}; moving it aside");
                set_aside(spool, &name).await;
                continue;
            }
        };
        let outcome = uploader.upload(bytes).await;
        match outcome {
            UploadOutcome::Acked => {
                backoff.reset();
                let n = name.clone();
                if let Err(e) = with_spool(spool, move |s| {
                    s.set_in_flight(None);
                    s.ack(&n)
                })
                .await
                {
                    // It will be sent again; the collector stores a report id once.
                    tracing::error!("uploaded {name} but cannot remove it: {e}");
                    return false;
                }
                tracing::debug!("uploaded {name}");
            }
            UploadOutcome::Rejected(message) => {
                tracing::error!(
                    "the collector rejected report {name} for good: {message}; it is kept in the spool's rejected/ directory and not sent again"
                );
                set_aside(spool, &name).await;
            }
            UploadOutcome::Unauthorized(message) => {
                not_in_flight(spool).await;
                tracing::error!(
                    "the collector refused our token ({message}): the token is wrong or belongs to another server; reports are kept and sent again"
                );
                return false;
            }
            UploadOutcome::Retry(message) => {
                not_in_flight(spool).await;
                tracing::warn!("upload of {name} failed, will retry: {message}");
                return false;
            }
        }
    }
}

/// The upload is over: during a long outage the oldest report may be dropped like any other
/// when the spool is full.
async fn not_in_flight(spool: &SharedSpool) {
    with_spool(spool, |s| s.set_in_flight(None)).await;
}

async fn set_aside(spool: &SharedSpool, name: &str) {
    let n = name.to_owned();
    match with_spool(spool, move |s| {
        s.set_in_flight(None);
        s.reject(&n)
    })
    .await
    {
        Ok(path) => tracing::error!("moved {name} to {}", path.display()),
        Err(e) => tracing::error!("cannot move {name} out of the queue: {e}"),
    }
}
