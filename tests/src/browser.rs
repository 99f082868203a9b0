//! Real headless Chromium, driven through WebDriver (Debian's `chromium-driver`), inside a lab
//! host: the page is loaded, laid out and scripted as a person's browser would, and the test
//! reads what it rendered (`innerText`, the DOM after scripts) and saves screenshots.
//!
//! The WebDriver calls go through curl inside the host's namespace, like the lab's other HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::lab::{Host, Lab};
use crate::process::{Service, run};
use crate::wait::wait_for;

const PORT: u16 = 9515;

/// A chromedriver and one browser session in it.
pub struct Browser {
    host: Host,
    session: String,
    _driver: Service,
}

impl Browser {
    /// Starts chromedriver in `host` and a headless Chromium session with a window of
    /// 1400 x 1000 pixels.
    pub fn start(lab: &Lab, host: &Host) -> Result<Browser> {
        for (program, package) in [
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ] {
            if !Path::new(program).exists() {
                bail!(
                    "{program} is missing: install the Debian package {package} (scripts/install-test-deps does)"
                );
            }
        }
        let mut cmd = host.command("/usr/bin/chromedriver");
        cmd.arg(format!("--port={PORT}"));
        let mut driver = Service::spawn("chromedriver", &mut cmd, &lab.path("chromedriver.log"))?;
        let base = format!("http://127.0.0.1:{PORT}");
        wait_for("chromedriver to be ready", Duration::from_secs(20), || {
            if !driver.is_running() {
                bail!("chromedriver exited: {}", driver.log_text());
            }
            let status = run(host.command("curl").args([
                "-sS",
                "--max-time",
                "2",
                &format!("{base}/status"),
            ]));
            Ok(status
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .filter(|v| v["value"]["ready"] == true)
                .map(|_| ()))
        })?;
        let profile = lab.path("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut browser = Browser {
            host: host.clone(),
            session: String::new(),
            _driver: driver,
        };
        let created = browser.call("POST", "/session", &caps)?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no sessionId in the new session")?
            .to_owned();
        Ok(browser)
    }

    /// One WebDriver command; its `value`, or an error with WebDriver's message (an
    /// `unexpected alert open` here means a page ran script it should not have).
    fn call(&self, method: &str, path: &str, body: &Value) -> Result<Value> {
        let url = format!("http://127.0.0.1:{PORT}{path}");
        let out = run(self.host.command("curl").args([
            "-sS",
            "--max-time",
            "60",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
            &url,
        ]))?;
        let v: Value =
            serde_json::from_str(&out).with_context(|| format!("WebDriver {path}: {out}"))?;
        if let Some(error) = v["value"]["error"].as_str() {
            bail!(
                "WebDriver {method} {path}: {error}: {}",
                v["value"]["message"]
            );
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` and waits for the page's load event.
    pub fn open(&self, url: &str) -> Result<()> {
        self.call("POST", &self.session_path("/url"), &json!({ "url": url }))?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn execute(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            &json!({ "script": script, "args": [] }),
        )
    }

    /// The page's text as rendered (`document.body.innerText`).
    pub fn text(&self) -> Result<String> {
        let v = self.execute("return document.body.innerText;")?;
        v.as_str()
            .map(str::to_owned)
            .context("innerText is not a string")
    }

    /// Saves a screenshot of the whole page (resized to its height first) as PNG at `path`.
    pub fn screenshot(&self, path: &Path) -> Result<PathBuf> {
        let height = self.execute("return document.documentElement.scrollHeight;")?;
        let height = height.as_u64().unwrap_or(1000).clamp(600, 8000);
        self.call(
            "POST",
            &self.session_path("/window/rect"),
            &json!({ "width": 1400, "height": height }),
        )?;
        let png = self.call("GET", &self.session_path("/screenshot"), &json!({}))?;
        let png = png.as_str().context("the screenshot is not base64 text")?;
        let bytes = base64_decode(png)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.session_path(""), &json!({}));
        }
    }
}

/// Standard base64 (what WebDriver sends screenshots in), without a crate for it.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {:?}", c as char),
        }
        .into())
    };
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().filter(|&&b| b == b'=').count();
        let mut n = 0u32;
        for &b in chunk {
            n = (n << 6) | if b == b'=' { 0 } else { value(b)? };
        }
        n <<= 6 * (4 - chunk.len() as u32);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert!(base64_decode("T!==").is_err());
    }
}
