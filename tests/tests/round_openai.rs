//! `selfinstruct round` end to end with the `openai` generator against a scripted
//! OpenAI-compatible server on loopback: exact table contents, determinism, SIGKILL at random
//! moments followed by a rerun, Ctrl-C, `init`, and config errors.

mod openai_server;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openai_server::{Reply, Request, Server};
use pipeline::prompts::SplitMix64;
use pipeline::round::generate::{request_seed, Step};
use polars::prelude::DataFrame;
use selfinstruct_tests::{
    floats, read_parquet, repo_root, run_in, selfinstruct_bin, strings, texts,
};
use serde_json::{json, Value};

/// Eight seed tasks, far from everything the scripts generate.
const SEEDS: &str = r#"{"id": "seed_1", "name": "capital", "instruction": "Name the capital city of the given country.", "instances": [{"input": "France", "output": "Paris"}], "is_classification": false}
{"id": "seed_2", "name": "prime", "instruction": "Tell whether the number is prime.", "instances": [{"input": "7", "output": "Yes"}], "is_classification": true}
{"id": "seed_3", "name": "antonym", "instruction": "Give an antonym of the word.", "instances": [{"input": "hot", "output": "cold"}], "is_classification": false}
{"id": "seed_4", "name": "email", "instruction": "Draft a polite email declining a meeting invitation.", "instances": [{"input": "", "output": "Dear Sam, ..."}], "is_classification": false}
{"id": "seed_5", "name": "units", "instruction": "Convert the temperature from Celsius to Fahrenheit.", "instances": [{"input": "20 C", "output": "68 F"}], "is_classification": false}
{"id": "seed_6", "name": "spam", "instruction": "Decide if the message is spam.", "instances": [{"input": "You won!", "output": "Spam"}], "is_classification": true}
{"id": "seed_7", "name": "recipe", "instruction": "Suggest a simple dinner using only pantry staples.", "instances": [{"input": "", "output": "Pasta with garlic and oil."}], "is_classification": false}
{"id": "seed_8", "name": "summary", "instruction": "Summarize the paragraph in one sentence.", "instances": [{"input": "Long text.", "output": "Short."}], "is_classification": false}
"#;

const SEED: u64 = 42;

/// Writes the seed file and a config with fast retries and no API key; returns the config path.
fn setup(dir: &Path, port_url: &str, prompts: usize, rounds: u32, chunk: usize) -> PathBuf {
    fs::write(dir.join("seeds.jsonl"), SEEDS).unwrap();
    let templates = repo_root().join("seeds/templates");
    let config = format!(
        r#"[run]
name = "test"
seed = {SEED}
rounds = {rounds}
prompts_per_round = {prompts}
seed_tasks = "seeds.jsonl"

[prompts]
templates_dir = {templates:?}

[generator]
kind = "openai"
chunk_requests = {chunk}

[generator.openai]
base_urls = ["{port_url}"]
model = "test-model"
max_concurrency = 8
max_retries = 3
initial_backoff_ms = 1
max_backoff_ms = 20
request_timeout_s = 10.0
api_key_env = ""
"#
    );
    let path = dir.join("pipeline.toml");
    fs::write(&path, config).unwrap();
    path
}

