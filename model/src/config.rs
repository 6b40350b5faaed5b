//! `config.json` of a Hugging Face causal LM, as a serde mirror with the same key names.
//!
//! Accepted architectures: `Qwen2ForCausalLM`, `Qwen3ForCausalLM`, `LlamaForCausalLM`, in the
//! transformers 4 dialect (`rope_theta`, `rope_scaling {type|rope_type, factor}`) and the 5
//! dialect (`rope_parameters {rope_type, rope_theta, factor}`, `layer_types`).
//!
//! Our own extensions (not written by transformers):
//! - `rope_scaling: {"rope_type": "ntk", "alpha": A}`: static NTK-aware scaling, the rope base
//!   becomes `theta * A^(d/(d-2))`.
//! - `use_logn_attn` + `seq_length` (Qwen-1's names): LogN query scaling beyond the training length.
//! - `layer_windows`: an explicit per-layer window list (`null` = full attention), so lower layers
//!   can get shorter windows as the Qwen report describes.
//! - `attention_implementation`: `"plain"` (masked softmax, the reference) or `"fused"` (burn's
//!   `attention` op).
//!
//! Every key either changes behaviour or is rejected by [`Config::validate`]; the only keys that
//! are read and ignored are the metadata in [`METADATA_KEYS`], none of which changes the forward
//! pass. Missing optional keys take the value of the transformers class default, so a config
//! means the same thing here as it does there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

#[path = "config_rope.rs"]
mod rope;
pub use rope::{RopeParams, RopeScaling};

/// Errors reading or validating a `config.json`. Each names the file or the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed config: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config field `{field}` is not supported (value {value})")]
    UnknownField { field: String, value: String },
    #[error("config field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Keys that carry no information about the forward pass (ids used by generation configs,
/// bookkeeping, training-time switches with no effect at inference).
pub const METADATA_KEYS: &[&str] = &[
    "_name_or_path",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "use_cache",
    "initializer_range",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "is_decoder",
    "is_encoder_decoder",
    "tokenizer_class",
    "id2label",
    "label2id",
    // Splits the projections into `pretraining_tp` slices; mathematically the same product.
    "pretraining_tp",
    // Generation defaults that old configs carry; generation reads generation_config.json.
    "max_length",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "num_beams",
];

/// The model family; decides where biases and q/k norms live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Bias on q/k/v only.
    Qwen2,
    /// RMSNorm on q and k per head, explicit `head_dim`, optional `attention_bias`.
    Qwen3,
    /// No q/k/v bias unless `attention_bias`; optional `mlp_bias`.
    Llama,
}

impl Architecture {
    /// The architecture of a transformers class name (`config.json`'s `architectures`).
    pub fn from_hf_class(name: &str) -> Option<Self> {
        match name {
            "Qwen2ForCausalLM" => Some(Self::Qwen2),
            "Qwen3ForCausalLM" => Some(Self::Qwen3),
            "LlamaForCausalLM" => Some(Self::Llama),
            _ => None,
        }
    }

    /// The transformers class name.
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
            Self::Llama => "LlamaForCausalLM",
        }
    }

    /// `config.json`'s `model_type`, which is also the GGUF `general.architecture` name.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Llama => "llama",
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.model_type())
    }
}

/// Which attention kernel a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionImpl {
    /// Explicit masked softmax; the reference.
    #[default]
    Plain,
    /// `burn::tensor::module::attention` (flash-style tiled kernel where the backend has one).
    Fused,
}

