//! Pins the rule filters to Python's semantics with fixtures that CPython itself wrote
//! (`tests/fixtures/rules/make_fixture.py`): whitespace, word counting, `\b` word characters,
//! `re.IGNORECASE` on ASCII letters, and the reference verdict on generated instructions.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use filters::rules::{count_words, is_py_whitespace, normalize_instruction};
use filters::{InstructionRules, RuleConfig, Verdict};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/rules")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    normalized: String,
    words: usize,
    blacklisted: bool,
    verdict: String,
}

#[derive(serde::Deserialize)]
struct PythonChars {
    unidata_version: String,
    word: Vec<(u32, u32)>,
    space: Vec<u32>,
    unassigned: Vec<(u32, u32)>,
    ignorecase: BTreeMap<String, Vec<u32>>,
}

fn rules_with_blacklist(words: &[&str]) -> InstructionRules {
    let config = RuleConfig {
        blacklist: words.iter().map(|w| (*w).to_owned()).collect(),
        ..RuleConfig::default()
    };
    match InstructionRules::new(config) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn in_ranges(ranges: &[(u32, u32)], c: u32) -> bool {
    // Ranges are sorted and disjoint.
    let i = ranges.partition_point(|&(_, hi)| hi < c);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= c)
}

fn python_chars() -> PythonChars {
    match serde_json::from_str(&fixture("python_chars.json")) {
        Ok(p) => p,
        Err(e) => panic!("python_chars.json: {e}"),
    }
}

#[test]
fn generated_instructions_match_the_python_reference() {
    let rules = match InstructionRules::new(RuleConfig::default()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut n = 0;
    for (line, row) in fixture("cases.jsonl").lines().enumerate() {
        let case: Case = match serde_json::from_str(row) {
            Ok(c) => c,
            Err(e) => panic!("cases.jsonl:{}: {e}", line + 1),
        };
        let at = format!("cases.jsonl:{} {:?}", line + 1, case.text);
        assert_eq!(normalize_instruction(&case.text), case.normalized, "{at}");
        assert_eq!(count_words(&case.text), case.words, "{at}");
        assert_eq!(
            rules.is_blacklisted(&case.normalized),
            case.blacklisted,
            "{at}"
        );
        let verdict = match rules.check(&case.text) {
            Verdict::Keep => "keep",
            Verdict::Drop(reason) => reason.as_str(),
        };
        assert_eq!(verdict, case.verdict, "{at}");
        n += 1;
    }
    assert!(n > 500, "only {n} cases");
}

#[test]
fn whitespace_is_pythons_isspace_on_every_code_point() {
    let py = python_chars();
    let space: HashSet<u32> = py.space.iter().copied().collect();
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        assert_eq!(
            is_py_whitespace(c),
            space.contains(&(c as u32)),
            "U+{:04X}",
            c as u32
        );
    }
}

/// `\bdraw\b` against "<c>draw" and "draw<c>" for every code point: the blacklist sees a
/// boundary exactly where Python's `re` does. Code points unassigned in Python's Unicode version
/// are skipped, since the regex crate's tables are newer.
#[test]
fn word_boundaries_match_python_on_every_assigned_code_point() {
    let py = python_chars();
    let rules = rules_with_blacklist(&["draw"]);
    let mut mismatches = Vec::new();
    let mut checked = 0u32;
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let cp = c as u32;
        if in_ranges(&py.unassigned, cp) {
            continue;
        }
        let boundary = !in_ranges(&py.word, cp);
        let before = rules.is_blacklisted(&format!("{c}draw"));
        let after = rules.is_blacklisted(&format!("draw{c}"));
        if before != boundary || after != boundary {
            mismatches.push(format!("U+{cp:04X}"));
        }
        checked += 1;
    }
    assert!(
        checked > 250_000,
        "only {checked} assigned code points (Unicode {})",
        py.unidata_version
    );
    assert!(
        mismatches.is_empty(),
        "boundary differs from Python on {} code points: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
}

#[test]
fn ignore_case_matches_python_for_ascii_letters() {
    let py = python_chars();
    // Every code point Python ties to any ASCII letter; Rust must tie each to the same letters.
    let candidates: Vec<u32> = py.ignorecase.values().flatten().copied().collect();
    let all_letters: Vec<&str> = py.ignorecase.keys().map(String::as_str).collect();
    assert_eq!(all_letters.len(), 26);
    let any_letter = rules_with_blacklist(&all_letters);
    let candidate_set: HashSet<u32> = candidates.iter().copied().collect();
    // No code point outside Python's sets matches a letter on its own...
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let cp = c as u32;
        assert_eq!(
            any_letter.is_blacklisted(&c.to_string()),
            candidate_set.contains(&cp),
            "U+{cp:04X}"
        );
    }
    // ...and each of those matches exactly the letters Python says.
    for (letter, members) in &py.ignorecase {
        let rules = rules_with_blacklist(&[letter.as_str()]);
        for &cp in &candidates {
            let Some(c) = char::from_u32(cp) else {
                panic!("bad code point {cp}")
            };
            assert_eq!(
                rules.is_blacklisted(&c.to_string()),
                members.contains(&cp),
                "{letter} vs U+{cp:04X}"
            );
        }
    }
}
