//! `selfinstruct dedup`, `rouge` and `seeds` driven as a user would: real files in a temp folder,
//! real Parquet read back with polars.

use std::fs;

use selfinstruct_tests::{floats, read_parquet as read, repo_root, run_in, strings, texts};

const INPUT: &str = r#"{"id": "a", "instruction": "Explain how vaccines train the immune system."}
{"id": "b", "instruction": "Explain how vaccines train the immune system!", "input": "", "output": "x"}
{"id": "c", "instruction": "Name a fruit."}
{"id": "d", "instruction": "Draw a cat in the corner of the page."}
{"id": "e", "instruction": "Summarise the story of a famous novel in three sentences."}
{"id": "f", "instruction": "List four ways to save water at home during a drought."}
"#;

const SEEDS: &str = r#"{"id": "seed_1", "name": "story", "instruction": "Summarise the story of a famous novel in two sentences.", "instances": [{"input": "", "output": "..."}], "is_classification": false}
"#;

#[test]
fn dedup_writes_kept_and_rejected_tables() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    fs::write(dir.path().join("seeds.jsonl"), SEEDS).unwrap();
    let out = run_in(
        dir.path(),
        &[
            "dedup",
            "--input",
            "in.jsonl",
            "--output",
            "out",
            "--against",
            "seeds.jsonl",
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("near_duplicate"), "{stdout}");

    let kept = read(&dir.path().join("out/kept.parquet"));
    assert_eq!(
        strings(&kept, "id"),
        [Some("a".to_string()), Some("f".to_string())]
    );
    let rejected = read(&dir.path().join("out/rejected.parquet"));
    assert_eq!(
        strings(&rejected, "id"),
        ["b", "c", "d", "e"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        strings(&rejected, "reason"),
        [
            "near_duplicate",
            "too_short",
            "blacklisted",
            "near_duplicate"
        ]
        .map(|s| Some(s.to_string()))
    );
    assert_eq!(
        strings(&rejected, "stage"),
        ["rouge", "rules", "rules", "rouge"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        strings(&rejected, "nearest_id"),
        [
            Some("a".to_string()),
            None,
            None,
            Some("seed_1".to_string())
        ]
    );
    let max = floats(&rejected, "max_rouge");
    assert_eq!(max[0], Some(1.0));
    assert_eq!(max[1], None);
    // "Summarise the story of a famous novel in three/two sentences.": 9 of 10 tokens in order.
    assert_eq!(max[3], Some(2.0 * 0.9 * 0.9 / (0.9 + 0.9)));
    assert_eq!(strings(&rejected, "output")[0].as_deref(), Some("x"));
}

#[test]
fn existing_outputs_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    fs::create_dir(dir.path().join("out")).unwrap();
    fs::write(dir.path().join("out/kept.parquet"), "mine").unwrap();
    let out = run_in(
        dir.path(),
        &["dedup", "--input", "in.jsonl", "--output", "out"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("pass --force"));
    assert_eq!(
        fs::read_to_string(dir.path().join("out/kept.parquet")).unwrap(),
        "mine"
    );
    let out = run_in(
        dir.path(),
        &["dedup", "--input", "in.jsonl", "--output", "out", "--force"],
    );
    assert!(out.status.success());
    assert_eq!(read(&dir.path().join("out/kept.parquet")).height(), 3);
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "malformed.jsonl",
            b"{\"instruction\": \"Fine words here.\"}\n{\"instruction\": \n",
            "malformed.jsonl:2: malformed JSON",
        ),
        (
            "types.jsonl",
            b"{\"instruction\": [\"x\"]}\n",
            "types.jsonl:1: instruction: expected a string, found an array",
        ),
        (
            "binary.jsonl",
            b"{\"instruction\": \"\xfe\xff\"}\n",
            "binary.jsonl:1: not valid UTF-8",
        ),
        (
            "empty.jsonl",
            b"\n\n",
            "empty.jsonl: no instructions in the file",
        ),
        (
            "alpaca.json",
            b"[\n{\"instruction\": \"A b c d\"},\n{\"output\": \"y\"}\n]",
            "alpaca.json:3: instruction: missing",
        ),
    ];
    for (name, content, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), content).unwrap();
        let out = run_in(dir.path(), &["dedup", "--input", name, "--output", "out"]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            !dir.path().join("out").exists(),
            "{name}: output folder created"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &["dedup", "--input", "missing.jsonl", "--output", "out"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("cannot read missing.jsonl"));
}

