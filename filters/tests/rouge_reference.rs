//! The Rust ROUGE-L engine against Python `rouge_score` 0.1.2, from committed fixtures made by
//! `tests/fixtures/rouge/make_fixtures.py` (see that script for how to regenerate them).
//! Floats are compared with `==`: the claim is bit-for-bit equality.

use std::path::PathBuf;

use filters::{NearDupConfig, NearDupIndex, RougeScorer, TokenizerMode};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/rouge")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn num(v: &Value, what: &str, line: usize) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("line {line}: {what} is not a number"))
}

#[test]
fn pairs_match_rouge_score_bit_for_bit() {
    let text = fixture("pairs.jsonl");
    let scorer = RougeScorer::new(TokenizerMode::RougeScore);
    let mut n = 0;
    let mut mismatches = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let row: Vec<Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let (Some(target), Some(prediction)) = (row[0].as_str(), row[1].as_str()) else {
            panic!("line {}: texts are not strings", i + 1)
        };
        let want = (
            num(&row[2], "precision", i + 1),
            num(&row[3], "recall", i + 1),
            num(&row[4], "fmeasure", i + 1),
        );
        let got = scorer.score(target, prediction);
        if (got.precision, got.recall, got.fmeasure) != want {
            mismatches.push(format!(
                "line {}: {target:?} / {prediction:?}: got {got:?}, want {want:?}",
                i + 1
            ));
        }
        n += 1;
    }
    assert!(n >= 15_000, "fixture too small: {n} pairs");
    assert!(
        mismatches.is_empty(),
        "{} of {n} pairs differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
}

/// The fixture holds pairs constructed with 2·LCS = 0.7·(la + lb) exactly. Python's float F for
/// them is exactly 0.7 (kept: the threshold is strict), or rounds to 0.7000000000000001 (e.g. LCS
/// 7, lengths 8 and 12), which the reference *rejects*, or to 0.6999999999999998, kept. The index
/// must decide each like the reference, and reject every pair one common token above.
#[test]
fn boundary_pairs_decide_like_the_reference() {
    let text = fixture("pairs.jsonl");
    let (mut kept_at, mut rejected_at, mut below_at, mut above) = (0, 0, 0, 0);
    for (i, line) in text.lines().enumerate() {
        let row: Vec<Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let (Some(t), Some(p)) = (row[0].as_str(), row[1].as_str()) else {
            continue;
        };
        let (lt, lp) = (t.split_whitespace().count(), p.split_whitespace().count());
        if !(t.starts_with('w') && p.starts_with('w')) || lt + lp == 0 || lp == 0 {
            continue;
        }
        let (precision, f) = (
            num(&row[2], "precision", i + 1),
            num(&row[4], "fmeasure", i + 1),
        );
        let lcs = (precision * lp as f64).round() as usize;
        let mut idx = NearDupIndex::new(NearDupConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        idx.insert(t).unwrap_or_else(|e| panic!("{e}"));
        let n = idx.check(p);
        assert_eq!(n.max, f, "line {}", i + 1);
        assert_eq!(n.accepted, f <= 0.7, "line {}", i + 1);
        if 20 * lcs == 7 * (lt + lp) {
            if f == 0.7 {
                kept_at += 1;
                assert!(n.accepted, "line {}: F exactly 0.7 must be kept", i + 1);
            } else if f > 0.7 {
                rejected_at += 1;
                assert!(!n.accepted, "line {}", i + 1);
            } else {
                below_at += 1;
                assert!(n.accepted, "line {}", i + 1);
            }
        } else if 20 * lcs > 7 * (lt + lp) {
            above += 1;
            assert!(
                !n.accepted,
                "line {}: F = {f} above 0.7 must be rejected",
                i + 1
            );
        }
    }
    assert!(
        kept_at >= 50 && rejected_at >= 50 && above >= 50,
        "boundary pairs: {kept_at} at 0.7, {rejected_at} rounded above, {below_at} rounded below, {above} above"
    );
}

/// The reference greedy dedup (Alpaca's loop, brute force in Python) on 1,500 synthetic
/// instructions: the index makes the same decisions with the same maximum F, through the
/// one-at-a-time and the batch entry points.
#[test]
fn dedup_decisions_match_reference_loop() {
    let text = fixture("dedup.jsonl");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default()).unwrap_or_default();
    let threshold = num(&header["threshold"], "threshold", 1);
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let row: Vec<Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 2));
        let t = row[0]
            .as_str()
            .unwrap_or_else(|| panic!("line {}: no text", i + 2))
            .to_owned();
        let kept = row[1]
            .as_bool()
            .unwrap_or_else(|| panic!("line {}: no decision", i + 2));
        rows.push((t, kept, num(&row[2], "max", i + 2)));
    }
    assert_eq!(Some(rows.len() as u64), header["n"].as_u64());
    let rejected = rows.iter().filter(|r| !r.1).count();
    assert!(
        rejected > 100 && rejected < rows.len() / 2,
        "{rejected} rejected: not a useful fixture"
    );

    let cfg = NearDupConfig {
        threshold,
        ..NearDupConfig::default()
    };
    let mut one = NearDupIndex::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    for (i, (t, kept, max)) in rows.iter().enumerate() {
        let n = one.check_and_insert(t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n.accepted, n.max), (*kept, *max), "instruction {i}: {t:?}");
    }
    let mut batch = NearDupIndex::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let out = batch
        .check_and_insert_batch(&texts)
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, (n, (t, kept, max))) in out.iter().zip(&rows).enumerate() {
        assert_eq!(
            (n.accepted, n.max),
            (*kept, *max),
            "batch, instruction {i}: {t:?}"
        );
    }
    assert_eq!(batch.len(), rows.len() - rejected);
}
