//! `selfinstruct sft` end to end on the tiny chat fixture (`tests/fixtures/models/llama_chat`):
//! LoRA and full fine-tuning write metrics, `sft.json` and a Hugging Face checkpoint that the
//! tool loads again; an existing output is refused unless resumed or forced; bad input exits 2.

use std::fs;
use std::path::{Path, PathBuf};

use selfinstruct_tests::{floats, read_parquet, repo_root, run_in, texts};

fn fixture() -> PathBuf {
    repo_root().join("tests/fixtures/models/llama_chat")
}

/// A small seed file: six tasks, one instance each.
fn seed_file(dir: &Path) -> PathBuf {
    let tasks = [
        ("Name a primary colour.", "", "Red"),
        ("Add the numbers.", "2 and 3", "5"),
        ("Translate to French.", "cat", "chat"),
        ("Is the sentence positive?", "I love this.", "Yes"),
        ("Give the opposite word.", "hot", "cold"),
        ("Say hello.", "", "Hello there, friend."),
    ];
    let lines: Vec<String> = tasks
        .iter()
        .enumerate()
        .map(|(i, (ins, input, output))| {
            serde_json::json!({
                "id": format!("t{i}"), "name": format!("task_{i}"), "instruction": ins,
                "instances": [{"input": input, "output": output}], "is_classification": false,
            })
            .to_string()
        })
        .collect();
    let path = dir.join("seeds.jsonl");
    fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn sft(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let seeds = seed_file(dir);
    let model = fixture();
    let mut args = vec![
        "sft",
        "--data",
        seeds.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out,
        "--epochs",
        "8",
        "--heldout",
        "0.2",
        "--batch-tokens",
        "150",
        "--micro-batch-tokens",
        "100",
        "--warmup-ratio",
        "0",
    ];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

fn check_run(dir: &Path, out: &str) {
    let out = dir.join(out);
    let metrics = read_parquet(&out.join("train_metrics.parquet"));
    let losses: Vec<f64> = floats(&metrics, "loss")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert!(losses.len() >= 8, "{} steps", losses.len());
    assert!(
        losses.last().unwrap() < &(0.7 * losses[0]),
        "the loss did not fall: {losses:?}"
    );
    let held = floats(&metrics, "heldout_loss");
    assert_eq!(
        held.iter().filter(|h| h.is_some()).count(),
        8,
        "one held-out loss per epoch"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("sft.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "done");
    assert_eq!(summary["result"]["train_examples"], 5);
    assert_eq!(summary["result"]["heldout_examples"], 1);
    // The exported checkpoint loads and runs, and differs from the base.
    let logits = |model: &Path, name: &str| {
        let file = dir.join(name);
        let o = run_in(
            dir,
            &[
                "logits",
                "--model",
                model.to_str().unwrap(),
                "--ids",
                "1 5 9",
                "--out",
                file.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", texts(&o).1);
        fs::read(file).unwrap()
    };
    assert_ne!(
        logits(&out.join("model"), "tuned.f32"),
        logits(&fixture(), "base.f32")
    );
}

#[test]
fn lora_fine_tuning_learns_and_exports_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = sft(dir.path(), "lora", &["--lora-rank", "4", "--lr", "1e-2"]);
    assert!(o.status.success(), "{}", texts(&o).1);
    assert!(texts(&o).0.contains("wrote the fine-tuned model"));
    check_run(dir.path(), "lora");
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("lora/sft.json")).unwrap()).unwrap();
    assert_eq!(summary["lora"]["rank"], 4);
    assert_eq!(summary["format"], "chat_template");

    // The same output again: refused without --resume/--force; --resume finds it finished.
    let again = sft(dir.path(), "lora", &["--lora-rank", "4", "--lr", "1e-2"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(texts(&again).1.contains("--resume"), "{}", texts(&again).1);
    let resumed = sft(
        dir.path(),
        "lora",
        &["--lora-rank", "4", "--lr", "1e-2", "--resume"],
    );
    assert!(resumed.status.success(), "{}", texts(&resumed).1);
    // Other settings cannot resume these checkpoints.
    let other = sft(dir.path(), "lora", &["--lora-rank", "8", "--resume"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        texts(&other).1.contains("different run"),
        "{}",
        texts(&other).1
    );
}

#[test]
fn full_fine_tuning_learns_and_exports_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = sft(
        dir.path(),
        "full",
        &["--full", "--lr", "3e-3", "--format", "alpaca"],
    );
    assert!(o.status.success(), "{}", texts(&o).1);
    check_run(dir.path(), "full");
}

#[test]
fn bad_input_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture();
    let missing = run_in(
        dir.path(),
        &[
            "sft",
            "--data",
            "nope.jsonl",
            "--model",
            model.to_str().unwrap(),
            "--out",
            "o",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        texts(&missing).1.contains("nope.jsonl"),
        "{}",
        texts(&missing).1
    );
    let seeds = seed_file(dir.path());
    let bad_target = run_in(
        dir.path(),
        &[
            "sft",
            "--data",
            seeds.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            "o",
            "--lora-targets",
            "q,lm_head",
        ],
    );
    assert_eq!(bad_target.status.code(), Some(2));
    assert!(texts(&bad_target).1.contains("lm_head"));
    fs::create_dir(dir.path().join("busy")).unwrap();
    fs::write(dir.path().join("busy/notes.txt"), "mine").unwrap();
    let busy = run_in(
        dir.path(),
        &[
            "sft",
            "--data",
            seeds.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            "busy",
            "--force",
        ],
    );
    assert_eq!(busy.status.code(), Some(2));
    assert_eq!(
        fs::read_to_string(dir.path().join("busy/notes.txt")).unwrap(),
        "mine"
    );
}
