//! Memory-mapped safetensors weights (one file, or shards listed by
//! `model.safetensors.index.json`), with an exact account of every tensor: each must be taken
//! exactly once with the expected shape, and [`WeightStore::finish`] rejects whatever is left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;

use crate::config::ConfigError;

/// Errors loading a checkpoint; each names the file and, where there is one, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir}: no model.safetensors or model.safetensors.index.json")]
    NoWeights { dir: PathBuf },
    #[error("{path}: bad shard index: {message}")]
    Index { path: PathBuf, message: String },
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("tensor `{name}` is missing from {file}")]
    MissingTensor { name: String, file: PathBuf },
    #[error("unexpected tensor `{name}` in {file}")]
    UnexpectedTensor { name: String, file: PathBuf },
    #[error("tensor `{name}` appears in both {first} and {second}")]
    DuplicateTensor {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("tensor `{name}` in {file} has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        file: PathBuf,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` in {file} has dtype {dtype}; supported: F32, F16, BF16")]
    Dtype {
        name: String,
        file: PathBuf,
        dtype: String,
    },
    #[error("`lm_head.weight` in {file} differs from `model.embed_tokens.weight` but tie_word_embeddings is true")]
    TiedMismatch { file: PathBuf },
    #[error("{path}: {source}")]
    Gguf {
        path: PathBuf,
        source: crate::gguf::GgufError,
    },
    #[error("{path}: tensor `{name}`: {source}")]
    GgufTensor {
        path: PathBuf,
        name: String,
        source: crate::gguf::GgufError,
    },
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("{path}: no such model folder or file")]
    NotFound { path: PathBuf },
    #[error("{path}: {message}")]
    NotACheckpoint { path: PathBuf, message: String },
}

/// Where [`crate::load::build_model`] reads its tensors from, by Hugging Face name: the
/// safetensors shards of an HF folder ([`WeightStore`]) or a GGUF file
/// ([`crate::load_gguf::GgufSource`]). Every tensor is taken at most once, and
/// [`TensorSource::finish`] rejects whatever nobody took, so each source accounts for all of its
/// tensors the same way.
pub trait TensorSource {
    /// Tensor `name` (HF name), which must have shape `expected`, as f32 in row-major order.
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError>;
    /// Whether the checkpoint has a tensor called `name` (taken or not).
    fn contains(&self, name: &str) -> bool;
    /// The file a tensor is in (or the checkpoint's first file), for error messages.
    fn file_of(&self, name: &str) -> PathBuf;
    /// Fail on the first tensor nobody took.
    fn finish(self) -> Result<(), LoadError>
    where
        Self: Sized;
}

impl TensorSource for WeightStore {
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        WeightStore::take(self, name, expected)
    }

    fn contains(&self, name: &str) -> bool {
        WeightStore::contains(self, name)
    }

    fn file_of(&self, name: &str) -> PathBuf {
        WeightStore::file_of(self, name)
    }

    fn finish(self) -> Result<(), LoadError> {
        WeightStore::finish(self)
    }
}

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

/// Tensors a checkpoint may carry that describe nothing we load (transformers drops them too).
fn ignorable(name: &str) -> bool {
    name.ends_with(".rotary_emb.inv_freq")
}

/// Open safetensors shards; tensors are read on demand from the memory maps.
pub struct WeightStore {
    shards: Vec<Shard>,
    /// tensor name -> shard index
    location: BTreeMap<String, usize>,
    taken: BTreeSet<String>,
}

fn open_shard(path: &Path) -> Result<Shard, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; like every mmap-based loader (safetensors, candle, vLLM) we
    // rely on the checkpoint not being modified while it is loaded.
    let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
    let (header_len, metadata) =
        SafeTensors::read_metadata(&mmap).map_err(|e| LoadError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let tensors = metadata
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    Ok(Shard {
        path: path.to_path_buf(),
        mmap,
        data_start: 8 + header_len,
        tensors,
    })
}

