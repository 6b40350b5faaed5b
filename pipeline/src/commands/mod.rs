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

use indicatif::{ProgressBar, ProgressStyle};

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
