use super::*;

fn base() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "torch_dtype": "float32",
        "transformers_version": "4.57.0"
    })
}

fn with(patch: serde_json::Value) -> Result<Config, ConfigError> {
    let mut v = base();
    for (k, val) in patch.as_object().into_iter().flatten() {
        if val.is_null() && k.starts_with('-') {
            v.as_object_mut().map(|o| o.remove(&k[1..]));
        } else {
            v[k] = val.clone();
        }
    }
    Config::from_json(&v.to_string())
}

fn field_of(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { field, .. } | ConfigError::UnknownField { field, .. } => field,
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn qwen2_defaults() {
    let c = with(serde_json::json!({})).unwrap();
    assert_eq!(c.architecture().unwrap(), Architecture::Qwen2);
    assert_eq!(c.head_dim(), 8);
    assert_eq!(c.num_kv_heads(), 2);
    assert!(c.qkv_bias() && !c.o_bias() && !c.mlp_bias());
    assert!(!c.tie_word_embeddings);
    assert_eq!(c.rope_scaling().unwrap(), RopeScaling::None);
    assert_eq!(c.attention_implementation, AttentionImpl::Plain);
    assert!((0..4).all(|l| c.layer_window(l).is_none()));
}

#[test]
fn kv_heads_default_to_attention_heads() {
    let c = with(serde_json::json!({"-num_key_value_heads": null})).unwrap();
    assert_eq!(c.num_kv_heads(), 8);
}

#[test]
fn unknown_architecture_and_fields_are_rejected() {
    let e = with(serde_json::json!({"architectures": ["MistralForCausalLM"], "-model_type": null}))
        .unwrap_err();
    assert_eq!(field_of(e), "architectures");
    let e = with(serde_json::json!({"model_type": "llama"})).unwrap_err();
    assert_eq!(field_of(e), "model_type");
    let e = with(serde_json::json!({"quantization_config": {"bits": 4}})).unwrap_err();
    assert_eq!(field_of(e), "quantization_config");
    let e = with(serde_json::json!({"hidden_act": "gelu"})).unwrap_err();
    assert_eq!(field_of(e), "hidden_act");
    let e = with(serde_json::json!({"use_mrope": true})).unwrap_err();
    assert_eq!(field_of(e), "use_mrope");
    let e = with(serde_json::json!({"attention_dropout": 0.1})).unwrap_err();
    assert_eq!(field_of(e), "attention_dropout");
}

#[test]
fn missing_required_field_is_a_parse_error_naming_it() {
    let e = with(serde_json::json!({"-hidden_size": null})).unwrap_err();
    assert!(e.to_string().contains("hidden_size"), "{e}");
}

#[test]
fn head_counts_and_dims_are_checked() {
    let e = with(serde_json::json!({"num_key_value_heads": 3})).unwrap_err();
    assert_eq!(field_of(e), "num_key_value_heads");
    let e =
        with(serde_json::json!({"num_attention_heads": 6, "num_key_value_heads": 2})).unwrap_err();
    assert_eq!(field_of(e), "hidden_size");
    // An explicit head_dim (Qwen3 style) may differ from hidden/heads.
    let c = with(
        serde_json::json!({"num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16}),
    )
    .unwrap();
    assert_eq!(c.head_dim(), 16);
    let e = with(serde_json::json!({"head_dim": 7})).unwrap_err();
    assert_eq!(field_of(e), "head_dim");
    let e = with(serde_json::json!({"vocab_size": 0})).unwrap_err();
    assert_eq!(field_of(e), "vocab_size");
}

#[test]
fn rope_dialects() {
    let c = with(serde_json::json!({"rope_scaling": {"type": "linear", "factor": 2.0}})).unwrap();
    assert_eq!(
        c.rope_scaling().unwrap(),
        RopeScaling::Linear { factor: 2.0 }
    );
    let c =
        with(serde_json::json!({"rope_scaling": {"rope_type": "dynamic", "factor": 4.0}})).unwrap();
    assert_eq!(
        c.rope_scaling().unwrap(),
        RopeScaling::Dynamic { factor: 4.0 }
    );
    let c = with(serde_json::json!({"-rope_theta": null,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}))
    .unwrap();
    assert_eq!(c.rope_theta(), 1e6);
    assert_eq!(c.rope_scaling().unwrap(), RopeScaling::None);
    let c = with(serde_json::json!({"rope_scaling": {"rope_type": "ntk", "alpha": 3.0}})).unwrap();
    assert_eq!(
        c.rope_scaling().unwrap(),
        RopeScaling::NtkAlpha { alpha: 3.0 }
    );
    let e = with(serde_json::json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}))
        .unwrap_err();
    assert_eq!(field_of(e), "rope_scaling.rope_type");
    let e = with(serde_json::json!({"rope_scaling": {"rope_type": "linear"}})).unwrap_err();
    assert_eq!(field_of(e), "rope_scaling.factor");
    let e = with(serde_json::json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0, "beta_fast": 32}})).unwrap_err();
    assert_eq!(field_of(e), "rope_scaling.beta_fast");
    let e = with(
        serde_json::json!({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0, "alpha": 2.0}}),
    )
    .unwrap_err();
    assert_eq!(field_of(e), "rope_scaling.alpha");
}