impl WeightStore {
    /// Open `dir/model.safetensors`, or every shard named by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index_path.exists() {
            Self::open_sharded(dir, &index_path)
        } else if single.exists() {
            let shard = open_shard(&single)?;
            let location = shard.tensors.keys().map(|k| (k.clone(), 0)).collect();
            Ok(Self {
                shards: vec![shard],
                location,
                taken: BTreeSet::new(),
            })
        } else {
            Err(LoadError::NoWeights {
                dir: dir.to_path_buf(),
            })
        }
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Self, LoadError> {
        let bad = |message: String| LoadError::Index {
            path: index_path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(index_path).map_err(|source| LoadError::Io {
            path: index_path.to_path_buf(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut shards: Vec<Shard> = Vec::new();
        let mut by_file: HashMap<String, usize> = HashMap::new();
        let mut location = BTreeMap::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| bad(format!("`{name}` maps to a non-string")))?;
            if file.is_empty() || file.contains(['/', '\\']) || file == ".." || file == "." {
                return Err(bad(format!(
                    "`{name}` maps to {file:?}, not a file name in the checkpoint folder"
                )));
            }
            let idx = match by_file.get(file) {
                Some(&i) => i,
                None => {
                    shards.push(open_shard(&dir.join(file))?);
                    by_file.insert(file.to_string(), shards.len() - 1);
                    shards.len() - 1
                }
            };
            if !shards[idx].tensors.contains_key(name) {
                return Err(LoadError::MissingTensor {
                    name: name.clone(),
                    file: shards[idx].path.clone(),
                });
            }
            location.insert(name.clone(), idx);
        }
        // A tensor present in a shard but not listed by the index is not accounted for.
        for shard in &shards {
            for name in shard.tensors.keys() {
                match location.get(name) {
                    Some(&i) if shards[i].path == shard.path => {}
                    Some(&i) => {
                        return Err(LoadError::DuplicateTensor {
                            name: name.clone(),
                            first: shards[i].path.clone(),
                            second: shard.path.clone(),
                        })
                    }
                    None => {
                        return Err(LoadError::UnexpectedTensor {
                            name: name.clone(),
                            file: shard.path.clone(),
                        })
                    }
                }
            }
        }
        Ok(Self {
            shards,
            location,
            taken: BTreeSet::new(),
        })
    }

    /// The safetensors files of the checkpoint, in the order they were opened.
    pub fn files(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }

    /// Whether the checkpoint has a tensor called `name` (taken or not).
    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// The file a tensor is in, or the checkpoint's first file, for error messages.
    pub fn file_of(&self, name: &str) -> PathBuf {
        let i = self.location.get(name).copied().unwrap_or(0);
        self.shards
            .get(i)
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    /// Read tensor `name`, which must have shape `expected`, as f32 (cast from F16/BF16).
    pub fn take(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let Some(&i) = self.location.get(name) else {
            return Err(LoadError::MissingTensor {
                name: name.to_string(),
                file: self.file_of(name),
            });
        };
        let shard = &self.shards[i];
        let info = &shard.tensors[name];
        if info.shape != expected {
            return Err(LoadError::Shape {
                name: name.to_string(),
                file: shard.path.clone(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        // Offsets were checked against the file length by `read_metadata`.
        let bytes = &shard.mmap
            [shard.data_start + info.data_offsets.0..shard.data_start + info.data_offsets.1];
        let values = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            other => {
                return Err(LoadError::Dtype {
                    name: name.to_string(),
                    file: shard.path.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        self.taken.insert(name.to_string());
        Ok(values)
    }

    /// Fail on the first tensor nobody took.
    pub fn finish(self) -> Result<(), LoadError> {
        for (name, &i) in &self.location {
            if !self.taken.contains(name) && !ignorable(name) {
                return Err(LoadError::UnexpectedTensor {
                    name: name.clone(),
                    file: self.shards[i].path.clone(),
                });
            }
        }
        Ok(())
    }
}
