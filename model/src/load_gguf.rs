//! Build a [`Model`] from a GGUF file: the same [`build_model`] walk as for a Hugging Face
//! folder, reading from a [`GgufSource`] that gives every tensor its HF name, its HF shape and
//! f32 values (dequantised; q/k rows un-permuted for `llama`, see [`crate::gguf::arch`]).
//!
//! The hyper-parameters come from the GGUF metadata as a [`Config`] ([`GgufModelConfig::to_config`]),
//! so one `validate()` and one model builder serve both kinds of checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::config::{Architecture, AttentionImpl, Config, RopeParams};
use crate::gguf::{GgufError, GgufFile, GgufModelConfig, RopeScalingKind};
use crate::load::build_model;
use crate::model::Model;
use crate::weights::{LoadError, TensorSource};

impl GgufModelConfig {
    /// The `config.json` this GGUF file's metadata describes, validated.
    ///
    /// What a GGUF file can say and the model cannot do is an error: YaRN and LongRoPE scaling,
    /// a `qwen2` file without q/k/v biases, a `qwen3` file without q/k norms.
    pub fn to_config(&self) -> Result<Config, GgufError> {
        let invalid = |m: String| GgufError::InvalidModel(m);
        let arch = self.architecture;
        let rope_scaling = match &self.rope_scaling {
            None => None,
            Some(s) if s.kind == RopeScalingKind::Linear => Some(RopeParams {
                type_: None,
                rope_type: Some("linear".into()),
                rope_theta: None,
                factor: Some(s.factor),
                alpha: None,
                original_max_position_embeddings: None,
                extra: BTreeMap::new(),
            }),
            Some(s) => {
                return Err(invalid(format!(
                    "{:?} rope scaling is not supported (supported: linear)",
                    s.kind
                )))
            }
        };
        let attention_bias = match arch {
            Architecture::Qwen2 if !self.attention_bias => {
                return Err(invalid(
                    "a qwen2 file must have q/k/v biases (blk.0.attn_q.bias is missing)".into(),
                ))
            }
            // Qwen2 always has them; its config has no `attention_bias` key.
            Architecture::Qwen2 => None,
            Architecture::Qwen3 | Architecture::Llama => Some(self.attention_bias),
        };
        if arch == Architecture::Qwen3 && !self.qk_norm {
            return Err(invalid(
                "a qwen3 file must have q/k norms (blk.0.attn_q_norm.weight is missing)".into(),
            ));
        }
        let config = Config {
            architectures: Some(vec![arch.hf_class().to_string()]),
            model_type: Some(arch.model_type().to_string()),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: Some(self.num_key_value_heads),
            head_dim: Some(self.head_dim),
            max_position_embeddings: Some(self.max_position_embeddings),
            rms_norm_eps: Some(self.rms_norm_eps),
            hidden_act: Some("silu".into()),
            rope_theta: Some(self.rope_theta),
            rope_scaling,
            rope_parameters: None,
            tie_word_embeddings: self.tie_word_embeddings,
            attention_bias,
            mlp_bias: None,
            attention_dropout: None,
            use_sliding_window: None,
            sliding_window: None,
            max_window_layers: None,
            layer_types: None,
            use_mrope: None,
            use_logn_attn: false,
            seq_length: None,
            layer_windows: None,
            attention_implementation: AttentionImpl::default(),
            extra: BTreeMap::new(),
        };
        config
            .validate()
            .map_err(|e| invalid(format!("the metadata gives an invalid config: {e}")))?;
        Ok(config)
    }
}

/// The tensors of a GGUF file under their HF names. Opening maps every tensor name (an
/// unknown name is an error), so the file is accounted for like a safetensors checkpoint.
pub struct GgufSource<'a> {
    file: &'a GgufFile,
    config: &'a GgufModelConfig,
    /// HF name -> GGUF name
    names: BTreeMap<String, String>,
    taken: BTreeSet<String>,
}

