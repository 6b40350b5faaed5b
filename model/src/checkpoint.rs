//! One loader for any checkpoint a user can name: a Hugging Face folder (`config.json`,
//! safetensors, optionally `tokenizer.json` & co.) or a `.gguf` file. It returns the model with
//! everything generation needs beside it: the tokenizer (when the checkpoint has one), the
//! end-of-sequence ids and the checkpoint's identity for run manifests.
//!
//! End-of-sequence ids, first that applies: the tokenizer bundle's (`generation_config.json`,
//! then `tokenizer_config.json`'s `eos_token`; for GGUF the EOS/EOT ids and end-of-turn control
//! tokens), then for a folder without a tokenizer `generation_config.json`'s `eos_token_id`,
//! then `config.json`'s; otherwise none (generation stops on length or stop strings).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::load::build_model;
use crate::load_gguf::{load_gguf_from, open_gguf};
use crate::model::Model;
use crate::tokenizer::{GenerationDefaults, GgufTokenizerSpec, TokenIds, TokenizerBundle};
use crate::weights::{LoadError, TensorSource, WeightStore};

/// The two kinds of checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A Hugging Face folder.
    HfFolder,
    /// A GGUF file.
    Gguf,
}

/// Which checkpoint a model came from: its path and the files holding its weights, whose
/// SHA-256 is computed on first request (hashing a 1 GB checkpoint takes a few seconds, and
/// most uses never need it).
#[derive(Debug)]
pub struct ModelIdentity {
    /// The folder or file the user named.
    pub path: PathBuf,
    pub kind: CheckpointKind,
    /// The weight files: the GGUF file, or the safetensors shard(s).
    pub weight_files: Vec<PathBuf>,
    sha256: OnceLock<String>,
}

impl ModelIdentity {
    fn new(path: &Path, kind: CheckpointKind, mut weight_files: Vec<PathBuf>) -> Self {
        weight_files.sort();
        Self {
            path: path.to_path_buf(),
            kind,
            weight_files,
            sha256: OnceLock::new(),
        }
    }

    /// Hex SHA-256 of the weights: of the file itself for a single file; for shards, of the
    /// `sha256sum`-style lines `<hex>  <file name>\n` in file-name order.
    pub fn weights_sha256(&self) -> Result<&str, LoadError> {
        if let Some(hash) = self.sha256.get() {
            return Ok(hash.as_str());
        }
        let hash = match self.weight_files.as_slice() {
            [one] => sha256_file(one)?,
            many => {
                let mut lines = String::new();
                for file in many {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    lines.push_str(&format!("{}  {name}\n", sha256_file(file)?));
                }
                hex(&Sha256::digest(lines.as_bytes()))
            }
        };
        Ok(self.sha256.get_or_init(|| hash).as_str())
    }
}

/// The weights' SHA-256 of a checkpoint without loading it: a GGUF file's own hash, or for a
/// folder the hash [`ModelIdentity::weights_sha256`] gives over its `*.safetensors` files.
pub fn checkpoint_sha256(path: &Path) -> Result<String, LoadError> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    let identity = ModelIdentity::new(path, CheckpointKind::HfFolder, files);
    identity.weights_sha256().map(str::to_owned)
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded checkpoint and what generation needs beside the network.
pub struct LoadedModel<B: Backend> {
    pub config: Config,
    pub model: Model<B>,
    /// `None` for a folder without `tokenizer.json` (token ids in and out only).
    pub tokenizer: Option<TokenizerBundle>,
    /// Ids that end generation (see the module doc).
    pub eos_token_ids: Vec<u32>,
    pub identity: ModelIdentity,
}

/// Load a Hugging Face folder or a GGUF file (any regular file is read as GGUF, whose magic
/// check gives a clear error for anything else).
pub fn load_any<B: Backend>(path: &Path, device: &B::Device) -> Result<LoadedModel<B>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|_| LoadError::NotFound {
        path: path.to_path_buf(),
    })?;
    if meta.is_dir() {
        load_hf_folder(path, device)
    } else {
        load_gguf_file(path, device)
    }
}

fn load_hf_folder<B: Backend>(dir: &Path, device: &B::Device) -> Result<LoadedModel<B>, LoadError> {
    let config = Config::from_file(&dir.join("config.json"))?;
    let mut store = WeightStore::open(dir)?;
    let weight_files = store.files();
    let model = build_model(&config, &mut store, device)?;
    TensorSource::finish(store)?;
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        Some(TokenizerBundle::from_model_dir(dir)?)
    } else {
        None
    };
    let eos_token_ids = match &tokenizer {
        Some(bundle) => bundle.eos_token_ids.clone(),
        None => folder_eos_ids(dir, &config)?,
    };
    tracing::debug!(dir = %dir.display(), tokenizer = tokenizer.is_some(), "loaded checkpoint folder");
    Ok(LoadedModel {
        config,
        model,
        tokenizer,
        eos_token_ids,
        identity: ModelIdentity::new(dir, CheckpointKind::HfFolder, weight_files),
    })
}

/// EOS ids of a folder without a tokenizer: `generation_config.json`, then `config.json`.
fn folder_eos_ids(dir: &Path, config: &Config) -> Result<Vec<u32>, LoadError> {
    if let Some(ids) = GenerationDefaults::from_model_dir(dir)?.and_then(|g| g.eos_token_id) {
        return Ok(ids.to_vec());
    }
    match config.extra.get("eos_token_id") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value::<TokenIds>(v.clone())
            .map(|ids| ids.to_vec())
            .map_err(|e| LoadError::NotACheckpoint {
                path: dir.join("config.json"),
                message: format!("eos_token_id {v} is not a token id or a list of them: {e}"),
            }),
    }
}

fn load_gguf_file<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<LoadedModel<B>, LoadError> {
    let file = open_gguf(path)?;
    let (config, model) = load_gguf_from(&file, device)?;
    let tokenizer_error = |e: crate::tokenizer::TokenizerError| LoadError::NotACheckpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let spec = GgufTokenizerSpec::from_metadata(file.metadata()).map_err(tokenizer_error)?;
    let tokenizer = TokenizerBundle::from_gguf(&spec).map_err(tokenizer_error)?;
    let eos_token_ids = tokenizer.eos_token_ids.clone();
    Ok(LoadedModel {
        config,
        model,
        tokenizer: Some(tokenizer),
        eos_token_ids,
        identity: ModelIdentity::new(path, CheckpointKind::Gguf, vec![path.to_path_buf()]),
    })
}
