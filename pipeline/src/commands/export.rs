//! `selfinstruct export RUN_DIR --format F --out PATH`: a run's kept data for fine-tuning tools.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{ExportArgs, ExportFormat};
use crate::export::{write, Format};

pub fn run(args: &ExportArgs) -> Result<ExitCode> {
    let format = match args.format {
        ExportFormat::Alpaca => Format::Alpaca,
        ExportFormat::Sharegpt => Format::Sharegpt,
        ExportFormat::Messages => Format::Messages,
        ExportFormat::PromptCompletion => Format::PromptCompletion,
        ExportFormat::Parquet => Format::Parquet,
    };
    let done = write(
        &args.run_dir,
        format,
        &args.out,
        args.include_seeds,
        args.force,
    )?;
    eprintln!(
        "wrote {} records ({} generated, {} from seed tasks) as {} to {}",
        done.records,
        done.generated_records,
        done.seed_records,
        format.name(),
        done.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
