//! Write a model back out as a Hugging Face checkpoint folder that transformers and vLLM load
//! as it is: `config.json`, `model.safetensors` (or shards and their index), and the
//! tokenizer, chat template and generation files.
//!
//! The weights are read from the burn modules as they are. A model loaded from a GGUF file is
//! already in Hugging Face layout (the loader un-permutes llama's q/k rows), so its export is the
//! original architecture's checkpoint; tests compare the reloaded export's logits with the model's
//! (`tests/export.rs`), and `tests/fixtures/export/check_transformers.py` with transformers'.
//!
//! Nothing is ever half-written: the folder is built in a temporary folder beside the
//! destination and renamed into place at the end. An existing destination must be an empty
//! folder unless [`ExportOptions::overwrite`] is set.

mod config_json;
mod tensors;
mod tokenizer_files;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::model::Model;
use crate::weights::LoadError;

pub use tokenizer_files::COPIED_FILES;

/// Shards above this many bytes of tensor data, as transformers' `save_pretrained` does by
/// default in version 4 ("5GB"), kept under 4 GiB for tools that use 32-bit sizes.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 4_000_000_000;

/// Errors of [`export_hf`]; each names the file or tensor.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path} exists and is not an empty folder; choose another destination or allow overwriting it")]
    DestinationNotEmpty { path: PathBuf },
    #[error("{path} exists and is not a folder")]
    DestinationNotFolder { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    #[error("the model uses {0}, which transformers does not implement; its export would compute something else")]
    NotExpressible(String),
    #[error("tensor `{tensor}`: {message}")]
    Inconsistent { tensor: String, message: String },
    #[error("`{tensor}` has a LoRA adapter attached; merge the adapters into the base weights first (model::lora::merge_lora)")]
    UnmergedAdapter { tensor: String },
    #[error("the config.json to be written does not validate: {0}")]
    WrittenConfig(ConfigError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io {
        path,
        action,
        source,
    }
}

/// The dtype of the written weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportDtype {
    /// The model's own precision: the export reloads bit for bit.
    #[default]
    F32,
    /// Half the size; rounded to nearest even, as torch does.
    Bf16,
}

impl ExportDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 => 2,
        }
    }

    /// The name `config.json`'s `torch_dtype` uses.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
        }
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub dtype: ExportDtype,
    /// Replace an existing non-empty destination folder (only once the new one is complete).
    pub overwrite: bool,
    /// Split the weights into shards of at most this many bytes (a larger tensor gets a shard
    /// of its own).
    pub max_shard_bytes: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            dtype: ExportDtype::F32,
            overwrite: false,
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
        }
    }
}

/// What [`export_hf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The checkpoint folder.
    pub out: PathBuf,
    pub dtype: ExportDtype,
    /// Number of tensors written.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub tensor_bytes: u64,
    /// Whether the head is tied to the embedding (no `lm_head.weight`).
    pub tied: bool,
    /// Every file written, by name, `config.json` first, then the weights.
    pub files: Vec<String>,
}

/// Export `model` (built with `config`, loaded from `source`: a Hugging Face folder or a GGUF
/// file) as a Hugging Face checkpoint folder `out`.
///
/// From a folder, the tokenizer and generation files are copied through (see
/// [`COPIED_FILES`]) and its `config.json` is the starting point of the new one; from a GGUF
/// file, they are written from its metadata. The model must be in the plain architecture:
/// LoRA adapters are merged into the base weights first ([`crate::lora::merge_lora`]); an
/// attached adapter is an error.
pub fn export_hf<B: Backend>(
    model: &Model<B>,
    config: &Config,
    source: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let tied = model.lm_head.is_none();
    // Everything that can fail on the inputs fails before any file is created.
    let tensors = tensors::collect(model, config, options.dtype)?;
    let from_folder = source.is_dir();
    let (config_json, gguf_text) = if from_folder {
        let map = config_json::read_source(&source.join("config.json"))?;
        (
            config_json::from_source(map, config, tied, options.dtype)?,
            None,
        )
    } else {
        let text = tokenizer_files::GgufText::read(source)?;
        let json = config_json::from_scratch(config, tied, options.dtype, &text.special_ids())?;
        (json, Some(text))
    };
    // Our own loader must read back what transformers will read.
    Config::from_json(&config_json.to_string()).map_err(ExportError::WrittenConfig)?;

    let staging = Staging::begin(out, options.overwrite)?;
    let dir = staging.path();
    write_json(&dir.join("config.json"), &config_json)?;
    let mut files = vec!["config.json".to_string()];
    files.extend(tensors::write_safetensors(
        &tensors,
        dir,
        options.max_shard_bytes,
    )?);
    files.extend(match &gguf_text {
        None => tokenizer_files::copy_from_folder(source, dir)?,
        Some(text) => text.write(dir, config.max_position_embeddings())?,
    });
    staging.commit()?;
    tracing::info!(out = %out.display(), files = files.len(), "exported checkpoint");
    Ok(ExportSummary {
        out: out.to_path_buf(),
        dtype: options.dtype,
        tensors: tensors.len(),
        tensor_bytes: tensors.iter().map(|t| t.byte_len() as u64).sum(),
        tied,
        files,
    })
}

