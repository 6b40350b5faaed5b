//! Prefill and decode speed of a Hugging Face checkpoint or GGUF file on the CPU, greedy, EOS ignored: the
//! selfinstruct side of `bench/model/run.sh`. `SELFINSTRUCT_ENGINE=burn` measures the burn
//! model (flex backend) instead of the CPU engine (`model::cpu`).
//!
//! ```text
//! cargo run -p model --example decode_speed -- CHECKPOINT PROMPTS.jsonl BATCH NEW_TOKENS
//! ```
//! `PROMPTS.jsonl` holds `{"ids": [...]}` rows; the first `BATCH` are used. Prints one JSON line.
//! Decode time is the whole batched generation minus a separately timed prefill of the same
//! prompts, as the transformers side measures it.

use std::time::Instant;

use burn::backend::Flex;
use model::cpu::CpuModel;
use model::engine::{generate, GenerationRequest, Runner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, prompts, batch, new] = &args[..] else {
        return Err("usage: decode_speed CHECKPOINT PROMPTS.jsonl BATCH NEW_TOKENS".into());
    };
    let (batch, new): (usize, usize) = (batch.parse()?, new.parse()?);
    let rows: Vec<Vec<u32>> = std::fs::read_to_string(prompts)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(batch)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(serde_json::from_value(v["ids"].clone())?)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    if rows.len() < batch {
        return Err(format!("{prompts}: fewer than {batch} prompts").into());
    }
    let device = Default::default();
    let t = Instant::now();
    let model = model::load_any::<Flex>(std::path::Path::new(dir), &device)?.model;
    let load_s = t.elapsed().as_secs_f64();
    let requests: Vec<GenerationRequest> = rows
        .iter()
        .map(|r| GenerationRequest::new(r.clone(), new))
        .collect();
    let engine = std::env::var("SELFINSTRUCT_ENGINE").unwrap_or_else(|_| "cpu".into());
    let (prefill_s, total_s, out) = match engine.as_str() {
        "burn" => timed(&model, &rows, &requests, batch)?,
        "cpu" => timed(&CpuModel::from_model(&model)?, &rows, &requests, batch)?,
        other => return Err(format!("SELFINSTRUCT_ENGINE={other}: expected cpu or burn").into()),
    };
    let generated: usize = out.iter().map(|c| c[0].tokens.len()).sum();
    let decode_s = (total_s - prefill_s).max(1e-9);
    let prompt_tokens: usize = rows.iter().map(Vec::len).sum();
    println!(
        "{}",
        serde_json::json!({
            "tool": "selfinstruct",
            "engine": engine,
            "batch": batch,
            "prompt_len": rows[0].len(),
            "new_tokens": new,
            "threads": rayon::current_num_threads(),
            "load_s": (load_s * 1000.0).round() / 1000.0,
            "prefill_s": (prefill_s * 1000.0).round() / 1000.0,
            "prefill_tok_s": (prompt_tokens as f64 / prefill_s * 10.0).round() / 10.0,
            "decode_s": (decode_s * 1000.0).round() / 1000.0,
            "decode_tok_s": ((generated - batch) as f64 / decode_s * 100.0).round() / 100.0,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    Ok(())
}

type Outputs = Vec<Vec<model::engine::Completion>>;

/// Prefill time of every prompt alone, then the time of the whole batched job.
fn timed<R: Runner>(
    model: &R,
    rows: &[Vec<u32>],
    requests: &[GenerationRequest],
    batch: usize,
) -> Result<(f64, f64, Outputs), Box<dyn std::error::Error>> {
    // Warm-up: parameters initialise lazily on first use.
    generate(model, &requests[..1], 1, None)?;
    let t = Instant::now();
    for r in rows {
        model.extend(&mut model.new_seq(), r, true)?;
    }
    let prefill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = generate(model, requests, batch, None)?;
    Ok((prefill_s, t.elapsed().as_secs_f64(), out))
}

/// Peak resident set size from /proc (Linux); 0 elsewhere.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
