//! The exported `config.json`, in the transformers 4 dialect (`rope_theta` + `rope_scaling`),
//! which transformers 5 reads as well, while a 5-dialect `rope_parameters` is invisible to 4
//! (it would silently fall back to rope base 10000).
//!
//! From a Hugging Face folder the source's `config.json` is the starting point, so keys we do
//! not model (`bos_token_id`, `layer_types`, `initializer_range`, ...) pass through; from a GGUF
//! file the whole config is written here. Either way the keys that describe the network are
//! written from the [`Config`] the model was built with.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{ExportDtype, ExportError};
use crate::config::{Architecture, Config, RopeScaling};

/// Special token ids for a config written from scratch (GGUF source).
#[derive(Debug, Clone, Default)]
pub(super) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

/// What transformers cannot express: our extensions that change the forward pass. Exporting
/// them would give a checkpoint that loads and computes something else.
fn check_expressible(config: &Config) -> Result<(), ExportError> {
    let not = |what: &str| Err(ExportError::NotExpressible(what.to_string()));
    if config.use_logn_attn {
        return not("LogN attention scaling (`use_logn_attn`)");
    }
    if config.layer_windows.is_some() {
        return not("per-layer attention windows (`layer_windows`)");
    }
    Ok(())
}

/// The keys that describe the network, from `config`; `tied` is the model's own state.
fn network_keys(
    config: &Config,
    tied: bool,
    dtype: ExportDtype,
) -> Result<Map<String, Value>, ExportError> {
    check_expressible(config)?;
    let arch = config.architecture()?;
    let rope_scaling = match config.rope_scaling()? {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
        RopeScaling::Dynamic { factor } => json!({"rope_type": "dynamic", "factor": factor}),
        RopeScaling::NtkAlpha { .. } => {
            return Err(ExportError::NotExpressible(
                "static NTK-aware rope scaling (`rope_type: ntk`)".into(),
            ))
        }
    };
    let mut m = Map::new();
    m.insert("architectures".into(), json!([arch.hf_class()]));
    m.insert("model_type".into(), json!(arch.model_type()));
    m.insert("vocab_size".into(), json!(config.vocab_size));
    m.insert("hidden_size".into(), json!(config.hidden_size));
    m.insert("intermediate_size".into(), json!(config.intermediate_size));
    m.insert("num_hidden_layers".into(), json!(config.num_hidden_layers));
    m.insert(
        "num_attention_heads".into(),
        json!(config.num_attention_heads),
    );
    m.insert("num_key_value_heads".into(), json!(config.num_kv_heads()));
    m.insert("head_dim".into(), json!(config.head_dim()));
    m.insert(
        "max_position_embeddings".into(),
        json!(config.max_position_embeddings()),
    );
    m.insert("rms_norm_eps".into(), json!(config.rms_norm_eps()));
    m.insert("hidden_act".into(), json!("silu"));
    m.insert("rope_theta".into(), json!(config.rope_theta()));
    m.insert("rope_scaling".into(), rope_scaling);
    m.insert("tie_word_embeddings".into(), json!(tied));
    match arch {
        // Qwen2 has no such keys: q/k/v bias always, o bias never.
        Architecture::Qwen2 => {}
        Architecture::Qwen3 => {
            m.insert("attention_bias".into(), json!(config.qkv_bias()));
        }
        Architecture::Llama => {
            m.insert("attention_bias".into(), json!(config.qkv_bias()));
            m.insert("mlp_bias".into(), json!(config.mlp_bias()));
        }
    }
    // transformers 4 reads `torch_dtype`, 5 reads `dtype`.
    m.insert("torch_dtype".into(), json!(dtype.torch_name()));
    m.insert("dtype".into(), json!(dtype.torch_name()));
    Ok(m)
}

/// The JSON object of the source folder's `config.json`.
pub(super) fn read_source(path: &Path) -> Result<Map<String, Value>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(super::io(path, "read"))?;
    let source = |message: String| ExportError::Source {
        path: path.to_path_buf(),
        message,
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(source("not a JSON object".into())),
        Err(e) => Err(source(e.to_string())),
    }
}

/// `config.json` for a model loaded from the Hugging Face `source` config (its JSON object).
pub(super) fn from_source(
    source: Map<String, Value>,
    config: &Config,
    tied: bool,
    dtype: ExportDtype,
) -> Result<Value, ExportError> {
    let mut m = source;
    // Replaced by the 4-dialect keys below (never both: they would be read as two dialects).
    m.remove("rope_parameters");
    m.extend(network_keys(config, tied, dtype)?);
    Ok(Value::Object(m))
}

/// A complete `config.json` for a model without one (GGUF source).
pub(super) fn from_scratch(
    config: &Config,
    tied: bool,
    dtype: ExportDtype,
    ids: &SpecialIds,
) -> Result<Value, ExportError> {
    let mut m = Map::new();
    m.insert("bos_token_id".into(), json!(ids.bos));
    m.insert("eos_token_id".into(), json!(ids.eos));
    m.insert("pad_token_id".into(), json!(ids.pad));
    m.insert("attention_dropout".into(), json!(0.0));
    m.insert("use_cache".into(), json!(true));
    if config.architecture()? != Architecture::Llama {
        // The Qwen classes' window keys, as the config says (a GGUF never has a window).
        m.insert(
            "use_sliding_window".into(),
            json!(config.use_sliding_window.unwrap_or(false)),
        );
        m.insert("sliding_window".into(), json!(config.sliding_window));
        if let Some(n) = config.max_window_layers {
            m.insert("max_window_layers".into(), json!(n));
        }
        if let Some(types) = &config.layer_types {
            m.insert("layer_types".into(), json!(types));
        }
    }
    m.extend(network_keys(config, tied, dtype)?);
    // GGUF stores eps as f32: write 1e-5, not its f64 widening 9.999999747378752e-6.
    let eps = config.rms_norm_eps();
    if let Ok(short) = (eps as f32).to_string().parse::<f64>() {
        m.insert("rms_norm_eps".into(), json!(short));
    }
    Ok(Value::Object(m))
}
