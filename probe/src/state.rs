//! The probe's memory between cycles, on disk: what it learned while things were healthy must
//! survive a restart of the probe and a reboot of the host, because that is exactly when it is
//! needed (a reboot that shuffled addresses, a backend gone since yesterday).
//!
//! One small JSON file, `state.json`, in the state directory. It is a cache, not a record:
//! losing it costs only what the next healthy cycle learns again, so a bad file never stops the
//! probe; it is set aside for people to look at and the probe starts afresh.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use causeway_schema::BackendIdentity;
use serde::{Deserialize, Serialize};

/// The layout written by this probe. A newer one is set aside rather than half understood.
pub const STATE_VERSION: u32 = 1;
const FILE_NAME: &str = "state.json";
/// A write in progress; one left by a crash is overwritten by the next save.
const TMP_NAME: &str = ".state.json.tmp";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ProbeState {
    pub version: u32,
    /// The boot id of the last cycle.
    pub boot_id: Option<String>,
    /// The host's addresses at the last cycle.
    pub own_addresses: Vec<IpAddr>,
    /// Backend identities learned while healthy, by canary name then configured address
    /// (`10.0.3.12:80`).
    pub backends: BTreeMap<String, BTreeMap<String, BackendIdentity>>,
}

/// Not derived: an empty state is still of the current layout.
impl Default for ProbeState {
    fn default() -> ProbeState {
        ProbeState {
            version: STATE_VERSION,
            boot_id: None,
            own_addresses: Vec::new(),
            backends: BTreeMap::new(),
        }
    }
}

/// Just the version, read before the rest so that a newer layout is reported as such.
#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    version: u32,
}

#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `dir/state.json`. The directory is not created here: the service manager makes it.
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join(FILE_NAME),
        }
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; an empty one when there is none yet. A file that cannot be read or
    /// understood is renamed `state.json.corrupt-<ms>`, with one warning, and an empty state
    /// returned.
    pub fn load(&self) -> ProbeState {
        let problem = match fs::read(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return ProbeState::default(),
            Err(e) => format!("cannot read it: {e}"),
            Ok(bytes) => match serde_json::from_slice::<Version>(&bytes) {
                Ok(v) if v.version > STATE_VERSION => format!(
                    "its version {} is newer than this probe's {STATE_VERSION}",
                    v.version
                ),
                _ => match serde_json::from_slice::<ProbeState>(&bytes) {
                    Ok(state) => return state,
                    Err(e) => format!("not a state file: {e}"),
                },
            },
        };
        let aside = self
            .path
            .with_file_name(format!("{FILE_NAME}.corrupt-{}", crate::now_ms()));
        let kept = match fs::rename(&self.path, &aside) {
            Ok(()) => format!("kept as {}", aside.display()),
            Err(e) => format!("cannot move it to {}: {e}", aside.display()),
        };
        tracing::warn!(
            "{}: {problem}; starting with an empty state ({kept})",
            self.path.display()
        );
        ProbeState::default()
    }

    /// Replaces the stored state: temp file, fsync, rename, fsync of the directory, so after a
    /// crash or a power loss the file is the old state or the new one, never a mix.
    pub fn save(&self, state: &ProbeState) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let tmp = dir.join(TMP_NAME);
        let bytes = serde_json::to_vec_pretty(state)?;
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", self.path.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Mutex};

    use causeway_schema::AnswerPrint;

    use super::*;

    fn state() -> ProbeState {
        let identity = BackendIdentity {
            mac: Some("02:42:0a:00:03:0c".into()),
            answer: Some(AnswerPrint {
                status: 200,
                body_digest: "cbf29ce484222325".into(),
                body_len: 12,
            }),
            name_addresses: vec!["10.0.3.12".parse().unwrap()],
            learned_at_ms: 1_763_900_000_000,
        };
        let app = BTreeMap::from([("10.0.3.12:80".to_owned(), identity)]);
        ProbeState {
            version: STATE_VERSION,
            boot_id: Some("6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1".into()),
            own_addresses: vec!["10.0.3.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            backends: BTreeMap::from([("shop".to_owned(), app)]),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Runs `f` with the log going to a string, returned with `f`'s result.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn saved_state_loads_back_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        let file = StateFile::new(tmp.path());
        file.save(&state()).unwrap();
        assert_eq!(file.load(), state());
        let mut next = state();
        next.boot_id = Some("0a7e1c94-1b5e-4d2a-9d0e-3c8f3e2b6a10".into());
        next.backends.clear();
        file.save(&next).unwrap();
        assert_eq!(file.load(), next, "replaced");
        let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_missing_file_is_an_empty_state_without_a_word() {
        let tmp = tempfile::tempdir().unwrap();
        let (got, log) = logged(|| StateFile::new(tmp.path()).load());
        assert_eq!(got, ProbeState::default());
        assert_eq!(got.version, STATE_VERSION);
        assert_eq!((log.as_str(), names(tmp.path())), ("", vec![]));
    }

    #[test]
    fn a_bad_file_is_set_aside_with_one_warning() {
        let newer = r#"{"version": 2, "backends": "elsewhere now"}"#;
        for (content, why) in [
            ("{\"version\": 1, \"boot_id\": ", "not a state file"),
            (newer, "its version 2 is newer than this probe's 1"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let file = StateFile::new(tmp.path());
            fs::write(file.path(), content).unwrap();
            let (got, log) = logged(|| file.load());
            assert_eq!(got, ProbeState::default());
            let left = names(tmp.path());
            assert_eq!(left.len(), 1, "{left:?}");
            assert!(left[0].starts_with("state.json.corrupt-"), "{left:?}");
            let aside = tmp.path().join(&left[0]);
            assert_eq!(
                fs::read_to_string(&aside).unwrap(),
                content,
                "kept as it was"
            );
            assert_eq!(log.matches("WARN").count(), 1, "{log}");
            let path = file.path().display().to_string();
            assert!(log.contains(&path) && log.contains(why), "{log}");
            assert!(log.contains(&aside.display().to_string()), "{log}");
            // The next save starts afresh.
            file.save(&state()).unwrap();
            assert_eq!(file.load(), state());
        }
    }

    #[test]
    fn an_unreadable_file_is_set_aside_too() {
        let tmp = tempfile::tempdir().unwrap();
        let file = StateFile::new(tmp.path());
        fs::create_dir(file.path()).unwrap();
        let (got, log) = logged(|| file.load());
        assert_eq!(got, ProbeState::default());
        assert!(log.contains("cannot read it"), "{log}");
        assert!(!file.path().exists());
    }

    #[test]
    fn save_leaves_no_temp_file_behind() {
        let tmp = tempfile::tempdir().unwrap();
        // One left by a crash in the middle of a write.
        fs::write(tmp.path().join(TMP_NAME), "{\"vers").unwrap();
        StateFile::new(tmp.path()).save(&state()).unwrap();
        assert_eq!(names(tmp.path()), ["state.json"]);
    }

    #[test]
    fn saving_into_a_missing_directory_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("gone");
        let err = StateFile::new(&dir).save(&state()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let path = dir.join("state.json").display().to_string();
        assert!(err.to_string().contains(&path), "{err}");
    }
}
