//! The GGUF reader and dequantisers against files and values produced by llama.cpp's own
//! Python package (`gguf`): see tests/fixtures/gguf/make_fixtures.py.
//!
//! Dequantised values must match gguf.quants.dequantize *bit for bit*: both sides form the same
//! f32 products in the same order without FMA, and f16/bf16 -> f32 is exact, so there is no
//! 1-ulp slack anywhere (NaN included: the quiet NaN in the F16/BF16/F32 fixtures must keep its
//! exact bit pattern).

use std::path::PathBuf;

use model::gguf::{
    dequantize, unpermute_qk_rows, Architecture, GgmlType, GgufFile, GgufModelConfig,
    MetadataArray, MetadataValue, RopeScalingKind,
};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gguf")
        .join(name)
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixture("manifest.json"))
        .expect("fixtures present; run make_fixtures.py");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).expect("expected-values file");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn open(name: &str) -> GgufFile {
    GgufFile::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts bit equality and reports the first differing element.
fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} ({:#010x}), expected {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

fn array_to_json(a: &MetadataArray) -> Value {
    match a {
        MetadataArray::U8(v) => json!(v),
        MetadataArray::I8(v) => json!(v),
        MetadataArray::U16(v) => json!(v),
        MetadataArray::I16(v) => json!(v),
        MetadataArray::U32(v) => json!(v),
        MetadataArray::I32(v) => json!(v),
        MetadataArray::F32(v) => json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
        MetadataArray::Bool(v) => json!(v),
        MetadataArray::String(v) => json!(v),
        MetadataArray::Array(v) => Value::Array(v.iter().map(array_to_json).collect()),
        MetadataArray::U64(v) => json!(v),
        MetadataArray::I64(v) => json!(v),
        MetadataArray::F64(v) => json!(v),
    }
}

fn value_to_json(v: &MetadataValue) -> Value {
    match v {
        MetadataValue::U8(x) => json!(x),
        MetadataValue::I8(x) => json!(x),
        MetadataValue::U16(x) => json!(x),
        MetadataValue::I16(x) => json!(x),
        MetadataValue::U32(x) => json!(x),
        MetadataValue::I32(x) => json!(x),
        MetadataValue::F32(x) => json!(f64::from(*x)),
        MetadataValue::Bool(x) => json!(x),
        MetadataValue::String(x) => json!(x),
        MetadataValue::Array(a) => array_to_json(a),
        MetadataValue::U64(x) => json!(x),
        MetadataValue::I64(x) => json!(x),
        MetadataValue::F64(x) => json!(x),
    }
}

#[test]
fn every_metadata_value_type_reads_back() {
    let m = manifest();
    let file = open("types.gguf");
    let md = file.metadata();
    let expected = m["types.gguf"]["metadata"]
        .as_object()
        .expect("metadata object");
    for (key, entry) in expected {
        let got = md.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(got.value_type().to_string(), entry["type"], "{key}: type");
        assert_eq!(value_to_json(got), entry["value"], "{key}: value");
        if let Some(elem) = entry.get("element_type") {
            let arr = got.as_array().expect("array");
            assert_eq!(arr.element_type().to_string(), *elem, "{key}: element type");
        }
    }
    // GGUFWriter adds general.architecture itself; nothing else is in the file.
    assert_eq!(md.get_str("general.architecture").ok(), Some("fixture"));
    assert_eq!(md.len(), expected.len() + 1);
    // nested arrays keep their inner element type (GGUFWriter infers i32 from Python ints)
    match md.get_array("test.arr_nested").expect("nested") {
        MetadataArray::Array(inner) => {
            assert!(inner.iter().all(|a| matches!(a, MetadataArray::I32(_))))
        }
        other => panic!("not nested: {other:?}"),
    }
    assert_eq!(file.content().version, 3);
    assert_eq!(file.content().alignment, 32);
}

#[test]
fn every_supported_type_dequantizes_bit_exactly() {
    let m = manifest();
    let file = open("types.gguf");
    let tensors = m["types.gguf"]["tensors"].as_array().expect("tensor list");
    let mut seen = std::collections::BTreeSet::new();
    for t in tensors {
        let name = t["name"].as_str().expect("name");
        let view = file.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ty = GgmlType::from_name(t["type"].as_str().expect("type")).expect("known type");
        assert_eq!(view.info.ggml_type, ty, "{name}: type");
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).expect("shape");
        assert_eq!(view.info.shape(), shape, "{name}: shape");
        assert_eq!(view.info.data_start % 32, 0, "{name}: data alignment");
        let got = view.to_f32().unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = read_f32(t["expected"].as_str().expect("expected file"));
        assert_bits_eq(name, &got, &want);
        seen.insert(ty.name());
    }
    let required = [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K",
    ];
    for r in required {
        assert!(seen.contains(r), "fixture lacks {r}");
    }
}

#[test]
fn rows_of_a_quantized_tensor_dequantize_independently() {
    let file = open("types.gguf");
    for name in ["q8_0", "q5_1", "q3_k", "q4_k", "q6_k"] {
        let view = file.tensor(name).expect("tensor");
        let all = view.to_f32().expect("dequantize");
        let row_len = view.info.row_len();
        assert_eq!(view.info.n_rows, 2);
        for r in 0..2 {
            let row = view.row(r).expect("row exists");
            let got = dequantize(view.info.ggml_type, row, row_len).expect("dequantize row");
            assert_bits_eq(name, &got, &all[r * row_len..(r + 1) * row_len]);
        }
        assert!(view.row(2).is_none());
    }
}

#[test]
fn q8_0_block_access_matches_dequantization() {
    let file = open("types.gguf");
    let view = file.tensor("q8_0").expect("tensor");
    let all = view.to_f32().expect("dequantize");
    let row = view.row(1).expect("row 1");
    for b in 0..view.info.row_len() / 32 {
        let (d, qs) = model::gguf::q8_0_block(row, b).expect("block");
        for (i, &q) in qs.iter().enumerate() {
            assert_eq!(
                (f32::from(q) * d).to_bits(),
                all[512 + 32 * b + i].to_bits()
            );
        }
    }
}

#[test]
fn block_geometry_matches_gguf_py() {
    let m = manifest();
    let sizes = m["quant_sizes"].as_object().expect("quant_sizes");
    for ty in GgmlType::ALL {
        let Some(entry) = sizes.get(ty.name()) else {
            panic!("gguf-py does not know {ty}")
        };
        let (bs, ts) = (
            entry[0].as_u64().expect("block size"),
            entry[1].as_u64().expect("type size"),
        );
        assert_eq!(ty.block_size() as u64, bs, "{ty}: block size");
        if ty == GgmlType::Q8_1 {
            // ggml's block_q8_1 is 2 halves + 32 bytes = 36; gguf-py says 4 + 4 + 32. Never stored
            // in files; we follow ggml (see types.rs).
            assert_eq!((ty.type_size(), ts), (36, 40));
            continue;
        }
        assert_eq!(ty.type_size() as u64, ts, "{ty}: type size");
    }
}

fn model_fixture(arch: &str) -> (GgufFile, GgufModelConfig, Value) {
    model_fixture_file(&format!("tiny_{arch}.gguf"), arch)
}

fn model_fixture_file(name: &str, arch: &str) -> (GgufFile, GgufModelConfig, Value) {
    let file = open(name);
    let config =
        GgufModelConfig::from_gguf(file.content()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let m = manifest()[name].clone();
    assert_eq!(config.architecture.name(), arch);
    assert_eq!(
        config.hidden_size as u64,
        m["hidden_size"].as_u64().expect("hidden")
    );
    assert_eq!(
        config.num_attention_heads as u64,
        m["num_attention_heads"].as_u64().expect("heads")
    );
    assert_eq!(
        config.num_key_value_heads as u64,
        m["num_key_value_heads"].as_u64().expect("kv")
    );
    assert_eq!(
        config.head_dim as u64,
        m["head_dim"].as_u64().expect("head_dim")
    );
    assert_eq!(
        config.intermediate_size as u64,
        m["intermediate_size"].as_u64().expect("ffn")
    );
    assert_eq!(
        config.vocab_size as u64,
        m["vocab_size"].as_u64().expect("vocab")
    );
    assert_eq!(config.num_hidden_layers, 1);
    assert_eq!(config.max_position_embeddings, 2048);
    assert_eq!(config.rms_norm_eps, f64::from(1e-6f32));
    assert_eq!(config.rope_theta, 1e6);
    (file, config, m)
}

#[test]
fn llama_config_and_qk_unpermutation() {
    check_llama("tiny_llama.gguf", 4, 2);
}

#[test]
fn llama_with_a_single_kv_head() {
    check_llama("micro_llama.gguf", 2, 1);
}

fn check_llama(name: &str, heads: usize, kv_heads: usize) {
    let (file, config, m) = model_fixture_file(name, "llama");
    assert_eq!(config.architecture, Architecture::Llama);
    assert!(config.tie_word_embeddings, "no output.weight: tied");
    assert!(!config.attention_bias && !config.qk_norm);
    assert_eq!(config.rope_scaling, None);
    let expected = m["unpermuted"].as_object().expect("unpermuted");
    let mut checked = 0;
    for info in file.tensors() {
        let mapping = config
            .map_tensor(&info.name)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(hf_file) = expected.get(&info.name) else {
            assert_eq!(mapping.unpermute_heads, None, "{}", info.name);
            continue;
        };
        let want = read_f32(hf_file.as_str().expect("file name"));
        let heads = mapping.unpermute_heads.expect("q/k of llama are permuted");
        let n_rows = info.n_rows as usize;
        let view = file.tensor(&info.name).expect("tensor");
        // dequantise then un-permute ...
        let got = unpermute_qk_rows(&view.to_f32().expect("dequantize"), n_rows, heads)
            .expect("unpermute");
        assert_bits_eq(&info.name, &got, &want);
        // ... or un-permute the quantised rows and dequantise: the same
        let raw = unpermute_qk_rows(view.data, n_rows, heads).expect("unpermute raw");
        let got = dequantize(info.ggml_type, &raw, info.n_elements as usize).expect("dequantize");
        assert_bits_eq(&info.name, &got, &want);
        checked += 1;
    }
    assert_eq!(checked, 2, "attn_q and attn_k");
    // the one-call loading path gives the same
    let q = config
        .load_tensor(&file, "blk.0.attn_q.weight")
        .expect("load q");
    assert_eq!(q.name, "model.layers.0.self_attn.q_proj.weight");
    assert_eq!(q.shape, [heads * config.head_dim, config.hidden_size]);
    let want = read_f32(expected["blk.0.attn_q.weight"].as_str().expect("file"));
    assert_bits_eq("load_tensor q", &q.values, &want);
    assert_eq!(
        config.map_tensor("blk.0.attn_q.weight").expect("q").hf_name,
        "model.layers.0.self_attn.q_proj.weight"
    );
    assert_eq!(
        config
            .map_tensor("blk.0.attn_k.weight")
            .expect("k")
            .unpermute_heads,
        Some(kv_heads)
    );
    assert_eq!(
        config
            .map_tensor("blk.0.attn_q.weight")
            .expect("q")
            .unpermute_heads,
        Some(heads)
    );
}

#[test]
fn qwen2_config_bias_untied_yarn_and_no_permutation() {
    let (file, config, _) = model_fixture("qwen2");
    assert!(!config.tie_word_embeddings);
    assert!(config.attention_bias);
    assert!(!config.qk_norm);
    let scaling = config.rope_scaling.clone().expect("yarn declared");
    assert_eq!(scaling.kind, RopeScalingKind::Yarn);
    assert_eq!(scaling.factor, 4.0);
    assert_eq!(scaling.original_max_position_embeddings, Some(512));
    let names: Vec<String> = file
        .tensors()
        .iter()
        .map(|t| {
            let m = config.map_tensor(&t.name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(m.unpermute_heads, None, "qwen2 is stored in HF order");
            m.hf_name
        })
        .collect();
    for want in [
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.norm.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.bias",
        "model.layers.0.self_attn.v_proj.bias",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not mapped");
    }
    // shapes come out in HF order: q_proj is [out, in]
    let q = file
        .content()
        .tensor_info("blk.0.attn_q.weight")
        .expect("q");
    assert_eq!(q.shape(), [64, 64]);
    let o = file
        .content()
        .tensor_info("blk.0.ffn_down.weight")
        .expect("down");
    assert_eq!(o.shape(), [64, 128]);
}

#[test]
fn qwen3_config_head_dim_and_qk_norm() {
    let (file, config, _) = model_fixture("qwen3");
    assert!(config.qk_norm);
    assert!(!config.attention_bias);
    assert_eq!(config.head_dim, 32, "key_length, not hidden / heads");
    let m = config
        .map_tensor("blk.0.attn_k_norm.weight")
        .expect("k_norm");
    assert_eq!(m.hf_name, "model.layers.0.self_attn.k_norm.weight");
    for t in file.tensors() {
        assert_eq!(
            config.map_tensor(&t.name).expect("maps").unpermute_heads,
            None
        );
    }
}

#[test]
fn unknown_tensor_names_are_rejected() {
    let (_, llama, _) = model_fixture("llama");
    for bad in [
        "blk.0.attn_q_norm.weight", // qwen3 only
        "blk.1.attn_q.weight",      // only one layer
        "blk.0.ffn_up.bias",        // no bias on the MLP
        "blk.+0.attn_q.weight",
        "blk.0.attn_q",
        "rope_freqs.weight",
        "output.bias",
        "",
    ] {
        assert!(llama.map_tensor(bad).is_err(), "{bad:?} accepted");
    }
}
