//! The timing check of `selfinstruct inspect`: synthesises a run folder of 50,000 kept
//! instructions (100 rounds; 80,000 instances; 40,000 candidate and 20,000 instance rejections)
//! with the round's own table writers, then times `inspect` on it (text output, then with plots
//! and the HTML report). Every record lists only generated instructions as its top-10 neighbours,
//! the worst case for the nearest-seed distribution: all 50,000 are scored against the seed file.
//! It prints the timings; it asserts no timing.
//!
//! `cargo build -p pipeline && cargo test -p selfinstruct-tests --test inspect_bench -- --ignored --nocapture`
//! (folder: `$INSPECT_BENCH_DIR`, default `/tmp/selfinstruct-inspect-50k`; reused when present).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pipeline::dedup::Neighbours;
use pipeline::parquet::write_parquet;
use pipeline::prompts::{InstanceMethod, SplitMix64};
use pipeline::round::rows::{
    InstanceRow, KeptInstruction, RejectReason, Rejected, RoundStage, RoundStats, Unit,
};
use pipeline::round::tables::{instances_frame, instructions_frame, rejected_frame, rounds_frame};
use selfinstruct_tests::{repo_root, run_in, texts};
use serde_json::json;

const ROUNDS: u32 = 100;
const KEPT_PER_ROUND: u32 = 500;

const VERBS: &str =
    "Write Generate Create Describe Explain List Give Find Classify Suggest Summarize \
    Translate Identify Rewrite Compare Design Name Sort Convert Compose Outline Plan \
    Draft Evaluate";
const ADJECTIVES: &str =
    "short simple detailed funny formal creative brief polite clear new healthy modern \
    classic friendly strong quick";
const NOUNS: &str =
    "story poem list email recipe summary sentence paragraph question answer plan essay \
    letter title slogan review report argument dialogue joke riddle headline description \
    tweet schedule budget menu speech outline definition example tip";
const TOPICS: &str =
    "climate change|a rainy day|the ocean|space travel|healthy eating|remote work|\
    a job interview|the history of tea|public transport|a birthday party|learning to code|\
    city gardens|a mountain hike|saving money|a new phone|the first day of school|\
    a local library|winter sports|online privacy|a small bakery|electric cars|\
    a family dinner|time management|a museum visit|renewable energy|a lost cat|\
    volunteering|a music festival|sleep habits|a science fair|team meetings|recycling";

