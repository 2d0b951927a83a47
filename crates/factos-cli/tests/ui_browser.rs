//! `factos ui` in a real browser: headless Chromium (Debian's `chromium`,
//! or `FACTOS_CHROMIUM`), driven by `tests/ui_browser.cjs` through
//! playwright-core (installed with npm into the target directory on first
//! use). Screenshots of every page go to `target/ui-screenshots/`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod ui_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ui_support::{SALES, seeded, start};

fn chromium() -> PathBuf {
    let path = std::env::var_os("FACTOS_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: install Debian's `chromium` package (`.ci/run` does) or set FACTOS_CHROMIUM",
        path.display()
    );
    path
}

/// Where playwright-core is installed (once): `target/tmp/ui-browser`.
fn playwright() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--silent",
                "--prefix",
            ])
            .arg(&dir)
            .arg("playwright-core@1")
            .status()
            .expect("npm (Node.js) is needed for the browser test");
        assert!(status.success(), "npm install playwright-core failed");
    }
    dir.join("node_modules")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_work_in_headless_chromium() {
    let chromium = chromium();
    let modules = playwright();
    let (database, _store) = seeded().await;
    let ui = start(&database, &["--bind", "127.0.0.1:0", "--allow-writes"]);
    let viewer = start(&database, &["--bind", "127.0.0.1:0"]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui_browser.cjs");
    let output = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("CHROMIUM", &chromium)
        .env("UI_URL", format!("http://{}", ui.address))
        .env("UI_READ_ONLY_URL", format!("http://{}", viewer.address))
        .env("HEAD", (SALES + 2).to_string())
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.trim_end().ends_with(r#""checked":["events","filter","paging","detail","subscriptions","read-only","requeue","store","chart"]}"#), "{stdout}");
    for page in [
        "events",
        "events-filtered",
        "event",
        "subscriptions",
        "subscriber",
        "outbox",
        "outbox-parked",
        "store",
        "chart",
    ] {
        let file = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 1000,
            "no screenshot {}",
            file.display()
        );
    }
}
