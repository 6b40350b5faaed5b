//! `selfinstruct inspect RUN_DIR`: what a run produced and why the rest was dropped, as terminal
//! tables (or JSON), PNG/SVG plots and a self-contained HTML report.

use std::process::ExitCode;

use anyhow::Result;

use crate::atomic::write_atomic;
use crate::cli::InspectArgs;
use crate::inspect::{html, inspect, plots, text, Options};

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    let options = Options {
        sample: args.sample,
        reason: args.reason.clone(),
        seeds: args.seeds.clone(),
        sft: args.sft.clone(),
    };
    let report = inspect(&args.run_dir, &options)?;
    if let Some(dir) = &args.plots {
        let written = plots::write_all(&report, dir)?;
        tracing::info!(files = written.len(), dir = %dir.display(), "plots written");
    }
    if let Some(path) = &args.html {
        write_atomic(path, html::render_html(&report)?.as_bytes())?;
        tracing::info!(path = %path.display(), "HTML report written");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}
