//! The on-disk outbox: every report is written here before it is uploaded and removed only
//! when the collector acknowledged it, so a crash or a collector outage loses nothing.
//!
//! Layout of the spool directory:
//! - `{started_at_ms:013}-{report_id}.json`: reports waiting, oldest first by name. The file is
//!   the exact body that is uploaded, so a replay sends the same bytes.
//! - `.tmp-*`: a write in progress; one left by a crash is incomplete and removed on open.
//! - `dropped_total`: how many reports were dropped because the spool was full or could not
//!   be written (decimal).
//! - `rejected/`: reports the collector refused for good, kept for people to look at.
//!
//! Every write is temp file, fsync, rename, fsync of the directory: after a crash a file is
//! either complete or absent.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use causeway_schema::{Report, SpoolStats};

const TMP_PREFIX: &str = ".tmp-";
const DROPPED_FILE: &str = "dropped_total";
const REJECTED_DIR: &str = "rejected";
/// Rejected reports kept; older ones are deleted.
pub const REJECTED_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "cannot create the spool directory {path}: {source} (create it, owned by the probe's user, or set spool_dir)"
    )]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "cannot write in the spool directory {path}: {source} (it must be writable by the probe's user)"
    )]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot list the spool directory {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The outbox. Not shared between processes; within the probe it sits behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_reports: u64,
    dropped_total: u64,
    /// The report being uploaded: never evicted under the uploader's feet.
    in_flight: Option<String>,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory, removes leftovers of interrupted
    /// writes and reads the dropped-reports counter.
    pub fn open(dir: &Path, max_reports: u64) -> Result<Spool, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SpoolError::Create {
                path: dir.to_owned(),
                source,
            })?;
        let spool = Spool {
            dir: dir.to_owned(),
            max_reports,
            dropped_total: 0,
            in_flight: None,
        };
        for entry in spool.entries()? {
            if entry.starts_with(TMP_PREFIX) {
                let path = dir.join(&entry);
                tracing::info!("removing {}: left by an interrupted write", path.display());
                fs::remove_file(&path).map_err(|source| SpoolError::Remove { path, source })?;
            }
        }
        // Fail now, with a clear message, rather than at the first report.
        write_atomically(dir, ".write-check", b"ok").map_err(|e| match e {
            SpoolError::Write { source, .. } => SpoolError::NotWritable {
                path: dir.to_owned(),
                source,
            },
            other => other,
        })?;
        let check = dir.join(".write-check");
        fs::remove_file(&check).map_err(|source| SpoolError::Remove {
            path: check,
            source,
        })?;
        let dropped_path = dir.join(DROPPED_FILE);
        let dropped_total = match fs::read_to_string(&dropped_path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(
                    "{} does not hold a number ({:?}); counting dropped reports from 0",
                    dropped_path.display(),
                    text.trim()
                );
                0
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; counting dropped reports from 0",
                    dropped_path.display()
                );
                0
            }
        };
        Ok(Spool {
            dropped_total,
            ..spool
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reports dropped because the spool was full or could not be written, since the spool
    /// was created.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// The waiting reports' file names, oldest first.
    pub fn pending(&self) -> Result<Vec<String>, SpoolError> {
        let mut names: Vec<String> = self
            .entries()?
            .into_iter()
            .filter(|n| is_report_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The oldest waiting report's file name.
    pub fn oldest(&self) -> Result<Option<String>, SpoolError> {
        Ok(self.pending()?.into_iter().next())
    }

    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        Ok(SpoolStats {
            queued: self.pending()?.len() as u64,
            dropped_total: self.dropped_total,
        })
    }

    /// Marks the report being uploaded (or none), so that making room never deletes it.
    pub fn set_in_flight(&mut self, name: Option<String>) {
        self.in_flight = name;
    }

    /// Writes a report, first dropping the oldest ones if the spool is full. Fills in the
    /// report's spool stats as they are after this write (the report itself not counted).
    /// Returns the file name.
    ///
    /// A report that cannot be written (a full disk, a read-only file system) is lost, and
    /// counted as dropped: the next report that gets out carries the count, so the collector
    /// shows the loss rather than a gap.
    pub fn push(&mut self, report: &mut Report) -> Result<String, SpoolError> {
        let pushed = self.write_report(report);
        if pushed.is_err() {
            self.dropped_total += 1;
            if let Err(e) = self.persist_dropped() {
                tracing::debug!("cannot persist the dropped count either: {e}");
            }
        }
        pushed
    }

    fn write_report(&mut self, report: &mut Report) -> Result<String, SpoolError> {
        let mut pending = self.pending()?;
        let max = usize::try_from(self.max_reports).unwrap_or(usize::MAX);
        let excess = (pending.len() + 1).saturating_sub(max);
        if excess > 0 {
            let victims: Vec<String> = pending
                .iter()
                .filter(|n| self.in_flight.as_ref() != Some(*n))
                .take(excess)
                .cloned()
                .collect();
            for name in &victims {
                self.remove(name)?;
            }
            pending.retain(|n| !victims.contains(n));
            self.dropped_total += victims.len() as u64;
            self.persist_dropped()?;
            tracing::warn!(
                "spool full ({} reports): dropped the {} oldest report(s), {} dropped in total",
                self.max_reports,
                victims.len(),
                self.dropped_total
            );
        }
        report.spool = SpoolStats {
            queued: pending.len() as u64,
            dropped_total: self.dropped_total,
        };
        let name = report_name(report);
        let bytes = serde_json::to_vec(report)?;
        write_atomically(&self.dir, &name, &bytes)?;
        Ok(name)
    }

    /// The stored bytes of a waiting report.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    /// The collector has the report: forget it.
    pub fn ack(&mut self, name: &str) -> Result<(), SpoolError> {
        self.remove(name)
    }

    /// The collector refused the report for good: move it to `rejected/` for people to look
    /// at (keeping at most [`REJECTED_MAX`]). Returns its new path.
    pub fn reject(&mut self, name: &str) -> Result<PathBuf, SpoolError> {
        let rejected = self.dir.join(REJECTED_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&rejected)
            .map_err(|source| SpoolError::Create {
                path: rejected.clone(),
                source,
            })?;
        let from = self.dir.join(name);
        let to = rejected.join(name);
        fs::rename(&from, &to).map_err(|source| SpoolError::Move {
            from: from.clone(),
            to: to.clone(),
            source,
        })?;
        sync_dir(&rejected)?;
        sync_dir(&self.dir)?;
        let mut kept: Vec<String> = list(&rejected)?
            .into_iter()
            .filter(|n| is_report_name(n))
            .collect();
        kept.sort();
        let excess = kept.len().saturating_sub(REJECTED_MAX);
        for old in &kept[..excess] {
            let path = rejected.join(old);
            fs::remove_file(&path).map_err(|source| SpoolError::Remove { path, source })?;
        }
        Ok(to)
    }

    /// Removes a report without syncing the directory: should a crash undo the removal, the
    /// report is sent again and the collector answers it as a duplicate (it keeps report ids),
    /// or it is dropped again to make room. Saves an fsync per cycle.
    fn remove(&self, name: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            // Already gone (made room for a newer report meanwhile): nothing to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::Remove { path, source }),
        }
    }

    fn persist_dropped(&self) -> Result<(), SpoolError> {
        write_atomically(
            &self.dir,
            DROPPED_FILE,
            format!("{}\n", self.dropped_total).as_bytes(),
        )
    }

    fn entries(&self) -> Result<Vec<String>, SpoolError> {
        list(&self.dir)
    }
}

fn list(dir: &Path) -> Result<Vec<String>, SpoolError> {
    let err = |source| SpoolError::List {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// `1763900000000-<uuid>.json`: the zero-padded start time makes name order time order.
pub fn report_name(report: &Report) -> String {
    format!(
        "{:013}-{}.json",
        report.started_at_ms.max(0),
        report.report_id
    )
}

fn is_report_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    let Some((time, id)) = stem.split_once('-') else {
        return false;
    };
    time.len() >= 13
        && time.bytes().all(|b| b.is_ascii_digit())
        && uuid::Uuid::parse_str(id).is_ok()
}

/// Temp file, fsync, rename, fsync of the directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let path = dir.join(name);
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(SpoolError::Write { path, source });
    }
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// The spool, shared by the cycle loop (writes) and the uploader (reads and removes). Every
/// use goes through [`with_spool`], off the async threads: fsync can take a while.
pub type SharedSpool = Arc<Mutex<Spool>>;

/// Writes a report to the spool; returns its file name.
pub async fn spool_report(spool: &SharedSpool, mut report: Report) -> Result<String, SpoolError> {
    with_spool(spool, move |s| s.push(&mut report)).await
}

/// Runs `f` on the spool on a blocking thread.
pub async fn with_spool<T: Send + 'static>(
    spool: &SharedSpool,
    f: impl FnOnce(&mut Spool) -> T + Send + 'static,
) -> T {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || f(&mut spool.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .expect("spool operation panicked")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use causeway_schema::{ProbeInfo, SCHEMA_VERSION};
    use uuid::Uuid;

    use super::*;

    fn report(started_at_ms: i64) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            report_id: causeway_schema::ReportId::new(),
            server: "web-01".into(),
            probe: ProbeInfo {
                host: "web-01".into(),
                version: "0.1.0".into(),
            },
            started_at_ms,
            interval_s: 30,
            results: Vec::new(),
            resolutions: Vec::new(),
            spool: SpoolStats::default(),
            host: None,
            cycle: None,
        }
    }

    fn started_at(spool: &Spool, name: &str) -> i64 {
        let bytes = spool.read(name).unwrap();
        serde_json::from_slice::<Report>(&bytes)
            .unwrap()
            .started_at_ms
    }

    #[test]
    fn creates_the_directory_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/spool");
        let spool = Spool::open(&dir, 10).unwrap();
        let mode = fs::metadata(spool.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(spool.pending().unwrap().is_empty());
    }

    #[test]
    fn unusable_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let err = Spool::open(&file.join("spool"), 10).unwrap_err();
        assert!(matches!(err, SpoolError::Create { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("cannot create the spool directory"),
            "{err}"
        );
    }

    #[test]
    fn reports_are_listed_oldest_first_with_their_exact_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let mut names = Vec::new();
        for t in [1_763_900_000_300, 1_763_900_000_100, 1_763_900_000_200] {
            let mut r = report(t);
            let name = spool.push(&mut r).unwrap();
            assert_eq!(name, format!("{t:013}-{}.json", r.report_id));
            assert_eq!(spool.read(&name).unwrap(), serde_json::to_vec(&r).unwrap());
            names.push(name);
        }
        let order: Vec<i64> = spool
            .pending()
            .unwrap()
            .iter()
            .map(|n| started_at(&spool, n))
            .collect();
        assert_eq!(
            order,
            [1_763_900_000_100, 1_763_900_000_200, 1_763_900_000_300]
        );
        assert_eq!(spool.stats().unwrap().queued, 3);
    }

    #[test]
    fn push_fills_in_the_spool_stats() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let mut first = report(1_000);
        spool.push(&mut first).unwrap();
        assert_eq!(first.spool.queued, 0, "the report itself is not counted");
        let mut second = report(2_000);
        let name = spool.push(&mut second).unwrap();
        assert_eq!(second.spool.queued, 1);
        let stored: Report = serde_json::from_slice(&spool.read(&name).unwrap()).unwrap();
        assert_eq!(stored.spool.queued, 1, "the stored bytes carry the stats");
    }

    /// A report that cannot be written is counted, and the next one that is carries the count.
    /// (Root ignores permissions: a directory where the report's temp file goes makes the
    /// write fail.)
    #[test]
    fn a_report_that_cannot_be_written_is_counted_as_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let mut lost = report(1_000);
        let in_the_way = tmp
            .path()
            .join(format!("{TMP_PREFIX}{}", report_name(&lost)));
        fs::create_dir(&in_the_way).unwrap();
        spool.push(&mut lost).unwrap_err();
        assert_eq!(spool.dropped_total(), 1);
        let mut next = report(2_000);
        spool.push(&mut next).unwrap();
        assert_eq!(next.spool.dropped_total, 1);
        drop(spool);
        fs::remove_dir(&in_the_way).unwrap();
        assert_eq!(
            Spool::open(tmp.path(), 10).unwrap().dropped_total(),
            1,
            "persisted"
        );
    }

    #[test]
    fn full_spool_drops_the_oldest_and_the_count_survives_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        for t in 0..10 {
            spool.push(&mut report(1_000 + t)).unwrap();
        }
        assert_eq!(spool.dropped_total(), 0);
        let mut r = report(2_000);
        spool.push(&mut r).unwrap();
        assert_eq!(spool.dropped_total(), 1);
        assert_eq!(r.spool.dropped_total, 1);
        assert_eq!(r.spool.queued, 9);
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 10);
        assert_eq!(started_at(&spool, &pending[0]), 1_001, "the oldest went");

        spool.push(&mut report(2_001)).unwrap();
        drop(spool);
        let spool = Spool::open(tmp.path(), 10).unwrap();
        assert_eq!(spool.dropped_total(), 2, "persisted");
        assert_eq!(spool.pending().unwrap().len(), 10);
    }

    #[test]
    fn the_report_being_uploaded_is_not_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        for t in 0..10 {
            spool.push(&mut report(1_000 + t)).unwrap();
        }
        let oldest = spool.oldest().unwrap().unwrap();
        spool.set_in_flight(Some(oldest.clone()));
        spool.push(&mut report(2_000)).unwrap();
        let pending = spool.pending().unwrap();
        assert!(pending.contains(&oldest));
        assert_eq!(
            started_at(&spool, &pending[1]),
            1_002,
            "the next oldest went instead"
        );
    }

    #[test]
    fn ack_removes_and_tolerates_a_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let name = spool.push(&mut report(1_000)).unwrap();
        spool.ack(&name).unwrap();
        assert!(spool.pending().unwrap().is_empty());
        spool.ack(&name).unwrap();
    }

    #[test]
    fn rejected_reports_are_moved_and_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let name = spool.push(&mut report(1_000)).unwrap();
        let bytes = spool.read(&name).unwrap();
        let moved = spool.reject(&name).unwrap();
        assert_eq!(moved, tmp.path().join("rejected").join(&name));
        assert_eq!(fs::read(&moved).unwrap(), bytes, "kept as it was");
        assert!(spool.pending().unwrap().is_empty(), "never retried");

        // Fill rejected/ past the cap directly, then reject one more.
        let rejected = tmp.path().join("rejected");
        for i in 0..REJECTED_MAX {
            let fake = format!("{:013}-{}.json", 2_000 + i, Uuid::now_v7());
            fs::write(rejected.join(fake), "{}").unwrap();
        }
        let name = spool.push(&mut report(9_000)).unwrap();
        spool.reject(&name).unwrap();
        let mut kept: Vec<String> = list(&rejected).unwrap();
        kept.sort();
        assert_eq!(kept.len(), REJECTED_MAX);
        assert!(
            !kept.iter().any(|n| n.starts_with("0000000001000-")),
            "the oldest went"
        );
        assert_eq!(kept.last().unwrap(), &name);
    }

    #[test]
    fn leftover_temp_files_are_removed_and_other_files_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), 10).unwrap();
        let name = spool.push(&mut report(1_000)).unwrap();
        let leftover = tmp.path().join(format!("{TMP_PREFIX}0000000002000-x.json"));
        fs::write(&leftover, "{\"half").unwrap();
        fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
        drop(spool);
        let spool = Spool::open(tmp.path(), 10).unwrap();
        assert!(!leftover.exists());
        assert_eq!(spool.pending().unwrap(), vec![name]);
        assert!(tmp.path().join("notes.txt").exists());
    }

    #[test]
    fn names_are_recognised_strictly() {
        assert!(is_report_name(&format!(
            "1763900000000-{}.json",
            Uuid::nil()
        )));
        assert!(!is_report_name("dropped_total"));
        assert!(!is_report_name(&format!(
            ".tmp-1763900000000-{}.json",
            Uuid::nil()
        )));
        assert!(!is_report_name("1763900000000-not-a-uuid.json"));
        assert!(!is_report_name(&format!("12-{}.json", Uuid::nil())));
    }
}