/// A Hugging Face `config.json`, same key names.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (multi-head attention), as in transformers.
    pub num_key_value_heads: Option<usize>,
    /// Defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub hidden_act: Option<String>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParams>,
    pub rope_parameters: Option<RopeParams>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub attention_dropout: Option<f64>,
    pub use_sliding_window: Option<bool>,
    pub sliding_window: Option<usize>,
    pub max_window_layers: Option<usize>,
    pub layer_types: Option<Vec<String>>,
    pub use_mrope: Option<bool>,
    // --- extensions ---
    #[serde(default)]
    pub use_logn_attn: bool,
    /// Training length for LogN scaling (Qwen-1's name).
    pub seq_length: Option<usize>,
    pub layer_windows: Option<Vec<Option<usize>>>,
    #[serde(default)]
    pub attention_implementation: AttentionImpl,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Config {
    /// Read and validate `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parse and validate a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_json::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<config.json>"),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The single supported architecture named in `architectures` (or by `model_type`).
    pub fn architecture(&self) -> Result<Architecture, ConfigError> {
        let from_type = |t: &str| match t {
            "qwen2" => Some(Architecture::Qwen2),
            "qwen3" => Some(Architecture::Qwen3),
            "llama" => Some(Architecture::Llama),
            _ => None,
        };
        let arch = match &self.architectures {
            Some(names) => match names.as_slice() {
                [name] => Architecture::from_hf_class(name).ok_or_else(|| {
                    invalid(
                        "architectures",
                        format!("unsupported architecture {name:?} (supported: Qwen2ForCausalLM, Qwen3ForCausalLM, LlamaForCausalLM)"),
                    )
                })?,
                _ => return Err(invalid("architectures", format!("expected exactly one entry, got {names:?}"))),
            },
            None => {
                let t = self.model_type.as_deref().ok_or_else(|| {
                    invalid("architectures", "missing, and no `model_type` to fall back on")
                })?;
                from_type(t).ok_or_else(|| invalid("model_type", format!("unsupported model type {t:?}")))?
            }
        };
        if let Some(t) = &self.model_type {
            if t != arch.model_type() {
                return Err(invalid(
                    "model_type",
                    format!("{t:?} does not match architecture {:?}", arch),
                ));
            }
        }
        Ok(arch)
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// `max_position_embeddings`, or the transformers class default when absent.
    pub fn max_position_embeddings(&self) -> usize {
        self.max_position_embeddings
            .unwrap_or(match self.architecture() {
                Ok(Architecture::Llama) => 2048,
                _ => 32768,
            })
    }

    pub fn rms_norm_eps(&self) -> f64 {
        self.rms_norm_eps.unwrap_or(1e-6)
    }

    /// The attention window of layer `layer` (`None` = full causal attention), with
    /// transformers' semantics: a layer is sliding when `layer_types[layer] ==
    /// "sliding_attention"` (derived as `use_sliding_window && layer >= max_window_layers` when
    /// `layer_types` is absent), and the window is `sliding_window` only if `use_sliding_window`.
    /// `layer_windows` overrides all of this.
    pub fn layer_window(&self, layer: usize) -> Option<usize> {
        if let Some(list) = &self.layer_windows {
            return list.get(layer).copied().flatten();
        }
        let window = if self.use_sliding_window.unwrap_or(false) {
            self.sliding_window
        } else {
            None
        };
        let sliding = match &self.layer_types {
            Some(types) => types.get(layer).is_some_and(|t| t == "sliding_attention"),
            None => window.is_some() && layer >= self.max_window_layers.unwrap_or(28),
        };
        if sliding {
            window
        } else {
            None
        }
    }

    /// Whether q/k/v (and o) projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        match self.architecture() {
            Ok(Architecture::Qwen2) => true,
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    /// Whether `o_proj` carries a bias (Llama/Qwen3 `attention_bias`; never in Qwen2).
    pub fn o_bias(&self) -> bool {
        match self.architecture() {
            Ok(Architecture::Qwen2) => false,
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    pub fn mlp_bias(&self) -> bool {
        self.mlp_bias.unwrap_or(false)
    }

    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some((k, v)) = self
            .extra
            .iter()
            .find(|(k, _)| !METADATA_KEYS.contains(&k.as_str()))
        {
            return Err(ConfigError::UnknownField {
                field: k.clone(),
                value: v.to_string(),
            });
        }
        let arch = self.architecture()?;
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings()),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(invalid(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_kv_heads(),
                    self.num_attention_heads
                ),
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(invalid(
                "hidden_size",
                format!(
                    "{} is not a multiple of num_attention_heads {} and no head_dim is given",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(invalid(
                "head_dim",
                "rotary embedding needs an even head_dim",
            ));
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(invalid(
                    "hidden_act",
                    format!("{act:?} is not supported (only silu)"),
                ));
            }
        }
        if let Some(eps) = self.rms_norm_eps {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(invalid(
                    "rms_norm_eps",
                    format!("must be positive, got {eps}"),
                ));
            }
        }
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 1.0) {
            return Err(invalid("rope_theta", format!("must be > 1, got {theta}")));
        }
        if self.rope_parameters.is_some() && self.rope_scaling.is_some() {
            return Err(invalid(
                "rope_scaling",
                "given together with rope_parameters; use one dialect",
            ));
        }
        self.rope_scaling()?;
        if let Some(p) = self.attention_dropout {
            if p != 0.0 {
                return Err(invalid(
                    "attention_dropout",
                    format!("{p}: attention dropout is not implemented"),
                ));
            }
        }
        if self.use_mrope == Some(true) {
            return Err(invalid("use_mrope", "multimodal rope is not supported"));
        }
        if arch == Architecture::Qwen2 && self.attention_bias.is_some() {
            return Err(invalid(
                "attention_bias",
                "Qwen2 always has q/k/v bias and never o bias",
            ));
        }
        if arch != Architecture::Llama && self.mlp_bias.is_some() {
            return Err(invalid("mlp_bias", "only LlamaForCausalLM has mlp_bias"));
        }
        if arch == Architecture::Llama
            && (self.use_sliding_window.is_some()
                || self.sliding_window.is_some()
                || self.max_window_layers.is_some())
        {
            let field = if self.use_sliding_window.is_some() {
                "use_sliding_window"
            } else if self.sliding_window.is_some() {
                "sliding_window"
            } else {
                "max_window_layers"
            };
            // transformers' Llama has no sliding window; `sliding_window: null` is harmless.
            if !(field == "sliding_window" && self.sliding_window.is_none()) {
                return Err(invalid(
                    field,
                    "LlamaForCausalLM has no sliding-window attention",
                ));
            }
        }
        if self.sliding_window == Some(0) {
            return Err(invalid("sliding_window", "must be > 0"));
        }
        if self.use_sliding_window == Some(true) && self.sliding_window.is_none() {
            return Err(invalid(
                "sliding_window",
                "use_sliding_window is true but sliding_window is null",
            ));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(invalid(
                    "layer_types",
                    format!(
                        "has {} entries for {} layers",
                        types.len(),
                        self.num_hidden_layers
                    ),
                ));
            }
            if let Some(t) = types
                .iter()
                .find(|t| *t != "full_attention" && *t != "sliding_attention")
            {
                return Err(invalid("layer_types", format!("unknown layer type {t:?}")));
            }
        }
        if let Some(list) = &self.layer_windows {
            if list.len() != self.num_hidden_layers {
                return Err(invalid(
                    "layer_windows",
                    format!(
                        "has {} entries for {} layers",
                        list.len(),
                        self.num_hidden_layers
                    ),
                ));
            }
            if list.contains(&Some(0)) {
                return Err(invalid("layer_windows", "a window must be > 0"));
            }
            if self.use_sliding_window == Some(true) {
                return Err(invalid(
                    "layer_windows",
                    "conflicts with use_sliding_window: true; give one",
                ));
            }
        }
        if self.use_logn_attn {
            match self.seq_length {
                Some(n) if n >= 2 => {}
                _ => {
                    return Err(invalid(
                        "seq_length",
                        "use_logn_attn needs the training length seq_length >= 2",
                    ))
                }
            }
        } else if self.seq_length.is_some() {
            return Err(invalid("seq_length", "only used with use_logn_attn: true"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_tests.rs"]
mod tests;
