//! `selfinstruct inspect` on the committed run folder `tests/fixtures/inspect/run` (made by the
//! real tool: `regenerate_inspect_fixture` below drives `selfinstruct round` against a scripted
//! OpenAI-compatible server on loopback): exact funnel numbers and table contents, the text,
//! JSON, plot and HTML outputs, per-iteration rows, and errors for bad input.
//!
//! Regenerate the fixture (after a change to the round's tables):
//! `cargo test -p selfinstruct-tests --test inspect_cli -- --ignored regenerate_inspect_fixture`

mod openai_server;

use std::fs;
use std::path::{Path, PathBuf};

use openai_server::{Reply, Request, Server};
use pipeline::parquet::write_parquet;
use pipeline::round::generate::{request_seed, Step};
use polars::prelude::df;
use selfinstruct_tests::{repo_root, run_in, texts};
use serde_json::{json, Value};

const SEED: u64 = 7;

/// The fixture's own seed tasks.
const SEEDS: &str = r#"{"id": "seed_a", "name": "capital", "instruction": "Name the capital city of the given country.", "instances": [{"input": "Japan", "output": "Tokyo"}], "is_classification": false}
{"id": "seed_b", "name": "even", "instruction": "Tell whether the number is even or odd.", "instances": [{"input": "7", "output": "Odd"}], "is_classification": true}
{"id": "seed_c", "name": "synonym", "instruction": "Give a synonym of the word.", "instances": [{"input": "happy", "output": "glad"}], "is_classification": false}
{"id": "seed_d", "name": "thanks", "instruction": "Write a thank-you note to a colleague who helped you move.", "instances": [{"input": "", "output": "Dear Ana, thank you ..."}], "is_classification": false}
{"id": "seed_e", "name": "miles", "instruction": "Convert the distance from miles to kilometres.", "instances": [{"input": "10 miles", "output": "16.09 km"}], "is_classification": false}
{"id": "seed_f", "name": "topic", "instruction": "Decide which topic the headline belongs to: sports, politics or science.", "instances": [{"input": "New planet found", "output": "science"}], "is_classification": true}
{"id": "seed_g", "name": "lunch", "instruction": "Suggest a healthy lunch for a busy workday.", "instances": [{"input": "", "output": "A lentil salad."}], "is_classification": false}
{"id": "seed_h", "name": "title", "instruction": "Suggest a title for the short story.", "instances": [{"input": "A girl finds a dragon egg.", "output": "The Egg"}], "is_classification": false}
"#;

/// Instruction lists by (round, prompt): rule drops, near-duplicates, a cut response.
fn instruction_list(round: u32, prompt: usize) -> (&'static str, &'static str) {
    match (round, prompt) {
        (1, 0) => (
            " Write a short poem about the ocean.\n10. Sort the numbers in ascending order.\n11. Name a fruit.\n\
             12. Draw a picture of a cat sleeping.\n13. Write a short poem about the ocean at night.",
            "stop",
        ),
        (1, 1) => (
            " Classify the sentiment of the movie review as positive or negative.\n10. Write a program that prints hello.\n\
             11. Give me three examples of healthy breakfast foods.\n12. Translate the sentence into French.",
            "stop",
        ),
        (1, 2) => (" Plan a trip to the mountains.\n10. Write a long story about", "length"),
        (2, 0) => (
            " Write a short story about a brave knight.\n10. Decide whether the email is spam or not spam.\n\
             11. \"Quote the instruction with punctuation first.\"\n12. Summarize the news article in two sentences.",
            "stop",
        ),
        (2, 1) => (
            " Sort the numbers in ascending order please.\n10. Generate a list of five colors of the rainbow.\n\
             11. Explain how a rainbow forms after the rain.",
            "stop",
        ),
        _ => (
            " Write a short poem about the ocean.\n10. Create a recipe for a vegan chocolate cake.",
            "stop",
        ),
    }
}

