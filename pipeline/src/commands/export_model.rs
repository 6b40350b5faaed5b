//! `selfinstruct export-model`: a checkpoint (a GGUF file, or a folder) written back out as a
//! Hugging Face checkpoint folder, through `model::export_hf`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use model::{export_hf, load_any, ExportDtype, ExportOptions};

use crate::cli::{DtypeArg, ExportModelArgs};
use crate::generator::local::LocalBackend;
use crate::model_source::resolve_model;

pub fn run(args: &ExportModelArgs) -> Result<ExitCode> {
    let path = resolve_model(args.model.as_deref())?;
    let loaded = load_any::<LocalBackend>(&path, &Default::default())
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let options = ExportOptions {
        dtype: match args.dtype {
            DtypeArg::F32 => ExportDtype::F32,
            DtypeArg::Bf16 => ExportDtype::Bf16,
        },
        overwrite: args.force,
        ..Default::default()
    };
    let summary = export_hf(&loaded.model, &loaded.config, &path, &args.out, &options)
        .with_context(|| format!("cannot export {} to {}", path.display(), args.out.display()))?;
    eprintln!(
        "wrote {} ({} tensors, {:.1} MB of {}, files: {})",
        summary.out.display(),
        summary.tensors,
        summary.tensor_bytes as f64 / 1e6,
        options.dtype.torch_name(),
        summary.files.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