/// A temporary folder beside the destination that becomes the destination on
/// [`Staging::commit`]; dropped before that, it is removed with everything in it.
struct Staging {
    temp: tempfile::TempDir,
    out: PathBuf,
    parent: PathBuf,
    /// Whether `out` exists with content that `commit` replaces.
    replace: bool,
}

impl Staging {
    fn begin(out: &Path, overwrite: bool) -> Result<Self, ExportError> {
        let mut replace = false;
        match std::fs::symlink_metadata(out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(out, "inspect")(e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(ExportError::DestinationNotFolder {
                    path: out.to_path_buf(),
                })
            }
            Ok(_) => {
                let empty = std::fs::read_dir(out)
                    .map_err(io(out, "read"))?
                    .next()
                    .is_none();
                if !empty && !overwrite {
                    return Err(ExportError::DestinationNotEmpty {
                        path: out.to_path_buf(),
                    });
                }
                replace = !empty;
            }
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent, "create the folder"))?;
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.export-"))
            .tempdir_in(&parent)
            .map_err(io(&parent, "create a temporary folder in"))?;
        Ok(Self {
            temp,
            out: out.to_path_buf(),
            parent,
            replace,
        })
    }

    fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Moves the finished folder into place. An empty destination folder is replaced by the
    /// rename itself; a non-empty one (overwrite) is moved aside first and removed only after
    /// the new folder is in place, and moved back if that fails.
    fn commit(self) -> Result<(), ExportError> {
        let out = &self.out;
        let rename = |from: &Path| std::fs::rename(from, out).map_err(io(out, "move into place"));
        if self.replace {
            let aside = tempfile::Builder::new()
                .prefix(&format!(
                    ".{}.replaced-",
                    out.file_name().unwrap_or_default().to_string_lossy()
                ))
                .tempdir_in(&self.parent)
                .map_err(io(&self.parent, "create a temporary folder in"))?;
            let old = aside.path().join("old");
            std::fs::rename(out, &old).map_err(io(out, "move aside"))?;
            if let Err(e) = rename(self.temp.path()) {
                // Best effort: the old folder goes back; `aside` is not removed if this fails.
                if std::fs::rename(&old, out).is_ok() {
                    drop(aside);
                } else {
                    let _ = aside.keep();
                }
                return Err(e);
            }
            drop(aside);
        } else {
            rename(self.temp.path())?;
        }
        // The temporary folder is the destination now; nothing is left to remove.
        let _ = self.temp.keep();
        // Make the rename durable (best effort: not every platform can sync a folder).
        if let Ok(parent) = std::fs::File::open(&self.parent) {
            let _ = parent.sync_all();
        }
        Ok(())
    }
}

/// Flushes a written file to disk.
fn sync_file(path: &Path) -> Result<(), ExportError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path, "flush"))
}

fn write_text(path: &Path, text: &str) -> Result<(), ExportError> {
    std::fs::write(path, text).map_err(io(path, "write"))?;
    sync_file(path)
}

/// Pretty JSON with a final newline, as transformers writes it.
fn write_json(path: &Path, value: &Value) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExportError::Source {
        path: path.to_path_buf(),
        message: format!("cannot serialise: {e}"),
    })?;
    write_text(path, &format!("{text}\n"))
}