fn completion(text: &str, finish: &str) -> Value {
    json!({"id": "c", "object": "text_completion", "model": "test-model",
           "choices": [{"index": 0, "text": text, "finish_reason": finish}],
           "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
}

/// The step of a request, from its max_tokens (the defaults differ per step).
fn step(req: &Request) -> Step {
    match req.body["max_tokens"].as_u64() {
        Some(1024) => Step::Instructions,
        Some(3) => Step::Classification,
        _ => Step::Instances,
    }
}

/// The instruction a classification or instance prompt is about (its last `Task:` line).
fn task(req: &Request) -> String {
    let prompt = req.prompt();
    let after = prompt.rsplit("Task:").next().unwrap_or("");
    after.lines().next().unwrap_or("").trim().to_string()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn one_round_against_a_scripted_server_gives_exact_tables() {
    // Instruction prompt index by request seed.
    let prompt_of: HashMap<u64, usize> = (0..3)
        .map(|p| (request_seed(SEED, 1, Step::Instructions, p), p))
        .collect();
    let server = Server::start(move |req, seen| {
        match step(req) {
        Step::Instructions => match prompt_of.get(&req.body["seed"].as_u64().unwrap_or(0)) {
            Some(0) => Reply::ok(completion(
                " Explain how a rainbow forms after the rain.\n10. List three ways to save water at home.\n11. Name a fruit.\n\
                 12. Draw a picture of your street.\n13. explain how a rainbow forms after the rain!",
                "stop",
            )),
            // 429, then 500, then a list cut by the token limit: dropped whole.
            Some(1) => match seen {
                0 => Reply::raw(429, r#"{"error": "slow down"}"#).with_header("Retry-After", "0"),
                1 => Reply::raw(500, r#"{"error": "boom"}"#),
                _ => Reply::ok(completion(" Plan a trip to the mountains.\n10. Write a long story about", "length")),
            },
            // A slow reply.
            Some(2) => Reply::ok(completion(
                " Classify the sentiment of the movie review as positive or negative.\n10. Sort the numbers in ascending order.",
                "stop",
            ))
            .after(Duration::from_millis(300)),
            _ => Reply::raw(400, "unexpected seed"),
        },
        Step::Classification => match task(req).as_str() {
            // Malformed JSON in a 200: not retried, the request fails.
            "List three ways to save water at home." => Reply::raw(200, "{\"choices\": [oops"),
            t if t.starts_with("Classify") => Reply::ok(completion(" Yes", "length")),
            _ => Reply::ok(completion(" No", "length")),
        },
        Step::Instances => match task(req).as_str() {
            "Explain how a rainbow forms after the rain." if seen == 0 => Reply::raw(500, "{}"),
            "Explain how a rainbow forms after the rain." => Reply::ok(completion(
                "Example 1\nOutput: Sunlight is refracted by raindrops.\n\nExample 2\nInput: a double rainbow\nOutput: Light reflects twice inside each drop.\n\n\
                 Example 3\nOutput: Sunlight is refracted by raindrops.\n\n",
                "stop",
            )),
            t if t.starts_with("Classify") => Reply::ok(completion(
                "Class label: Positive\nInput: I loved every minute of it.\n\nClass label: Negative\nInput: The plot was dull.",
                "stop",
            )),
            _ => Reply::ok(completion("Example 1\nInput: 3 1 2\nOutput:\n\nExample 2\nInput: 1 2\nOutput: 1 2", "stop")),
        },
        _ => Reply::raw(400, "?"),
    }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &server.url(), 3, 1, 32);
    let out = run_in(dir.path(), &["round", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("dropped: near_duplicate"), "{stdout}");
    let run = dir.path().join("outputs/test");

    let kept = read_parquet(&run.join("instructions.parquet"));
    assert_eq!(strings(&kept, "id"), [s("r1-p0-s0-i0"), s("r1-p2-s0-i0")]);
    assert_eq!(
        strings(&kept, "instruction"),
        [
            s("Explain how a rainbow forms after the rain."),
            s("Classify the sentiment of the movie review as positive or negative.")
        ]
    );
    let flags = kept
        .column("is_classification")
        .unwrap()
        .bool()
        .unwrap()
        .clone();
    let flags: Vec<Option<bool>> = (0..flags.len()).map(|i| flags.get(i)).collect();
    assert_eq!(flags, [Some(false), Some(true)]);
    assert_eq!(strings(&kept, "classification_answer"), [s("No"), s("Yes")]);
    assert_eq!(strings(&kept, "prompt_id"), [s("r1-p0"), s("r1-p2")]);
    assert_eq!(
        strings(&kept, "prompt_style"),
        [s("completion"), s("completion")]
    );
    assert!(strings(&kept, "generator")
        .iter()
        .all(|g| g.as_deref() == Some(&format!("openai:test-model@{}", server.url())[..])));
    let seeds_in_prompt = kept
        .column("in_context_seed_ids")
        .unwrap()
        .list()
        .unwrap()
        .get_as_series(0)
        .unwrap();
    assert_eq!(seeds_in_prompt.len(), 8);
    let similar = kept
        .column("most_similar_scores")
        .unwrap()
        .list()
        .unwrap()
        .get_as_series(0)
        .unwrap();
    assert_eq!(
        similar.len(),
        8,
        "the pool held the 8 seeds when the first candidate was checked"
    );
    let ints = |df: &DataFrame, c: &str| {
        df.column(c)
            .unwrap()
            .u64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<u64>>()
    };
    assert_eq!(ints(&kept, "prompt_tokens"), [100, 100]);
    assert_eq!(ints(&kept, "instances_completion_tokens"), [10, 10]);

    let instances = read_parquet(&run.join("instances.parquet"));
    assert_eq!(
        strings(&instances, "instruction_id"),
        [
            s("r1-p0-s0-i0"),
            s("r1-p0-s0-i0"),
            s("r1-p2-s0-i0"),
            s("r1-p2-s0-i0")
        ]
    );
    assert_eq!(
        strings(&instances, "input"),
        [
            s(""),
            s("a double rainbow"),
            s("I loved every minute of it."),
            s("The plot was dull.")
        ]
    );
    assert_eq!(
        strings(&instances, "output"),
        [
            s("Sunlight is refracted by raindrops."),
            s("Light reflects twice inside each drop."),
            s("Positive"),
            s("Negative")
        ]
    );
    assert_eq!(
        strings(&instances, "method"),
        [
            s("input_first"),
            s("input_first"),
            s("output_first"),
            s("output_first")
        ]
    );

    let rejected = read_parquet(&run.join("rejected.parquet"));
    assert_eq!(
        strings(&rejected, "reason"),
        [
            "length_limit",
            "too_short",
            "blacklisted",
            "near_duplicate",
            "generation_failed",
            "duplicate_instance",
            "empty_output",
            "input_equals_output",
            "no_instances",
        ]
        .map(s)
    );
    assert_eq!(
        strings(&rejected, "stage"),
        [
            "instruction_generation",
            "rules",
            "rules",
            "rouge",
            "classification",
            "instances",
            "instances",
            "instances",
            "instances"
        ]
        .map(s)
    );
    assert_eq!(
        strings(&rejected, "unit"),
        [
            "response",
            "instruction",
            "instruction",
            "instruction",
            "instruction",
            "instance",
            "instance",
            "instance",
            "instruction"
        ]
        .map(s)
    );
    assert_eq!(
        strings(&rejected, "id"),
        [
            "r1-p1-s0",
            "r1-p0-s0-i2",
            "r1-p0-s0-i3",
            "r1-p0-s0-i4",
            "r1-p0-s0-i1",
            "r1-p0-s0-i0",
            "r1-p2-s0-i1",
            "r1-p2-s0-i1",
            "r1-p2-s0-i1"
        ]
        .map(s)
    );
    let text = strings(&rejected, "text");
    assert_eq!(
        text[0],
        s(" Plan a trip to the mountains.\n10. Write a long story about")
    );
    assert_eq!(text[3], s("explain how a rainbow forms after the rain!"));
    assert_eq!(strings(&rejected, "nearest_id")[3], s("r1-p0-s0-i0"));
    assert_eq!(
        strings(&rejected, "nearest")[3],
        s("Explain how a rainbow forms after the rain.")
    );
    assert_eq!(
        floats(&rejected, "nearest_score"),
        [None, None, None, Some(1.0), None, None, None, None, None]
    );
    let detail = strings(&rejected, "detail");
    assert!(!detail[4].as_deref().unwrap_or("").is_empty(), "{detail:?}");
    assert_eq!(detail[8], s("2 generated, none kept"));
    assert_eq!(strings(&rejected, "input")[7], s("1 2"));
    assert_eq!(
        strings(&rejected, "output")[5],
        s("Sunlight is refracted by raindrops.")
    );

    let rounds = read_parquet(&run.join("rounds.parquet"));
    assert_eq!(rounds.height(), 1);
    let one = |c: &str| ints(&rounds, c)[0];
    assert_eq!(
        [
            one("prompts"),
            one("requests"),
            one("failed_requests"),
            one("candidates"),
            one("kept"),
            one("kept_classification")
        ],
        [3, 3 + 4 + 3, 1, 7, 2, 1]
    );
    assert_eq!([one("instances_generated"), one("instances_kept")], [7, 4]);
    assert_eq!(
        [
            one("drop_length_limit"),
            one("drop_too_short"),
            one("drop_near_duplicate"),
            one("drop_no_instances")
        ],
        [1, 1, 1, 1]
    );
    assert_eq!(one("drop_generation_failed"), 1);
    assert_eq!(one("completion_tokens"), 9 * 10);
    assert_eq!(floats(&rounds, "acceptance_rate"), [Some(2.0 / 7.0)]);
    assert!(floats(&rounds, "tokens_per_s")[0].unwrap() > 0.0);

    // The server saw the retries: prompt 1 three times, the rainbow's instances twice.
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| step(r) == Step::Instructions)
            .count(),
        5
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| step(r) == Step::Instances)
            .count(),
        4
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], json!(SEED));
    assert_eq!(
        manifest["config"]["generator"]["openai"]["model"],
        json!("test-model")
    );
    assert!(
        manifest["templates"]["instruction_generation.txt"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    assert!(manifest["seed_tasks"]["sha256"].as_str().unwrap().len() == 64);

    // Rerunning the finished run does nothing.
    let before = server.requests().len();
    let again = run_in(dir.path(), &["round", "--config", config.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(texts(&again).0.contains("nothing to do"));
    assert_eq!(server.requests().len(), before);
}

/// A server that answers every request as a pure function of its body, after a short delay, so
/// two runs (or a run killed and resumed) get the same answers.
fn pure_server(delay_ms: u64) -> Server {
    const WORDS: [&str; 32] = [
        "apple", "river", "engine", "garden", "silver", "thunder", "castle", "pencil", "ocean",
        "violin", "desert", "marble", "planet", "forest", "candle", "bridge", "harbor", "lantern",
        "meadow", "rocket", "saddle", "tunnel", "window", "yogurt", "zebra", "anchor", "basket",
        "cactus", "dragon", "feather", "glacier", "hammer",
    ];
    let words = |seed: u64, n: usize| {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    };
    Server::start(move |req, _| {
        let seed = req.body["seed"].as_u64().unwrap_or(0);
        let reply = match step(req) {
            Step::Instructions => completion(
                &format!(
                    " Classify the {} as good or bad.\n10. Describe the {} in detail.\n11. Go.\n12. Explain why {} matters today.",
                    words(seed, 3),
                    words(seed ^ 1, 4),
                    words(seed ^ 2, 5)
                ),
                "stop",
            ),
            Step::Classification => completion(if task(req).starts_with("Classify") { " Yes" } else { " No" }, "length"),
            _ => completion(
                &format!("Example 1\nInput: {}\nOutput: {}\n\nExample 2\nOutput: {}", words(seed, 2), words(seed ^ 5, 3), words(seed ^ 7, 2)),
                "stop",
            ),
        };
        Reply::ok(reply).after(Duration::from_millis(delay_ms))
    })
}

/// The four tables with the columns that differ between equivalent runs (timings, journal reuse)
/// removed.
fn tables(run: &Path) -> Vec<DataFrame> {
    ["instructions", "instances", "rejected", "rounds"]
        .iter()
        .map(|name| {
            let df = read_parquet(&run.join(format!("{name}.parquet")));
            let keep: Vec<String> = df
                .get_column_names()
                .into_iter()
                .filter(|c| !pipeline::round::tables::RUN_DEPENDENT_COLUMNS.contains(&c.as_str()))
                .map(|c| c.to_string())
                .collect();
            df.select(keep).unwrap()
        })
        .collect()
}

fn spawn(dir: &Path, config: &Path, out: &str) -> Child {
    Command::new(selfinstruct_bin())
        .args(["round", "--config", config.to_str().unwrap(), "--out", out])
        .current_dir(dir)
        .env_remove("SELFINSTRUCT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `selfinstruct round --config CONFIG --out OUT EXTRA...` in `dir`.
fn round(dir: &Path, config: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["round", "--config", config.to_str().unwrap(), "--out", out];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

fn finish(dir: &Path, config: &Path, out: &str) {
    let done = round(dir, config, out, &[]);
    let (stdout, stderr) = texts(&done);
    assert!(done.status.success(), "{stdout}\n{stderr}");
}

#[test]
fn same_config_and_seed_give_identical_tables() {
    let server = pure_server(0);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &server.url(), 5, 2, 4);
    finish(dir.path(), &config, "a");
    finish(dir.path(), &config, "b");
    let (a, b) = (tables(&dir.path().join("a")), tables(&dir.path().join("b")));
    assert!(a[0].height() > 3, "{}", a[0]);
    assert_eq!(a, b);
    // Another seed gives another dataset.
    let other = round(dir.path(), &config, "c", &["--seed", "7"]);
    assert!(other.status.success());
    assert_ne!(tables(&dir.path().join("c"))[0], a[0]);
}

#[test]
fn sigkill_at_random_moments_then_rerun_equals_an_uninterrupted_run() {
    let server = pure_server(15);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &server.url(), 6, 3, 2);
    let start = Instant::now();
    finish(dir.path(), &config, "whole");
    let whole_ms = start.elapsed().as_millis() as u64;

    let mut rng = SplitMix64::new(2024);
    let mut kills = 0;
    for _ in 0..5 {
        let mut child = spawn(dir.path(), &config, "killed");
        // Each attempt gets at most a third of a whole run, so most kills land mid-run.
        let wait = 20 + rng.below((whole_ms / 3).max(50));
        std::thread::sleep(Duration::from_millis(wait));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "only {kills} kills landed");
    finish(dir.path(), &config, "killed");

    let (whole, killed) = (
        tables(&dir.path().join("whole")),
        tables(&dir.path().join("killed")),
    );
    assert_eq!(whole, killed);
    let ids = strings(&killed[0], "id");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate instruction ids");
    assert_eq!(killed[3].height(), 3);
}

#[test]
fn ctrl_c_stops_cleanly_and_a_rerun_resumes() {
    let server = pure_server(40);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &server.url(), 4, 3, 1);
    let child = spawn(dir.path(), &config, "run");
    // Wait until round 2 has started, then Ctrl-C.
    let journal = dir.path().join("run/rounds/round-0002/journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !journal.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: 1 of 3 rounds committed"),
        "{stderr}"
    );
    assert_eq!(
        read_parquet(&dir.path().join("run/rounds.parquet")).height(),
        1
    );
    finish(dir.path(), &config, "run");
    finish(dir.path(), &config, "whole");
    assert_eq!(
        tables(&dir.path().join("run")),
        tables(&dir.path().join("whole"))
    );
}

#[test]
fn init_writes_a_config_that_round_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["init"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let text = fs::read_to_string(dir.path().join("pipeline.toml")).unwrap();
    assert!(text.contains("temperature = 0.7"));
    let again = run_in(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(texts(&again).1.contains("pass --force"));
    assert!(
        run_in(dir.path(), &["init", "--force", "--out", "other.toml"])
            .status
            .success()
    );

    // The default generator is the local one: a model path that does not exist is a clear
    // error naming it, and no table is written.
    let repo = repo_root();
    let local_config = format!(
        "[run]\nseed_tasks = {:?}\n[prompts]\ntemplates_dir = {:?}\n[generator.local]\nmodel = \"no-such-model.gguf\"\n",
        repo.join("seeds/seed_tasks.jsonl"),
        repo.join("seeds/templates")
    );
    fs::write(dir.path().join("local.toml"), local_config).unwrap();
    let local = run_in(dir.path(), &["round", "--config", "local.toml"]);
    assert_eq!(local.status.code(), Some(2));
    assert!(
        texts(&local).1.contains("no-such-model.gguf"),
        "{}",
        texts(&local).1
    );
    assert!(!dir
        .path()
        .join("outputs/default/instructions.parquet")
        .exists());

    fs::write(
        dir.path().join("bad.toml"),
        "[run]\nrounds = 2\nprompt_per_round = 3\n",
    )
    .unwrap();
    let bad = run_in(dir.path(), &["round", "--config", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        texts(&bad).1.contains("prompt_per_round"),
        "{}",
        texts(&bad).1
    );
}

#[test]
fn a_run_with_other_settings_in_the_folder_is_refused() {
    let server = pure_server(0);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &server.url(), 2, 1, 8);
    finish(dir.path(), &config, "run");
    let other = round(dir.path(), &config, "run", &["--seed", "1"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        texts(&other).1.contains("different settings (config.seed)"),
        "{}",
        texts(&other).1
    );
    let forced = round(dir.path(), &config, "run", &["--seed", "1", "--force"]);
    assert!(forced.status.success());
}