#[test]
fn sliding_window_follows_transformers() {
    // Window only when use_sliding_window, and only on layers >= max_window_layers.
    let c = with(serde_json::json!({"use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1})).unwrap();
    assert_eq!(
        (0..4).map(|l| c.layer_window(l)).collect::<Vec<_>>(),
        vec![None, Some(8), Some(8), Some(8)]
    );
    let c = with(serde_json::json!({"use_sliding_window": false, "sliding_window": 8, "max_window_layers": 1})).unwrap();
    assert!((0..4).all(|l| c.layer_window(l).is_none()));
    // 5 dialect: layer_types decide which layers slide.
    let c = with(serde_json::json!({"use_sliding_window": true, "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]})).unwrap();
    assert_eq!(
        (0..4).map(|l| c.layer_window(l)).collect::<Vec<_>>(),
        vec![Some(8), None, Some(8), None]
    );
    let e = with(serde_json::json!({"layer_types": ["full_attention"]})).unwrap_err();
    assert_eq!(field_of(e), "layer_types");
    let e = with(serde_json::json!({"layer_types": ["a", "b", "c", "d"]})).unwrap_err();
    assert_eq!(field_of(e), "layer_types");
    let e =
        with(serde_json::json!({"use_sliding_window": true, "sliding_window": null})).unwrap_err();
    assert_eq!(field_of(e), "sliding_window");
}

#[test]
fn explicit_layer_windows() {
    let c = with(serde_json::json!({"layer_windows": [4, 8, null, null]})).unwrap();
    assert_eq!(
        (0..4).map(|l| c.layer_window(l)).collect::<Vec<_>>(),
        vec![Some(4), Some(8), None, None]
    );
    let e = with(serde_json::json!({"layer_windows": [4, 8]})).unwrap_err();
    assert_eq!(field_of(e), "layer_windows");
    let e = with(serde_json::json!({"layer_windows": [0, 8, null, null]})).unwrap_err();
    assert_eq!(field_of(e), "layer_windows");
}

#[test]
fn logn_needs_training_length() {
    let c = with(serde_json::json!({"use_logn_attn": true, "seq_length": 16})).unwrap();
    assert!(c.use_logn_attn);
    let e = with(serde_json::json!({"use_logn_attn": true})).unwrap_err();
    assert_eq!(field_of(e), "seq_length");
    let e = with(serde_json::json!({"seq_length": 16})).unwrap_err();
    assert_eq!(field_of(e), "seq_length");
}

#[test]
fn llama_and_qwen3_biases() {
    let llama = serde_json::json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama"});
    let c = with(llama.clone()).unwrap();
    assert!(!c.qkv_bias() && !c.o_bias() && !c.mlp_bias());
    let mut p = llama.clone();
    p["attention_bias"] = true.into();
    p["mlp_bias"] = true.into();
    let c = with(p).unwrap();
    assert!(c.qkv_bias() && c.o_bias() && c.mlp_bias());
    let mut p = llama;
    p["use_sliding_window"] = true.into();
    assert_eq!(field_of(with(p).unwrap_err()), "use_sliding_window");
    let c = with(
        serde_json::json!({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "attention_bias": false, "head_dim": 16}),
    )
    .unwrap();
    assert_eq!(c.architecture().unwrap(), Architecture::Qwen3);
    assert!(!c.qkv_bias());
    let e = with(serde_json::json!({"attention_bias": true})).unwrap_err();
    assert_eq!(field_of(e), "attention_bias");
    let e = with(serde_json::json!({"mlp_bias": true})).unwrap_err();
    assert_eq!(field_of(e), "mlp_bias");
}

#[test]
fn attention_implementation_is_parsed() {
    let c = with(serde_json::json!({"attention_implementation": "fused"})).unwrap();
    assert_eq!(c.attention_implementation, AttentionImpl::Fused);
    assert!(with(serde_json::json!({"attention_implementation": "sdpa"})).is_err());
}