impl<'a> GgufSource<'a> {
    /// Maps every tensor of `file` to its HF name.
    pub fn new(file: &'a GgufFile, config: &'a GgufModelConfig) -> Result<Self, LoadError> {
        let mut names = BTreeMap::new();
        for info in file.tensors() {
            let mapping = config
                .map_tensor(&info.name)
                .map_err(|source| gguf_tensor(file.path(), &info.name, source))?;
            if let Some(other) = names.insert(mapping.hf_name.clone(), info.name.clone()) {
                return Err(LoadError::DuplicateTensor {
                    name: format!("{} (GGUF {other} and {})", mapping.hf_name, info.name),
                    first: file.path().to_path_buf(),
                    second: file.path().to_path_buf(),
                });
            }
        }
        Ok(Self {
            file,
            config,
            names,
            taken: BTreeSet::new(),
        })
    }
}

fn gguf_tensor(path: &Path, name: &str, source: GgufError) -> LoadError {
    LoadError::GgufTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        source,
    }
}

impl TensorSource for GgufSource<'_> {
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let path = self.file.path();
        let Some(gguf_name) = self.names.get(name) else {
            return Err(LoadError::MissingTensor {
                name: name.to_string(),
                file: path.to_path_buf(),
            });
        };
        let info =
            self.file
                .content()
                .tensor_info(gguf_name)
                .ok_or_else(|| LoadError::MissingTensor {
                    name: name.to_string(),
                    file: path.to_path_buf(),
                })?;
        let found = info.shape();
        if found != expected {
            return Err(LoadError::Shape {
                name: format!("{name} (GGUF {gguf_name})"),
                file: path.to_path_buf(),
                expected: expected.to_vec(),
                found,
            });
        }
        let tensor = self
            .config
            .load_tensor(self.file, gguf_name)
            .map_err(|source| gguf_tensor(path, gguf_name, source))?;
        self.taken.insert(name.to_string());
        Ok(tensor.values)
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn file_of(&self, _name: &str) -> PathBuf {
        self.file.path().to_path_buf()
    }

    fn finish(self) -> Result<(), LoadError> {
        match self.names.iter().find(|(hf, _)| !self.taken.contains(*hf)) {
            Some((hf, gguf)) => Err(LoadError::UnexpectedTensor {
                name: format!("{gguf} ({hf})"),
                file: self.file.path().to_path_buf(),
            }),
            None => Ok(()),
        }
    }
}

/// The [`Config`] of an open GGUF file; errors name the file.
pub fn gguf_config(file: &GgufFile) -> Result<(GgufModelConfig, Config), LoadError> {
    let wrap = |source| LoadError::Gguf {
        path: file.path().to_path_buf(),
        source,
    };
    let meta = GgufModelConfig::from_gguf(file.content()).map_err(wrap)?;
    let config = meta.to_config().map_err(wrap)?;
    Ok((meta, config))
}

/// Build the model of an open GGUF file for `config` (from [`gguf_config`], possibly adjusted,
/// e.g. the attention implementation).
pub fn build_gguf_model<B: Backend>(
    file: &GgufFile,
    meta: &GgufModelConfig,
    config: &Config,
    device: &B::Device,
) -> Result<Model<B>, LoadError> {
    let mut source = GgufSource::new(file, meta)?;
    let model = build_model(config, &mut source, device)?;
    source.finish()?;
    tracing::debug!(file = %file.path().display(), layers = config.num_hidden_layers, "loaded GGUF");
    Ok(model)
}

/// Open a GGUF file; errors name it.
pub fn open_gguf(path: &Path) -> Result<GgufFile, LoadError> {
    GgufFile::open(path).map_err(|source| LoadError::Gguf {
        path: path.to_path_buf(),
        source,
    })
}

/// The config and model (f32 weights) of an open GGUF file.
pub fn load_gguf_from<B: Backend>(
    file: &GgufFile,
    device: &B::Device,
) -> Result<(Config, Model<B>), LoadError> {
    let (meta, config) = gguf_config(file)?;
    let model = build_gguf_model(file, &meta, &config, device)?;
    Ok((config, model))
}

/// Load the GGUF file `path` onto `device`: its config and the model with f32 weights.
pub fn load_gguf<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(Config, Model<B>), LoadError> {
    load_gguf_from(&open_gguf(path)?, device)
}