/// A word of a list separated by spaces (topics: by `|`).
fn pick(rng: &mut SplitMix64, list: &'static str) -> &'static str {
    let separator = if list.contains('|') { '|' } else { ' ' };
    let words: Vec<&str> = list.split(separator).collect();
    words[rng.below(words.len() as u64) as usize]
}

fn instruction(rng: &mut SplitMix64) -> String {
    format!(
        "{} a {} {} about {} for {} {}.",
        pick(rng, VERBS),
        pick(rng, ADJECTIVES),
        pick(rng, NOUNS),
        pick(rng, TOPICS),
        pick(rng, ADJECTIVES),
        pick(rng, TOPICS),
    )
}

fn neighbours(rng: &mut SplitMix64, earlier: &[String]) -> Neighbours {
    let n = earlier.len().min(10);
    let mut scores: Vec<f64> = (0..n)
        .map(|_| 0.2 + rng.below(500) as f64 / 1000.0)
        .collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    let picks: Vec<usize> = (0..n)
        .map(|_| rng.below(earlier.len() as u64) as usize)
        .collect();
    Neighbours {
        ids: picks.iter().map(|&i| format!("m{i}")).collect(),
        instructions: picks.iter().map(|&i| earlier[i].clone()).collect(),
        mean: scores.iter().sum::<f64>() / n.max(1) as f64,
        scores,
    }
}

/// Writes the synthetic run folder.
fn synthesise(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = SplitMix64::new(50_000);
    let (mut kept, mut instances, mut rejected, mut rounds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut texts: Vec<String> = Vec::new();
    for round in 1..=ROUNDS {
        let mut stats = RoundStats {
            round,
            prompts: 50,
            candidates: u64::from(KEPT_PER_ROUND) + 400,
            kept: u64::from(KEPT_PER_ROUND),
            instances_kept: u64::from(KEPT_PER_ROUND) * 8 / 5,
            wall_s: 600.0,
            generate_s: 550.0,
            generated_tokens: 400_000,
            drops: BTreeMap::new(),
            ..RoundStats::default()
        };
        for i in 0..KEPT_PER_ROUND {
            let id = format!("r{round}-p{}-s0-i{}", i / 10, i % 10);
            let text = instruction(&mut rng);
            let is_classification = rng.below(5) == 0;
            for k in 0..(1 + (i % 5 < 3) as u32) {
                instances.push(InstanceRow {
                    instruction_id: id.clone(),
                    round,
                    index: k,
                    input: if rng.below(2) == 0 {
                        String::new()
                    } else {
                        format!("An input about {}.", pick(&mut rng, TOPICS))
                    },
                    output: format!("An answer of a few words about {}.", pick(&mut rng, TOPICS)),
                    method: if is_classification {
                        InstanceMethod::OutputFirst
                    } else {
                        InstanceMethod::InputFirst
                    },
                });
            }
            kept.push(KeptInstruction {
                id,
                round,
                instruction: text.clone(),
                is_classification,
                classification_answer: if is_classification { "Yes" } else { "No" }.into(),
                prompt_style: "completion".into(),
                prompt_id: format!("r{round}-p{}", i / 10),
                in_context_seed_ids: vec!["seed_task_1".into()],
                in_context_machine_ids: vec![],
                neighbours: neighbours(&mut rng, &texts),
                generator: "synthetic".into(),
                prompt_tokens: 600,
                completion_tokens: 300,
                instances_prompt_tokens: 500,
                instances_completion_tokens: 120,
                instruction_seconds: 1.0,
                instances_seconds: 1.0,
            });
            texts.push(text);
        }
        let reasons = [
            (
                RoundStage::Rouge,
                RejectReason::Filter(filters::DropReason::NearDuplicate),
                300,
            ),
            (
                RoundStage::Rules,
                RejectReason::Filter(filters::DropReason::TooShort),
                60,
            ),
            (
                RoundStage::Rules,
                RejectReason::Filter(filters::DropReason::Blacklisted),
                30,
            ),
            (RoundStage::Instances, RejectReason::NoInstances, 10),
        ];
        for (stage, reason, n) in reasons {
            for j in 0..n {
                let mut row = Rejected::new(
                    round,
                    stage,
                    reason,
                    Unit::Instruction,
                    format!("r{round}-x{j}"),
                    instruction(&mut rng),
                );
                if stage == RoundStage::Rouge {
                    row.nearest = Some(texts[texts.len() - 1 - j].clone());
                    row.nearest_score = Some(0.75);
                }
                rejected.push(row);
            }
            stats.drops.insert(reason.as_str().to_string(), n as u64);
        }
        for j in 0..200 {
            let mut row = Rejected::new(
                round,
                RoundStage::Instances,
                RejectReason::Filter(filters::DropReason::EmptyOutput),
                Unit::Instance,
                format!("r{round}-p0-s0-i{}", j % 10),
                texts[texts.len() - 1 - j % 10].clone(),
            );
            row.input = Some("x".into());
            row.output = Some(String::new());
            rejected.push(row);
        }
        rounds.push(stats);
    }
    write_parquet(
        &mut instructions_frame(&kept).unwrap(),
        &dir.join("instructions.parquet"),
    )
    .unwrap();
    write_parquet(
        &mut instances_frame(&instances).unwrap(),
        &dir.join("instances.parquet"),
    )
    .unwrap();
    write_parquet(
        &mut rejected_frame(&rejected).unwrap(),
        &dir.join("rejected.parquet"),
    )
    .unwrap();
    write_parquet(
        &mut rounds_frame(&rounds).unwrap(),
        &dir.join("rounds.parquet"),
    )
    .unwrap();
    let seeds = repo_root()
        .join("seeds/seed_tasks.jsonl")
        .canonicalize()
        .unwrap();
    let manifest = json!({"tool": "selfinstruct", "generator": {"describe": "synthetic"},
                          "seed_tasks": {"path": seeds}});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn timed(dir: &Path, args: &[&str]) -> f64 {
    let start = Instant::now();
    let out = run_in(dir, args);
    let seconds = start.elapsed().as_secs_f64();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    seconds
}

#[test]
#[ignore = "benchmark: writes a 50,000-instruction run folder and times inspect on it"]
fn inspect_50k_instructions() {
    let dir = std::env::var_os("INSPECT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/selfinstruct-inspect-50k"));
    if !dir.join("manifest.json").exists() {
        synthesise(&dir);
    }
    let run = dir.to_str().unwrap();
    let plots = dir.join("plots");
    let html = dir.join("report.html");
    for _ in 0..3 {
        let text = timed(&dir, &["inspect", run]);
        let json = timed(&dir, &["inspect", run, "--json"]);
        let all = timed(
            &dir,
            &[
                "inspect",
                run,
                "--plots",
                plots.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
            ],
        );
        println!("inspect 50k: text {text:.3} s, --json {json:.3} s, --plots --html {all:.3} s");
    }
}
