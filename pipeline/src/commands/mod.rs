//! One module per CLI command: argument handling, files and terminal output around the library.

pub mod dedup;
pub mod export;
pub mod export_model;
pub mod generate;
pub mod init;
pub mod inspect;
pub mod iterate;
pub mod logits;
pub mod rouge;
pub mod round;
pub mod seeds;
pub mod sft;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::EXIT_INTERRUPTED;

/// Installs Ctrl-C/SIGTERM handling for a long command: the first signal sets the returned flag
/// (the command stops cleanly at its next safe point); a second ends the process at once.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&stop),
        )
        .context("cannot install the Ctrl-C handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the Ctrl-C handler")?;
    }
    Ok(stop)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
