//! `selfinstruct logits`: the last-layer logits of one token sequence, for comparing the model
//! with a reference implementation.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use model::load_any;

use crate::atomic::write_atomic;
use crate::cli::LogitsArgs;
use crate::commands::generate::parse_ids;
use crate::generator::local::LocalBackend;
use crate::model_source::resolve_model;

/// Writes `[positions, vocab]` little-endian f32 logits of one forward pass over `--ids`.
pub fn run(args: &LogitsArgs) -> Result<ExitCode> {
    let ids = parse_ids(&args.ids)?;
    let path = resolve_model(args.model.as_deref())?;
    let loaded = load_any::<LocalBackend>(&path, &Default::default())
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let logits = loaded.model.logits(&ids)?;
    let [positions, vocab] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| anyhow!("cannot read the logits: {e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(&args.out, &bytes)?;
    eprintln!(
        "wrote logits [{positions}, {vocab}] (little-endian f32) to {}",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
