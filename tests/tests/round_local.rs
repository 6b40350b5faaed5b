//! `selfinstruct round` end to end with the `local` generator: the burn model in the process,
//! on the tiny random-weight chat fixture (a Llama with the ChatML template). Random weights
//! write no real tasks, so this pins the plumbing: the run completes, every table is written
//! and consistent with the per-round counts, token counts are real, and the same seed gives the
//! same tables.

use std::fs;
use std::path::Path;

use pipeline::round::tables::RUN_DEPENDENT_COLUMNS;
use selfinstruct_tests::{read_parquet, repo_root, run_in, strings, texts};

fn config(dir: &Path, model: &Path) -> String {
    let repo = repo_root();
    let text = format!(
        r#"[run]
name = "local"
seed = 7
rounds = 2
prompts_per_round = 3
seed_tasks = {seeds:?}

[prompts]
templates_dir = {templates:?}
style = "chat"

[sampling.instructions]
max_tokens = 24
temperature = 0.7
top_p = 0.5
presence_penalty = 2.0
frequency_penalty = 0.0

[sampling.instances]
max_tokens = 16
temperature = 0.0
top_p = 1.0
presence_penalty = 1.5
frequency_penalty = 0.0

[generator]
kind = "local"

[generator.local]
model = {model:?}
batch_size = 4
"#,
        seeds = repo.join("seeds/seed_tasks.jsonl"),
        templates = repo.join("seeds/templates"),
    );
    let path = dir.join("pipeline.toml");
    fs::write(&path, &text).unwrap();
    text
}

fn tables(run: &Path) -> Vec<String> {
    ["instructions", "instances", "rejected", "rounds"]
        .iter()
        .map(|t| {
            let df = read_parquet(&run.join(format!("{t}.parquet")));
            // Timing columns differ between equal runs by nature.
            let keep: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !RUN_DEPENDENT_COLUMNS.contains(&c.as_str()))
                .collect();
            format!("{}", df.select(keep).unwrap())
        })
        .collect()
}

#[test]
fn local_round_on_the_tiny_chat_fixture() {
    let model = repo_root().join("tests/fixtures/models/llama_chat");
    let a = tempfile::tempdir().unwrap();
    config(a.path(), &model);
    let out = run_in(a.path(), &["round"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let run = a.path().join("outputs/local");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let sha = manifest["generator"]["weights_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64, "{manifest}");

    let rounds = read_parquet(&run.join("rounds.parquet"));
    assert_eq!(rounds.height(), 2);
    let rejected = read_parquet(&run.join("rejected.parquet"));
    let kept = read_parquet(&run.join("instructions.parquet"));
    // Every instruction-generation request was answered by the model (none failed), with
    // real token counts.
    let reasons = strings(&rejected, "reason");
    assert!(
        !reasons
            .iter()
            .any(|r| r.as_deref() == Some("generation_failed")),
        "{reasons:?}"
    );
    let col = |name: &str| -> Vec<i64> {
        let c = rounds
            .column(name)
            .unwrap()
            .cast(&polars::prelude::DataType::Int64)
            .unwrap();
        c.i64().unwrap().into_no_null_iter().collect()
    };
    assert!(col("requests").iter().all(|&r| r >= 3), "{rounds}");
    assert!(col("completion_tokens").iter().all(|&t| t > 0), "{rounds}");
    assert_eq!(col("kept").iter().sum::<i64>(), kept.height() as i64);

    // The same config and seed give the same tables.
    let b = tempfile::tempdir().unwrap();
    config(b.path(), &model);
    let again = run_in(b.path(), &["round"]);
    assert!(again.status.success(), "{}", texts(&again).1);
    assert_eq!(tables(&run), tables(&b.path().join("outputs/local")));
}
