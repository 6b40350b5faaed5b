//! Benchmark driver for the ROUGE-L engine and the near-duplicate index (bench/rouge/run.sh).
//!
//! ```text
//! rouge_bench pairs  PAIRS.jsonl [--min-secs S]
//!     PAIRS.jsonl: one [target, prediction] (more fields ignored) per line. Times
//!     (1) RougeScorer::score on raw strings (tokenization included) and
//!     (2) score_ids on sequences interned once beforehand (the index's hot loop),
//!     single thread; prints pairs per wall and per CPU second, and the sum of F (to
//!     cross-check with Python).
//! rouge_bench dedup  CORPUS [--seeds N] [--top-k K] [--verify N|all] [--out DECISIONS.jsonl]
//!     CORPUS: JSONL with {"instruction"} per line, or a JSON list of {"instruction", ...}.
//!     Greedy insert-time dedup of every instruction with NearDupIndex (batch API, rayon pool:
//!     set RAYON_NUM_THREADS). --seeds N pre-loads the first N instructions unchecked.
//!     --top-k K sets how many neighbours are reported exactly (default 10; 1 = decision only).
//!     --verify N re-derives N evenly spaced decisions by brute force (every kept instruction
//!     before it) and checks decision, max and top-k; `--verify all` checks every one.
//! ```
//!
//! Output is `key: value` lines for run.sh to collect.

use std::collections::HashMap;
use std::time::Instant;

use filters::lcs::lcs_len;
use filters::rouge::{f_from_lcs, score_ids};
use filters::{NearDupConfig, NearDupIndex, RougeScorer, Tokenizer, TokenizerMode};
use rayon::prelude::*;
use serde_json::Value;

fn main() {
    if let Err(e) = run() {
        eprintln!("rouge_bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("pairs"), Some(path)) => {
            let min_secs: f64 = flag("--min-secs").map_or(Ok(2.0), |s| s.parse().map_err(|e| format!("--min-secs: {e}")))?;
            pairs(path, min_secs)
        }
        (Some("dedup"), Some(path)) => {
            let seeds: usize = flag("--seeds").map_or(Ok(0), |s| s.parse().map_err(|e| format!("--seeds: {e}")))?;
            let top_k: usize = flag("--top-k").map_or(Ok(10), |s| s.parse().map_err(|e| format!("--top-k: {e}")))?;
            let verify = flag("--verify");
            dedup(path, seeds, top_k, verify.as_deref(), flag("--out").as_deref())
        }
        _ => Err(
            "usage: rouge_bench pairs PAIRS.jsonl | dedup CORPUS [--seeds N] [--top-k K] [--verify N|all] [--out FILE]"
                .into(),
        ),
    }
}

