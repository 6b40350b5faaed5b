//! `use_stemmer=True`: the Porter stemmer against NLTK's and whole ROUGE-L scores against
//! `rouge_score`, from fixtures made by `tests/fixtures/rouge/make_fixtures.py`.

use std::path::PathBuf;

use filters::porter::stem;
use filters::{RougeScorer, TokenizerMode};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/rouge")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn stems_match_nltk() {
    let text = fixture("stems.tsv");
    let mut bad = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let Some((word, want)) = line.split_once('\t') else {
            panic!("line {}: no tab", i + 1)
        };
        let got = stem(word);
        if got != want {
            bad.push(format!("{word:?}: got {got:?}, nltk {want:?}"));
        }
        n += 1;
    }
    assert!(n >= 5000, "fixture too small: {n} words");
    assert!(
        bad.is_empty(),
        "{} of {n} stems differ:\n{}",
        bad.len(),
        bad[..bad.len().min(30)].join("\n")
    );
}

#[test]
fn stemmed_pairs_match_rouge_score() {
    let text = fixture("pairs_stemmed.jsonl");
    let scorer = RougeScorer::with_stemmer(TokenizerMode::RougeScore, true);
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let row: Vec<Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let (Some(t), Some(p)) = (row[0].as_str(), row[1].as_str()) else {
            panic!("line {}: texts are not strings", i + 1)
        };
        let want: Vec<f64> = row[2..5].iter().filter_map(Value::as_f64).collect();
        let got = scorer.score(t, p);
        assert_eq!(
            vec![got.precision, got.recall, got.fmeasure],
            want,
            "line {}: {t:?} / {p:?}",
            i + 1
        );
        n += 1;
    }
    assert!(n >= 300, "fixture too small: {n} pairs");
}
