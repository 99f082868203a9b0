//! Processes a test starts: commands run to completion, and services kept running.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::wait::wait_for;

/// Runs `cmd` to completion; an error carries its exit status and what it printed.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A long-running process with its output in a log file. Stopped on drop.
pub struct Service {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Service {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Service> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Service {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (a name such as `TERM`, `HUP`) to the process.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("the service is not running")?;
        run(Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()))?;
        Ok(())
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited within 5 s. Returns its
    /// exit status, when it exited by itself.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.stop_within(Duration::from_secs(5))
    }

    /// [`Service::stop`] with `grace` between SIGTERM and SIGKILL, for a process whose clean
    /// exit is allowed to take a while (the probe's last upload attempt).
    pub fn stop_within(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = wait_for(&format!("{} to exit", self.name), grace, || {
            Ok(child.try_wait()?)
        });
        match exited {
            Ok(status) => Some(status),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Waits until the log holds `text` (a program saying it is ready), at most `patience`;
    /// fails at once, with the log, if the process exits first.
    pub fn wait_for_log(&mut self, text: &str, patience: Duration) -> Result<()> {
        wait_for(
            &format!("{} to print {text:?}", self.name),
            patience,
            || {
                if !self.is_running() {
                    bail!("{} exited: {}", self.name, self.log_text());
                }
                Ok(self.log_text().contains(text).then_some(()))
            },
        )
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
