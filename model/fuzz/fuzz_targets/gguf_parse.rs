//! Any byte string: parse it; if it parses, read every tensor, dequantise it, map the model
//! configuration and tensor names, and un-permute q/k rows. Nothing may panic, and nothing may
//! allocate more than a small multiple of the input.
#![no_main]

use gguf_fuzz::gguf::{dequantize, unpermute_qk_rows, GgufContent, GgufModelConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(content) = GgufContent::parse(data) else {
        return;
    };
    for t in &content.tensors {
        let bytes = content
            .tensor_bytes(data, t)
            .expect("tensors are in bounds once parsed");
        let _ = dequantize(t.ggml_type, bytes, t.n_elements as usize);
    }
    let Ok(config) = GgufModelConfig::from_gguf(&content) else {
        return;
    };
    for t in &content.tensors {
        if let Ok(mapping) = config.map_tensor(&t.name) {
            if let (Some(heads), Ok(bytes)) =
                (mapping.unpermute_heads, content.tensor_bytes(data, t))
            {
                let _ = unpermute_qk_rows(bytes, t.n_rows as usize, heads);
            }
        }
    }
});