fn read_pairs(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Vec<Value> =
            serde_json::from_str(line).map_err(|e| format!("{path}:{}: {e}", i + 1))?;
        match (
            row.first().and_then(Value::as_str),
            row.get(1).and_then(Value::as_str),
        ) {
            (Some(t), Some(p)) => out.push((t.to_owned(), p.to_owned())),
            _ => {
                return Err(format!(
                    "{path}:{}: expected [target, prediction, ...]",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`, nanoseconds), so rates
/// can be stated per CPU second as well as per wall second on a shared machine.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

struct Timing {
    passes: usize,
    wall: f64,
    cpu: Option<f64>,
    sum: f64,
}

/// Runs `f` (one pass over all pairs) until `min_secs` of wall time have passed.
fn timed(min_secs: f64, mut f: impl FnMut() -> f64) -> Timing {
    let start = Instant::now();
    let cpu0 = thread_cpu_secs();
    let mut passes = 0;
    loop {
        let sum = f();
        passes += 1;
        let wall = start.elapsed().as_secs_f64();
        if wall >= min_secs {
            let cpu = cpu0.and_then(|c0| thread_cpu_secs().map(|c1| c1 - c0));
            return Timing {
                passes,
                wall,
                cpu,
                sum,
            };
        }
    }
}

/// Prints `<name>_pairs_per_sec` (wall), `<name>_pairs_per_cpu_sec` and `<name>_ns_per_pair`.
fn report(name: &str, t: &Timing, n: usize) {
    let done = (t.passes * n) as f64;
    println!("{name}_pairs_per_sec: {:.0}", done / t.wall);
    if let Some(cpu) = t.cpu {
        println!("{name}_pairs_per_cpu_sec: {:.0}", done / cpu);
        println!("{name}_cpu_ns_per_pair: {:.1}", cpu * 1e9 / done);
    }
    println!("{name}_ns_per_pair: {:.1}", t.wall * 1e9 / done);
}

fn pairs(path: &str, min_secs: f64) -> Result<(), String> {
    let pairs = read_pairs(path)?;
    let n = pairs.len();
    println!("pairs: {n}");

    let scorer = RougeScorer::new(TokenizerMode::RougeScore);
    let raw = timed(min_secs, || {
        pairs
            .iter()
            .map(|(t, p)| {
                scorer
                    .score(std::hint::black_box(t), std::hint::black_box(p))
                    .fmeasure
            })
            .sum()
    });
    report("raw", &raw, n);

    // Intern every text once, as the index does, then time only the scoring.
    let tok = Tokenizer::new(TokenizerMode::RougeScore);
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let mut intern = |s: &str| {
        let mut ids = Vec::new();
        tok.for_each_token(s, |t| {
            let next = vocab.len() as u32;
            ids.push(*vocab.entry(t.to_owned()).or_insert(next));
        });
        ids
    };
    // All ids in one flat array (as the index stores documents): pair i is
    // flat[bounds[i].0..bounds[i].1] against flat[bounds[i].1..bounds[i].2].
    let mut flat: Vec<u32> = Vec::new();
    let mut bounds: Vec<(usize, usize, usize)> = Vec::with_capacity(n);
    for (t, p) in &pairs {
        let a = flat.len();
        flat.extend(intern(t));
        let b = flat.len();
        flat.extend(intern(p));
        bounds.push((a, b, flat.len()));
    }
    let pretok = timed(min_secs, || {
        bounds
            .iter()
            .map(|&(a, b, c)| {
                score_ids(
                    std::hint::black_box(&flat[a..b]),
                    std::hint::black_box(&flat[b..c]),
                )
                .fmeasure
            })
            .sum()
    });
    let lcs_only = timed(min_secs, || {
        bounds
            .iter()
            .map(|&(a, b, c)| {
                lcs_len(
                    std::hint::black_box(&flat[a..b]),
                    std::hint::black_box(&flat[b..c]),
                ) as f64
            })
            .sum()
    });
    report("pretok", &pretok, n);
    report("pretok_lcs_only", &lcs_only, n);
    let (sum_raw, sum_ids) = (raw.sum, pretok.sum);
    println!("sum_f: {sum_raw:?}");
    if sum_raw != sum_ids {
        return Err(format!(
            "raw and pre-tokenized sums differ: {sum_raw} vs {sum_ids}"
        ));
    }
    Ok(())
}

fn read_corpus(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let field = |v: &Value, where_: String| -> Result<String, String> {
        v.get("instruction")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("{where_}: no \"instruction\" string"))
    };
    if text.trim_start().starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        list.iter()
            .enumerate()
            .map(|(i, v)| field(v, format!("{path}: record {i}")))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let v: Value =
                    serde_json::from_str(l).map_err(|e| format!("{path}:{}: {e}", i + 1))?;
                field(&v, format!("{path}:{}", i + 1))
            })
            .collect()
    }
}

fn dedup(
    path: &str,
    seeds: usize,
    top_k: usize,
    verify: Option<&str>,
    out: Option<&str>,
) -> Result<(), String> {
    let texts = read_corpus(path)?;
    let seeds = seeds.min(texts.len());
    println!("instructions: {}", texts.len());
    println!("threads: {}", rayon::current_num_threads());
    let cfg = NearDupConfig {
        top_k,
        ..NearDupConfig::default()
    };
    let start = Instant::now();
    let mut index = NearDupIndex::new(cfg).map_err(|e| e.to_string())?;
    index.extend(&texts[..seeds]).map_err(|e| e.to_string())?;
    let results = index
        .check_and_insert_batch(&texts[seeds..])
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let kept = results.iter().filter(|r| r.accepted).count();
    println!("seeds: {seeds}");
    println!("checked: {}", results.len());
    println!("kept: {kept}");
    println!("dedup_secs: {secs:.3}");
    // Comparisons the brute-force loop makes: each candidate against every instruction kept
    // (or seeded) before it.
    let mut pool = seeds as u64;
    let mut comparisons = 0u64;
    for r in &results {
        comparisons += pool;
        pool += u64::from(r.accepted);
    }
    println!("brute_force_comparisons: {comparisons}");

    if let Some(out) = out {
        let mut s = String::new();
        for (t, r) in texts[seeds..].iter().zip(&results) {
            s.push_str(&serde_json::json!([t, r.accepted, r.max]).to_string());
            s.push('\n');
        }
        std::fs::write(out, s).map_err(|e| format!("{out}: {e}"))?;
    }

    if let Some(v) = verify {
        let n = results.len();
        let picks: Vec<usize> = match v {
            "all" => (0..n).collect(),
            v => {
                let k: usize = v.parse().map_err(|e| format!("--verify: {e}"))?;
                let k = k.min(n);
                (0..k).map(|i| i * n / k.max(1)).collect()
            }
        };
        // The pool before candidate i: seeds plus the kept candidates before it, which are
        // index ids 0..pool_before[i].
        let mut pool_before = Vec::with_capacity(n);
        let mut p = seeds;
        for r in &results {
            pool_before.push(p);
            p += usize::from(r.accepted);
        }
        let tok = Tokenizer::new(TokenizerMode::RougeScore);
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut intern = |s: &str| {
            let mut ids = Vec::new();
            tok.for_each_token(s, |t| {
                let next = vocab.len() as u32;
                ids.push(*vocab.entry(t.to_owned()).or_insert(next));
            });
            ids
        };
        let docs: Vec<Vec<u32>> = (0..index.len())
            .map(|d| intern(index.text(d).unwrap_or_default()))
            .collect();
        let queries: Vec<Vec<u32>> = picks.iter().map(|&i| intern(&texts[seeds + i])).collect();
        let k = cfg.top_k;
        let vstart = Instant::now();
        let bad: Vec<String> = picks
            .par_iter()
            .zip(&queries)
            .filter_map(|(&i, q)| {
                // Plain brute force: F against every instruction in the pool, keeping the k best
                // by (F descending, id ascending) in a small sorted list.
                let mut all: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
                for (d, doc) in docs[..pool_before[i]].iter().enumerate() {
                    let f = if q.is_empty() || doc.is_empty() {
                        0.0
                    } else {
                        f_from_lcs(lcs_len(q, doc), q.len(), doc.len())
                    };
                    if all.len() < k || f > all[k - 1].0 {
                        let pos = all.iter().position(|&(g, _)| f > g).unwrap_or(all.len());
                        all.insert(pos, (f, d));
                        all.truncate(k);
                    }
                }
                let max = all.first().map_or(0.0, |x| x.0);
                let top: Vec<(usize, f64)> = all.iter().map(|&(f, d)| (d, f)).collect();
                let r = &results[i];
                let ok = r.accepted == (max <= cfg.threshold) && r.max == max && r.top_k == top;
                (!ok).then(|| {
                    format!(
                        "candidate {i}: index {:?} vs brute force max {max} top {top:?}",
                        (r.accepted, r.max)
                    )
                })
            })
            .collect();
        let comps: usize = picks.iter().map(|&i| pool_before[i]).sum();
        println!("verified: {}", picks.len());
        println!("verify_comparisons: {comps}");
        println!("verify_secs: {:.3}", vstart.elapsed().as_secs_f64());
        println!("verify_mismatches: {}", bad.len());
        if !bad.is_empty() {
            return Err(bad[..bad.len().min(5)].join("\n"));
        }
    }
    Ok(())
}