fn completion(text: &str, finish: &str) -> Value {
    json!({"id": "c", "object": "text_completion", "model": "fixture-model",
           "choices": [{"index": 0, "text": text, "finish_reason": finish}],
           "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}})
}

fn task(req: &Request) -> String {
    let prompt = req.prompt();
    let after = prompt.rsplit("Task:").next().unwrap_or("");
    after.lines().next().unwrap_or("").trim().to_string()
}

fn reply(req: &Request) -> Reply {
    let seed = req.body["seed"].as_u64().unwrap_or(0);
    match req.body["max_tokens"].as_u64() {
        Some(1024) => {
            for round in 1..=2 {
                for prompt in 0..3 {
                    if request_seed(SEED, round, Step::Instructions, prompt) == seed {
                        let (text, finish) = instruction_list(round, prompt);
                        return Reply::ok(completion(text, finish));
                    }
                }
            }
            Reply::raw(400, "unexpected seed")
        }
        Some(3) => {
            let t = task(req);
            let yes = t.starts_with("Classify") || t.starts_with("Decide");
            Reply::ok(completion(if yes { " Yes" } else { " No" }, "length"))
        }
        _ => {
            let t = task(req);
            let text = if t.starts_with("Classify") || t.starts_with("Decide") {
                "Class label: Positive\nInput: I loved every minute of it.\n\nClass label: Negative\nInput: The plot was dull."
            } else if t.starts_with("Create a recipe") {
                "Example 1\nOutput:\n\nExample 2\nInput: cake\nOutput: cake"
            } else if t.starts_with("Write a short") {
                "Example 1\nOutput: Waves roll in under a silver moon and sing to the sand.\n\n\
                 Example 2\nOutput: Waves roll in under a silver moon and sing to the sand."
            } else {
                "Example 1\nInput: 3 1 2\nOutput: 1 2 3\n\nExample 2\nOutput: A plain answer that needs no input."
            };
            Reply::ok(completion(text, "stop"))
        }
    }
}

fn fixture() -> PathBuf {
    repo_root().join("tests/fixtures/inspect")
}

/// Runs two rounds of three prompts against the scripted server and copies the run's manifest and
/// top-level tables (with its seed file) to `tests/fixtures/inspect/run`.
#[test]
#[ignore = "regenerates the committed fixture"]
fn regenerate_inspect_fixture() {
    let server = Server::start(|req, _| reply(req));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("seeds.jsonl"), SEEDS).unwrap();
    let templates = repo_root().join("seeds/templates");
    let config = format!(
        r#"[run]
name = "fixture"
seed = {SEED}
rounds = 2
prompts_per_round = 3
seed_tasks = "seeds.jsonl"

[prompts]
templates_dir = {templates:?}

[filters.rouge]
top_k = 3

[generator]
kind = "openai"

[generator.openai]
base_urls = ["{}"]
model = "fixture-model"
max_retries = 0
api_key_env = ""
"#,
        server.url()
    );
    fs::write(dir.path().join("pipeline.toml"), config).unwrap();
    let out = run_in(dir.path(), &["round", "--config", "pipeline.toml"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = dir.path().join("outputs/fixture");
    let dest = fixture().join("run");
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir_all(&dest).unwrap();
    for name in [
        "instructions.parquet",
        "instances.parquet",
        "rejected.parquet",
        "rounds.parquet",
    ] {
        fs::copy(run.join(name), dest.join(name)).unwrap();
    }
    fs::write(dest.join("seeds.jsonl"), SEEDS).unwrap();
    // Paths of the temporary folder would differ on every regeneration: keep file names only.
    let mut manifest: Value =
        serde_json::from_str(&fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    manifest["seed_tasks"]["path"] = json!("seeds.jsonl");
    manifest["config"]["run"]["seed_tasks"] = json!("seeds.jsonl");
    manifest["config"]["run"]["out_dir"] = json!("outputs");
    manifest["config"]["prompts"]["templates_dir"] = json!("seeds/templates");
    let url = server.url();
    let text = serde_json::to_string_pretty(&manifest)
        .unwrap()
        .replace(&url, "http://127.0.0.1:PORT");
    fs::write(dest.join("manifest.json"), text + "\n").unwrap();
    write_iteration_fixture(&fixture().join("iterate"));
}

/// What `selfinstruct iterate` adds to a run folder: `iterations.parquet` (its columns, one
/// iteration per round of the fixture run) and iteration 1's SFT metrics. Written by hand in the
/// iterate command's layout, so the fixture run stays a plain `round` run.
fn write_iteration_fixture(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    let sft = dir.join("iterations/iter-0001/sft");
    fs::create_dir_all(&sft).unwrap();
    let mut iterations = df!(
        "iteration" => [1u32, 2],
        "generator" => ["base-model", "iterations/iter-0001/sft/model"],
        "generator_sha256" => ["00", "01"],
        "first_round" => [1u32, 2],
        "last_round" => [1u32, 2],
        "candidates" => [9u64, 9],
        "instructions_kept" => [5u64, 5],
        "instructions_total" => [5u64, 10],
        "acceptance_rate" => [5.0 / 9.0, 5.0 / 9.0],
        "drops" => ["{}", "{}"],
        "mean_rouge_to_seed" => [Some(0.3f64), Some(0.29)],
        "sft_train_loss" => [Some(1.25f64), None],
        "sft_heldout_loss" => [Some(1.5f64), None],
        "sft_tokens_per_s" => [Some(900.0f64), None],
        "next_generator" => [Some("iterations/iter-0001/sft/model"), None],
        "target_met" => [None, Some("max_iterations")],
        "wall_s" => [60.0f64, 30.0],
    )
    .unwrap();
    write_parquet(&mut iterations, &dir.join("iterations.parquet")).unwrap();
    let mut metrics = df!(
        "step" => [1u64, 2, 3, 4],
        "epoch" => [0.25f64, 0.5, 0.75, 1.0],
        "loss" => [2.0f64, 1.75, 1.5, 1.25],
        "lr" => [1e-4f64, 1e-4, 1e-4, 1e-4],
        "tokens_per_s" => [900.0f64, 910.0, 905.0, 920.0],
        "heldout_loss" => [None, Some(1.75f64), None, Some(1.5)],
    )
    .unwrap();
    write_parquet(&mut metrics, &sft.join("train_metrics.parquet")).unwrap();
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn run_dir() -> PathBuf {
    fixture().join("run")
}

/// Runs `selfinstruct inspect` with `args` and returns (exit code, stdout, stderr).
fn inspect(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["inspect"];
    all.extend(args);
    let out = run_in(&repo_root(), &all);
    let (stdout, stderr) = texts(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn report(args: &[&str]) -> Value {
    let (code, stdout, stderr) = inspect(args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn remaining(funnel: &Value) -> Vec<u64> {
    funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["remaining"].as_u64().unwrap())
        .collect()
}

#[test]
fn funnel_numbers_are_exact() {
    let r = report(&[run_dir().to_str().unwrap(), "--json"]);
    let funnels = r["funnels"].as_array().unwrap();
    let scopes: Vec<&str> = funnels
        .iter()
        .map(|f| f["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["round 1", "round 2", "all"]);
    let labels: Vec<&str> = funnels[2]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "generated",
            "after empty",
            "after too_short",
            "after too_long",
            "after blacklisted",
            "after write_a_program",
            "after starts_with_punctuation",
            "after starts_non_ascii",
            "after rouge",
            "after classification",
            "with instances"
        ]
    );
    // Round 1: 9 candidates (the third response was cut by the length limit and never became
    // candidates); a too-short, a blacklisted, a "Write a program" and a near-duplicate are dropped.
    assert_eq!(remaining(&funnels[0]), [9, 9, 8, 8, 7, 6, 6, 6, 5, 5, 5]);
    // Round 2: a quoted instruction, two near-duplicates, and a recipe with no usable instance.
    assert_eq!(remaining(&funnels[1]), [9, 9, 9, 9, 9, 9, 8, 8, 6, 6, 5]);
    assert_eq!(
        remaining(&funnels[2]),
        [18, 18, 17, 17, 16, 15, 14, 14, 11, 11, 10]
    );
    assert_eq!(funnels[2]["kept"], 10);
    let drops: Vec<(String, String, String, u64)> = funnels[2]["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["unit"].as_str().unwrap().to_string(),
                d["stage"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
                d["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("response", "instruction_generation", "length_limit", 1),
        ("instruction", "rouge", "near_duplicate", 3),
        ("instruction", "rules", "blacklisted", 1),
        ("instruction", "instances", "no_instances", 1),
        ("instruction", "rules", "starts_with_punctuation", 1),
        ("instruction", "rules", "too_short", 1),
        ("instruction", "rules", "write_a_program", 1),
        ("instance", "instances", "duplicate_instance", 2),
        ("instance", "instances", "empty_output", 1),
        ("instance", "instances", "input_equals_output", 1),
    ];
    let expected: Vec<(String, String, String, u64)> = expected
        .iter()
        .map(|(u, s, r, n)| (u.to_string(), s.to_string(), r.to_string(), *n))
        .collect();
    assert_eq!(drops, expected);
}

#[test]
fn table1_similarity_and_verbs_are_exact() {
    let r = report(&[run_dir().to_str().unwrap(), "--json"]);
    let t = &r["table1"];
    assert_eq!(
        (
            &t["instructions"],
            &t["classification_instructions"],
            &t["non_classification_instructions"],
            &t["instances"],
            &t["instances_with_empty_input"],
            &t["instructions_without_input"]
        ),
        (
            &json!(10),
            &json!(2),
            &json!(8),
            &json!(18),
            &json!(8),
            &json!(2)
        )
    );
    assert_eq!(
        t["instruction_length"],
        json!({"count": 10, "mean": 7.8, "median": 8.0})
    );
    assert_eq!(
        t["input_length"],
        json!({"count": 10, "mean": 3.8, "median": 3.0})
    );
    assert_eq!(t["output_length"]["median"], json!(3.0));

    let s = &r["similarity"];
    assert_eq!(
        s["to_nearest_seed"]["bins"],
        json!([0, 3, 2, 3, 2, 0, 0, 0, 0, 0])
    );
    assert_eq!(s["seed_scores_recorded"], 10);
    assert_eq!(
        s["to_nearest_generated"]["bins"],
        json!([0, 2, 2, 1, 0, 1, 0, 0, 0, 0])
    );
    assert_eq!(s["without_generated_neighbour"], 4);

    let v = &r["verb_noun"];
    assert_eq!(
        (&v["instructions"], &v["with_structure"], &v["unique_verbs"]),
        (&json!(10), &json!(8), &json!(7))
    );
    let top: Vec<String> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["verb"], e["count"], e["nouns"]))
        .collect();
    assert_eq!(top[0], r#""write" 2 [["poem",1],["story",1]]"#);
    assert_eq!(top[1], r#""classify" 1 [["sentiment",1]]"#);
    assert_eq!(top.len(), 7);

    let kept: Vec<&str> = r["samples"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "r1-p0-s0-i0",
            "r1-p1-s0-i0",
            "r1-p1-s0-i3",
            "r2-p0-s0-i1",
            "r2-p1-s0-i1"
        ]
    );
}

/// With a seed file whose ids the run never recorded, every nearest-seed score is computed
/// again; they must equal the scores the run recorded at acceptance time.
#[test]
fn recomputed_seed_similarity_equals_the_recorded_one() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = SEEDS.replace("\"seed_", "\"other_");
    let seeds = dir.path().join("renamed.jsonl");
    fs::write(&seeds, renamed).unwrap();
    let recorded = report(&[run_dir().to_str().unwrap(), "--json"]);
    let computed = report(&[
        run_dir().to_str().unwrap(),
        "--json",
        "--seeds",
        seeds.to_str().unwrap(),
    ]);
    assert_eq!(computed["similarity"]["seed_scores_computed"], 10);
    assert_eq!(
        computed["similarity"]["to_nearest_seed"],
        recorded["similarity"]["to_nearest_seed"]
    );
}

#[test]
fn terminal_output_is_aligned_tables() {
    let (code, stdout, stderr) = inspect(&[run_dir().to_str().unwrap(), "--sample", "2"]);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "step                           round 1  round 2  all",
        "generated                            9        9   18",
        "after rouge                          5        6   11",
        "with instances                       5        5   10",
        "instruction  rouge                   near_duplicate                 1        2    3",
        "classification instructions                 2 (20.0%)  11584",
        "0.3-0.4                  3                  1",
        "write                 2  poem (1), story (1)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in\n{stdout}"
        );
    }
    assert!(stdout.contains("Verb-noun diversity: 8 (80.0%) of 10 instructions"));
    assert!(!stdout.contains("warning"), "{stdout}");
    assert!(!stdout.contains("Per iteration"));
}

#[test]
fn rejected_sample_filters_by_reason() {
    let r = report(&[
        run_dir().to_str().unwrap(),
        "--json",
        "--reason",
        "near_duplicate",
        "--sample",
        "10",
    ]);
    let rows = r["samples"]["rejected"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["reason"] == "near_duplicate"));
    assert_eq!(
        rows[0]["text"],
        "Write a short poem about the ocean at night."
    );
    assert_eq!(rows[0]["nearest"], "Write a short poem about the ocean.");
    assert_eq!(r["samples"]["kept"].as_array().unwrap().len(), 10);
}

#[test]
fn plots_and_html_report_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let html = dir.path().join("report.html");
    let (code, _, stderr) = inspect(&[
        run_dir().to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "funnel",
        "rouge_seed",
        "rouge_generated",
        "verb_noun",
        "acceptance",
    ] {
        let png = fs::read(plots.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png");
        let svg = fs::read_to_string(plots.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg"
        );
    }
    assert!(!plots.join("sft_loss.png").exists());
    let page = fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 5);
    assert!(page.contains("id=\"plot-verb_noun\""));
    assert!(!page.contains("<script"), "self-contained, no scripts");
    assert!(
        !page.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );
}

/// With `iterations.parquet` (and the SFT folder it names) the report has per-iteration rows and
/// the loss curve.
#[test]
fn iterations_and_sft_loss_are_shown_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_tree(&run_dir(), &run);
    copy_tree(&fixture().join("iterate"), &run);
    let r = report(&[run.to_str().unwrap(), "--json"]);
    let rows = r["iterations"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["sft_train_loss"], 1.25);
    assert_eq!(rows[1]["sft_train_loss"], Value::Null);
    assert_eq!(rows[1]["generator"], "iterations/iter-0001/sft/model");
    // Rounds are grouped by iteration (first_round..=last_round): one funnel each.
    let scopes: Vec<&str> = r["funnels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["scope"].as_str().unwrap())
        .collect();
    assert_eq!(
        scopes,
        ["round 1", "round 2", "iteration 1", "iteration 2", "all"]
    );
    assert_eq!(remaining(&r["funnels"][3]), remaining(&r["funnels"][1]));
    assert_eq!(r["rounds"][1]["iteration"], 2);
    let curves = r["loss_curves"].as_array().unwrap();
    assert_eq!(curves.len(), 1);
    assert_eq!(curves[0]["points"].as_array().unwrap().len(), 4);
    assert_eq!(curves[0]["points"][3]["heldout_loss"], 1.5);

    let plots = dir.path().join("plots");
    let (code, stdout, stderr) =
        inspect(&[run.to_str().unwrap(), "--plots", plots.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Per iteration: acceptance, throughput and SFT loss"));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("1          base-model")
                && l.contains("1-1")
                && l.contains("1.2500")
                && l.contains("900.0")),
        "{stdout}"
    );
    assert!(plots.join("sft_loss.png").exists());
}

fn assert_error(args: &[&str], expected: &str) {
    let (code, stdout, stderr) = inspect(args);
    assert_eq!(code, 2, "{args:?}: {stdout}\n{stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_error(&[missing.to_str().unwrap()], "nope: no such run folder");
    assert_error(
        &[dir.path().to_str().unwrap()],
        "not a run folder (no manifest.json",
    );

    let run = dir.path().join("run");
    copy_tree(&run_dir(), &run);
    let run_s = run.to_str().unwrap();
    assert_error(
        &[run_s, "--reason", "bogus"],
        "--reason \"bogus\": not a rejection reason",
    );
    let html = dir.path().join("no/such/dir/report.html");
    assert_error(
        &[run_s, "--html", html.to_str().unwrap()],
        "cannot create a temporary file",
    );
    assert!(!html.exists());

    fs::write(run.join("rejected.parquet"), b"PAR1 not really").unwrap();
    assert_error(&[run_s], "rejected.parquet: not a readable Parquet file");
    fs::remove_file(run.join("rejected.parquet")).unwrap();
    assert_error(&[run_s], "rejected.parquet");

    fs::write(run.join("seeds.jsonl"), "{\"id\": 1}\n").unwrap();
    fs::copy(
        run_dir().join("rejected.parquet"),
        run.join("rejected.parquet"),
    )
    .unwrap();
    assert_error(&[run_s], "seeds.jsonl:1");
}

/// A run with no kept instruction (every table empty but the rejections) still gives every table
/// and plot, and the funnel that no longer adds up is reported, not hidden.
#[test]
fn empty_run_and_inconsistent_tables_are_reported() {
    use pipeline::round::tables::{instances_frame, instructions_frame};
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_tree(&run_dir(), &run);
    write_parquet(
        &mut instructions_frame(&[]).unwrap(),
        &run.join("instructions.parquet"),
    )
    .unwrap();
    write_parquet(
        &mut instances_frame(&[]).unwrap(),
        &run.join("instances.parquet"),
    )
    .unwrap();
    let plots = dir.path().join("plots");
    let html = dir.path().join("r.html");
    let (code, stdout, stderr) = inspect(&[
        run.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let fields = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert!(
        stdout
            .lines()
            .any(|l| fields(l) == ["instructions", "0", "52445"]),
        "{stdout}"
    );
    // rounds.parquet still says 10 were kept: the tables disagree, and inspect says so.
    let warning = "warning: rounds.parquet keeps 10 instructions but instructions.parquet has 0";
    assert!(stdout.lines().any(|l| l == warning), "{stdout}");
    assert!(fs::read_to_string(&html).unwrap().contains(&warning[9..]));
    assert!(plots.join("verb_noun.png").exists() && html.exists());
}
