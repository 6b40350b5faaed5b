//! `selfinstruct export` on the committed run folder `tests/fixtures/inspect/run`: every format is
//! parsed back and compared with the run's kept instances (read here straight from its Parquet
//! tables and seed file), with and without the seed tasks; and bad input is a clear error that
//! leaves nothing behind.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use selfinstruct_tests::{read_parquet, repo_root, run_in, strings, texts};
use serde_json::Value;

fn run_dir() -> PathBuf {
    repo_root().join("tests/fixtures/inspect/run")
}

/// (instruction, input, output) of every kept instance in instruction order, seeds first when asked.
fn expected(include_seeds: bool) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if include_seeds {
        for line in fs::read_to_string(run_dir().join("seeds.jsonl"))
            .unwrap()
            .lines()
        {
            let task: Value = serde_json::from_str(line).unwrap();
            for inst in task["instances"].as_array().unwrap() {
                out.push((
                    task["instruction"].as_str().unwrap().to_string(),
                    inst["input"].as_str().unwrap().to_string(),
                    inst["output"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    let ins = read_parquet(&run_dir().join("instructions.parquet"));
    let inst = read_parquet(&run_dir().join("instances.parquet"));
    let mut by_id: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for ((id, input), output) in strings(&inst, "instruction_id")
        .into_iter()
        .zip(strings(&inst, "input"))
        .zip(strings(&inst, "output"))
    {
        by_id
            .entry(id.unwrap())
            .or_default()
            .push((input.unwrap(), output.unwrap()));
    }
    for (id, text) in strings(&ins, "id")
        .into_iter()
        .zip(strings(&ins, "instruction"))
    {
        for (input, output) in by_id.remove(&id.unwrap()).unwrap_or_default() {
            out.push((text.clone().unwrap(), input, output));
        }
    }
    out
}

/// The user turn as documented: the instruction, then a blank line and the input if any.
fn user(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        instruction.to_string()
    } else {
        format!("{instruction}\n\n{input}")
    }
}

fn export(dir: &Path, format: &str, out: &Path, seeds: bool) -> (i32, String) {
    let run = run_dir();
    let mut args = vec![
        "export",
        run.to_str().unwrap(),
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ];
    if seeds {
        args.push("--include-seeds");
    }
    let output = run_in(dir, &args);
    let (_, stderr) = texts(&output);
    (output.status.code().unwrap_or(-1), stderr)
}

fn jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn every_format_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for seeds in [false, true] {
        let want = expected(seeds);
        assert_eq!(want.len(), if seeds { 26 } else { 18 });
        let want_chat: Vec<(String, String)> = want
            .iter()
            .map(|(i, x, o)| (user(i, x), o.clone()))
            .collect();
        let out = |name: &str| dir.path().join(format!("{name}-{seeds}"));

        let (code, err) = export(dir.path(), "alpaca", &out("alpaca"), seeds);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!("wrote {} records", want.len())),
            "{err}"
        );
        let alpaca: Vec<Value> =
            serde_json::from_str(&fs::read_to_string(out("alpaca")).unwrap()).unwrap();
        let got: Vec<(String, String, String)> = alpaca
            .iter()
            .map(|r| {
                assert_eq!(r.as_object().unwrap().len(), 3);
                (
                    s(&r["instruction"]).into(),
                    s(&r["input"]).into(),
                    s(&r["output"]).into(),
                )
            })
            .collect();
        assert_eq!(got, want);

        let (code, err) = export(dir.path(), "sharegpt", &out("sharegpt"), seeds);
        assert_eq!(code, 0, "{err}");
        let got: Vec<(String, String)> = jsonl(&out("sharegpt"))
            .iter()
            .map(|r| {
                let c = &r["conversations"];
                assert_eq!((s(&c[0]["from"]), s(&c[1]["from"])), ("human", "gpt"));
                (s(&c[0]["value"]).into(), s(&c[1]["value"]).into())
            })
            .collect();
        assert_eq!(got, want_chat);

        let (code, err) = export(dir.path(), "messages", &out("messages"), seeds);
        assert_eq!(code, 0, "{err}");
        let got: Vec<(String, String)> = jsonl(&out("messages"))
            .iter()
            .map(|r| {
                let m = &r["messages"];
                assert_eq!(m.as_array().unwrap().len(), 2);
                assert_eq!((s(&m[0]["role"]), s(&m[1]["role"])), ("user", "assistant"));
                (s(&m[0]["content"]).into(), s(&m[1]["content"]).into())
            })
            .collect();
        assert_eq!(got, want_chat);

        let (code, err) = export(dir.path(), "prompt-completion", &out("pc"), seeds);
        assert_eq!(code, 0, "{err}");
        let got: Vec<(String, String)> = jsonl(&out("pc"))
            .iter()
            .map(|r| (s(&r["prompt"]).into(), s(&r["completion"]).into()))
            .collect();
        assert_eq!(got, want_chat);

        let folder = out("parquet");
        let (code, err) = export(dir.path(), "parquet", &folder, seeds);
        assert_eq!(code, 0, "{err}");
        let df = read_parquet(&folder.join("data/train-00000-of-00001.parquet"));
        let got: Vec<(String, String, String)> = strings(&df, "instruction")
            .into_iter()
            .zip(strings(&df, "input"))
            .zip(strings(&df, "output"))
            .map(|((i, x), o)| (i.unwrap(), x.unwrap(), o.unwrap()))
            .collect();
        assert_eq!(got, want);
        let origins = strings(&df, "origin");
        assert_eq!(
            origins[0].as_deref(),
            Some(if seeds {
                "seed:seed_a#0"
            } else {
                "r1-p0-s0-i0#0"
            })
        );
        let card = fs::read_to_string(folder.join("README.md")).unwrap();
        assert!(
            card.starts_with("---\nconfigs:\n- config_name: default\n"),
            "{card}"
        );
        assert!(card.contains("    path: data/train-*.parquet\n"), "{card}");
        assert!(
            card.contains(&format!("| records | {} |", want.len())),
            "{card}"
        );
        assert!(
            card.contains("| generated records | 18 (instances of 10 instructions) |"),
            "{card}"
        );
        assert!(card.contains("openai:fixture-model@"), "{card}");
        assert!(
            card.contains("\"prompts_per_round\": 3"),
            "the run's config: {card}"
        );
    }
}

#[test]
fn existing_output_and_bad_input_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.json");
    fs::write(&out, "keep me").unwrap();
    let (code, err) = export(dir.path(), "alpaca", &out, false);
    assert_eq!(code, 2);
    assert!(
        err.contains("a.json: already exists (pass --force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "keep me");

    let folder = dir.path().join("ds");
    let (code, _) = export(dir.path(), "parquet", &folder, false);
    assert_eq!(code, 0);
    let output = run_in(
        dir.path(),
        &[
            "export",
            run_dir().to_str().unwrap(),
            "--format",
            "parquet",
            "--out",
            folder.to_str().unwrap(),
            "--force",
            "--include-seeds",
        ],
    );
    assert!(output.status.success(), "{}", texts(&output).1);
    assert!(fs::read_to_string(folder.join("README.md"))
        .unwrap()
        .contains("| records | 26 |"));
    // Only the finished folder is left: no temporary folder beside it.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    let output = run_in(
        dir.path(),
        &["export", "nowhere", "--format", "alpaca", "--out", "x.json"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(texts(&output).1.contains("nowhere: not a run folder"));
    let output = run_in(
        dir.path(),
        &[
            "export",
            run_dir().to_str().unwrap(),
            "--format",
            "csv",
            "--out",
            "x",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(texts(&output).1.contains("invalid value 'csv'"));
    assert!(!dir.path().join("x.json").exists() && !dir.path().join("x").exists());
}
