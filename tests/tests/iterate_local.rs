//! `selfinstruct iterate` end to end on the tiny chat fixture: two iterations (rounds with the
//! base model, LoRA SFT on seeds + accepted data, rounds with the tuned model), the budget exit
//! code, resume of a finished loop, a met target, and the external trainer hand-off.

use std::fs;
use std::path::Path;

use selfinstruct_tests::{read_parquet, repo_root, run_in, strings, texts};

fn config(dir: &Path) {
    let repo = repo_root();
    let text = format!(
        r#"[run]
name = "loop"
seed = 3
rounds = 1
prompts_per_round = 2
seed_tasks = {seeds:?}

[prompts]
templates_dir = {templates:?}
style = "chat"

[sampling.instructions]
max_tokens = 24
temperature = 0.7
top_p = 0.9
presence_penalty = 0.0
frequency_penalty = 0.0

[sampling.instances]
max_tokens = 12
temperature = 0.0
top_p = 1.0
presence_penalty = 0.0
frequency_penalty = 0.0

[generator]
kind = "local"

[generator.local]
model = {model:?}
batch_size = 4
"#,
        seeds = repo.join("seeds/seed_tasks.jsonl"),
        templates = repo.join("seeds/templates"),
        model = repo.join("tests/fixtures/models/llama_chat"),
    );
    fs::write(dir.join("pipeline.toml"), text).unwrap();
}

const TRAIN: [&str; 10] = [
    "--epochs",
    "1",
    "--lora-rank",
    "2",
    "--batch-tokens",
    "4096",
    "--micro-batch-tokens",
    "4096",
    "--max-seq-len",
    "512",
];

fn iterate(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "iterate",
        "--max-iterations",
        "2",
        "--rounds-per-iteration",
        "1",
    ];
    args.extend_from_slice(&TRAIN);
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

#[test]
fn two_iterations_then_the_budget_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let o = iterate(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", texts(&o).1);
    assert!(
        texts(&o).0.contains("no target met after 2 iterations"),
        "{}",
        texts(&o).0
    );
    let run = dir.path().join("outputs/loop");
    let rows = read_parquet(&run.join("iterations.parquet"));
    assert_eq!(rows.height(), 2);
    let next = strings(&rows, "next_generator");
    let generator = strings(&rows, "generator");
    let tuned = run.join("iterations/iter-0001/sft/model");
    assert_eq!(next[0].as_deref(), Some(tuned.to_str().unwrap()));
    assert_eq!(generator[1].as_deref(), Some(tuned.to_str().unwrap()));
    assert_eq!(next[1], None);
    assert!(tuned.join("config.json").is_file());
    let sha = strings(&rows, "generator_sha256");
    assert_ne!(
        sha[0], sha[1],
        "the second iteration generates with the tuned weights"
    );
    assert_eq!(read_parquet(&run.join("rounds.parquet")).height(), 2);
    let sft = read_parquet(&run.join("iterations/iter-0001/sft/train_metrics.parquet"));
    assert!(sft.height() >= 1);

    // Rerunning a finished loop changes nothing and reports the same end.
    let again = iterate(dir.path(), &[]);
    assert_eq!(again.status.code(), Some(1), "{}", texts(&again).1);
    assert_eq!(read_parquet(&run.join("iterations.parquet")).height(), 2);

    // Other loop settings on the same folder are refused.
    let other = run_in(dir.path(), &["iterate", "--rounds-per-iteration", "2"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        texts(&other).1.contains("different settings"),
        "{}",
        texts(&other).1
    );
}

#[test]
fn a_met_target_ends_the_loop_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let o = iterate(dir.path(), &["--target-instructions", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", texts(&o).1);
    assert!(texts(&o).0.contains("target met"), "{}", texts(&o).0);
    let rows = read_parquet(&dir.path().join("outputs/loop/iterations.parquet"));
    assert_eq!(rows.height(), 1);
    assert!(strings(&rows, "target_met")[0].is_some());
}

#[test]
fn the_external_trainer_gets_the_data_and_its_checkpoint_generates_next() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    // A "trainer" that checks its inputs and writes the base weights back as its result.
    let cmd = "test -s \"$SELFINSTRUCT_MESSAGES\" && test -s {alpaca} && \
               cp -r \"$SELFINSTRUCT_BASE_MODEL\" {output_dir}";
    let o = iterate(dir.path(), &["--trainer", "external", "--trainer-cmd", cmd]);
    assert_eq!(o.status.code(), Some(1), "{}", texts(&o).1);
    let it = dir.path().join("outputs/loop/iterations/iter-0001/sft");
    let messages = fs::read_to_string(it.join("data/train.messages.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(messages.lines().next().unwrap()).unwrap();
    assert_eq!(first["messages"][0]["role"], "user");
    assert_eq!(first["messages"][1]["role"], "assistant");
    let alpaca: serde_json::Value =
        serde_json::from_slice(&fs::read(it.join("data/train.alpaca.json")).unwrap()).unwrap();
    assert_eq!(alpaca.as_array().unwrap().len(), messages.lines().count());
    let rows = read_parquet(&dir.path().join("outputs/loop/iterations.parquet"));
    assert_eq!(rows.height(), 2);
    assert_eq!(
        strings(&rows, "generator")[1].as_deref(),
        Some(it.join("model").to_str().unwrap())
    );

    // A failing command is an error naming it.
    let failing = tempfile::tempdir().unwrap();
    config(failing.path());
    let o = iterate(
        failing.path(),
        &["--trainer", "external", "--trainer-cmd", "exit 3"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(texts(&o).1.contains("exit 3"), "{}", texts(&o).1);
}