#[test]
fn rouge_pairs_prints_scores_in_rouge_score_argument_order() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("p.jsonl"), "{\"a\": \"the cat sat\", \"b\": \"the cat sat on the mat\"}\n{\"a\": \"\", \"b\": \"x\"}\n").unwrap();
    let out = run_in(dir.path(), &["rouge", "--pairs", "p.jsonl"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // score(target=a, prediction=b): precision = lcs/len(b) = 3/6, recall = lcs/len(a) = 3/3.
    assert_eq!(lines[0]["precision"], 0.5);
    assert_eq!(lines[0]["recall"], 1.0);
    assert_eq!(lines[0]["fmeasure"], 2.0 * 0.5 / 1.5);
    assert_eq!(lines[1]["fmeasure"], 0.0);

    fs::write(
        dir.path().join("bad.jsonl"),
        "{\"a\": \"x\", \"b\": \"y\"}\n{\"a\": \"x\"}\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["rouge", "--pairs", "bad.jsonl"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("bad.jsonl:2: b: missing"), "{stderr}");
    assert!(stdout.is_empty(), "printed before validating: {stdout}");
}

#[test]
fn project_seed_pools_pass_the_seed_check() {
    let root = repo_root();
    let out = run_in(&root, &["seeds", "seeds/seed_tasks.jsonl"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let out = run_in(
        &root,
        &[
            "seeds",
            "seeds/seed_tasks_zh.jsonl",
            "--tokenizer",
            "unicode",
        ],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
}

/// The CLI makes the reference greedy loop's decisions (Python rouge_score, brute force, every
/// candidate against every instruction kept before it) on the committed 1,500-instruction fixture
/// (tests/fixtures/rouge/make_fixtures.py), with the same maximum scores, to the bit.
#[test]
fn dedup_matches_reference_greedy_decisions() {
    let fixture =
        std::fs::read_to_string(repo_root().join("tests/fixtures/rouge/dedup.jsonl")).unwrap();
    let mut lines = fixture.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["threshold"], 0.7);
    let expected: Vec<(String, bool, f64)> =
        lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(expected.len() as u64, header["n"].as_u64().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let input: String = expected
        .iter()
        .enumerate()
        .map(|(i, (text, _, _))| {
            format!(
                "{}\n",
                serde_json::json!({"id": i.to_string(), "instruction": text})
            )
        })
        .collect();
    fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let out = run_in(
        dir.path(),
        &[
            "dedup",
            "--input",
            "in.jsonl",
            "--output",
            "out",
            "--no-rules",
        ],
    );
    assert!(out.status.success(), "{}", texts(&out).1);

    let mut got: Vec<Option<(bool, f64)>> = vec![None; expected.len()];
    for (name, keep) in [("kept.parquet", true), ("rejected.parquet", false)] {
        let df = read(&dir.path().join("out").join(name));
        let ids = strings(&df, "id");
        let max = floats(&df, "max_rouge");
        for (id, m) in ids.into_iter().zip(max) {
            let i: usize = id.unwrap().parse().unwrap();
            got[i] = Some((keep, m.unwrap()));
        }
    }
    for (i, (text, keep, max)) in expected.iter().enumerate() {
        assert_eq!(got[i], Some((*keep, *max)), "row {i}: {text:?}");
    }
}

/// The dedup demo (seeds/examples/README.md) on the shipped candidates: the counts seeds/examples/README.md
/// states (measured there with Python rouge_score and the reference rules).
#[test]
fn dedup_demo_on_shipped_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("dedup-demo");
    let root = repo_root();
    let out = run_in(
        &root,
        &[
            "dedup",
            "--input",
            "seeds/examples/candidates.jsonl",
            "--against",
            "seeds/seed_tasks.jsonl",
            "--output",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(read(&out_dir.join("kept.parquet")).height(), 98);
    let reasons = strings(&read(&out_dir.join("rejected.parquet")), "reason");
    let count = |r: &str| reasons.iter().filter(|x| x.as_deref() == Some(r)).count();
    let expected = [
        ("empty", 2),
        ("too_short", 5),
        ("too_long", 3),
        ("blacklisted", 10),
        ("write_a_program", 4),
        ("starts_with_punctuation", 4),
        ("starts_non_ascii", 3),
        ("near_duplicate", 21),
    ];
    for (reason, n) in expected {
        assert_eq!(count(reason), n, "{reason}");
    }
    assert_eq!(reasons.len(), 52);
}
