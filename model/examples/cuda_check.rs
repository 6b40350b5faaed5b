//! The golden checks of `model/tests/golden.rs` on burn's CUDA backend: every tiny checkpoint
//! of `tests/fixtures/models` loaded onto the GPU (f32), logits of every position compared
//! with transformers' golden logits, greedy continuations (with and without the KV cache)
//! compared token for token. Prints one JSON line per fixture and exits non-zero when a check
//! fails or no GPU is usable. Built here and run on a GPU machine by `bench/cuda_check.sh`.
//!
//! ```text
//! cargo build -p model --features cuda --example cuda_check
//! cuda_check tests/fixtures/models [--fused]
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use burn::backend::Cuda;
use model::config::{AttentionImpl, Config};
use model::device::cuda_device;
use model::generate::{greedy, greedy_no_cache};
use model::load::load_weights;

/// The f32 bound of the GPU issue (transformers vs this tool on the GPU).
const TOLERANCE: f32 = 1e-3;

#[derive(serde::Deserialize)]
struct Golden {
    input_ids: Vec<u32>,
    logits_shape: [usize; 2],
    logits_file: String,
    greedy_prompt: Vec<u32>,
    greedy_cached: Vec<u32>,
    /// Absent from fixtures whose script did not record it (`llama_chat`).
    greedy_nocache: Option<Vec<u32>>,
}

fn check(dir: &Path, fused: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let device = cuda_device(0)?;
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json"))?)?;
    let bytes = std::fs::read(dir.join(&g.logits_file))?;
    let expected: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut config = Config::from_file(&dir.join("config.json"))?;
    if fused {
        config.attention_implementation = AttentionImpl::Fused;
    }
    let start = Instant::now();
    let model = load_weights::<Cuda>(dir, &config, &device)?;
    let logits = model.logits(&g.input_ids)?;
    let shape_ok = logits.dims() == g.logits_shape;
    let got = logits.into_data().to_vec::<f32>()?;
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let n = g.greedy_cached.len();
    let cached = greedy(&model, &g.greedy_prompt, n, &[])?.tokens;
    let nocache_equal = match &g.greedy_nocache {
        Some(want) => Some(&greedy_no_cache(&model, &g.greedy_prompt, n, &[])?.tokens == want),
        None => None,
    };
    let ok = shape_ok
        && got.len() == expected.len()
        && diff < TOLERANCE
        && cached == g.greedy_cached
        && nocache_equal != Some(false);
    println!(
        "{}",
        serde_json::json!({
            "fixture": dir.file_name().map(|n| n.to_string_lossy().to_string()),
            "attention": if fused { "fused" } else { "plain" },
            "max_logit_diff": diff,
            "greedy_cached_equal": cached == g.greedy_cached,
            "greedy_nocache_equal": nocache_equal,
            "seconds": start.elapsed().as_secs_f64(),
            "ok": ok,
        })
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(root) = args.get(1) else {
        eprintln!("usage: cuda_check FIXTURES_DIR [--fused]");
        return ExitCode::from(2);
    };
    let fused = args.iter().any(|a| a == "--fused");
    let mut dirs: Vec<_> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("golden.json").is_file())
            .collect(),
        Err(e) => {
            eprintln!("{root}: {e}");
            return ExitCode::from(2);
        }
    };
    dirs.sort();
    let mut all = !dirs.is_empty();
    for dir in &dirs {
        match check(dir, fused) {
            Ok(ok) => all &= ok,
            Err(e) => {
                eprintln!("{}: {e}", dir.display());
                all = false;
            }
        }
    }
    if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
