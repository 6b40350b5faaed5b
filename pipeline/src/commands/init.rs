//! `selfinstruct init`: writes the commented default `pipeline.toml`.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::atomic::write_atomic;
use crate::cli::InitArgs;
use crate::round::DEFAULT_TOML;

pub fn run(args: &InitArgs) -> Result<ExitCode> {
    if args.out.exists() && !args.force {
        bail!(
            "{} exists; pass --force to overwrite it",
            args.out.display()
        );
    }
    write_atomic(&args.out, DEFAULT_TOML.as_bytes())?;
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
