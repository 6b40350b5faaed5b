//! The HTML report of `selfinstruct inspect` opens in headless Chromium without console errors and
//! shows every plot. Skipped, with the reason printed, where no Chromium is installed (`.ci/run`
//! installs Debian's `chromium`).
//!
//! Set `INSPECT_SCREENSHOT=FILE.png` to keep a screenshot of the page to look at.

use std::path::PathBuf;
use std::process::Command;

use selfinstruct_tests::{repo_root, run_in, texts};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `args`; returns (stdout, stderr).
fn headless(browser: &PathBuf, args: &[&str], url: &str) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", browser.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    texts(&out)
}

#[test]
fn html_report_opens_in_chromium_and_shows_the_plots() {
    let Some(browser) = chromium() else {
        println!("skipped: no chromium in PATH (install Debian's `chromium` to run this check)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let run = repo_root().join("tests/fixtures/inspect/run");
    let out = run_in(
        dir.path(),
        &[
            "inspect",
            run.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let url = format!("file://{}", html.display());

    let (dom, log) = headless(&browser, &["--dump-dom"], &url);
    // Console messages (script errors, resources that fail to load) are logged as CONSOLE lines.
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    for plot in [
        "funnel",
        "rouge_seed",
        "rouge_generated",
        "verb_noun",
        "acceptance",
    ] {
        let start = dom
            .find(&format!("id=\"plot-{plot}\""))
            .unwrap_or_else(|| panic!("no plot {plot} in the rendered page"));
        let figure = &dom[start..];
        let svg = figure.find("<svg").expect("an inline SVG");
        assert!(
            svg < figure.find("</figure>").unwrap(),
            "{plot}: SVG outside its figure"
        );
    }
    assert!(dom.contains("Funnel: candidate instructions left after each step"));

    let shot = std::env::var_os("INSPECT_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("report.png"));
    let arg = format!("--screenshot={}", shot.display());
    headless(&browser, &[&arg, "--window-size=1200,2600"], &url);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few KB; the plots make it far larger.
    assert!(png.len() > 50_000, "screenshot of {} bytes", png.len());
}
