//! Verb-noun diversity: the root verb of each instruction and its first direct-object noun, the
//! top verbs with their top nouns (the paper's Figure 2 sunburst).
//!
//! The paper parses instructions with the Berkeley Neural Parser. No maintained Rust tagger or
//! parser works offline (the Rust NLP crates either wrap Python/PyTorch models that are
//! downloaded at run time or are no longer maintained), so this module uses a small,
//! deterministic rule set that fits how instructions are written (imperative, verb first):
//!
//! 1. Words are lower-cased and stripped of surrounding punctuation; leading courtesy words
//!    (`please`, `now`, `then`, `also`) are skipped.
//! 2. The first word is the root verb unless it is a function word (article, pronoun,
//!    wh-word, auxiliary, preposition, conjunction, number) or ends in `-ing`: questions
//!    ("What is ..."), statements ("I want ...") and fronted clauses ("Given ...", "Using ...")
//!    have no verb-noun structure here, as in the paper, where only instructions whose parse has
//!    a verb root with a direct object count.
//! 3. The direct object is the noun phrase right after the verb: indirect-object pronouns
//!    (`me`, `us`, ...), determiners and numbers are skipped, then words are read until a
//!    function word or a clause-ending punctuation mark, and the last word read is the head noun
//!    ("Write a short *story* about ..."). A verb followed directly by a function word
//!    ("Explain how ...", "Tell whether ...") has no object.
//! 4. Nouns are reduced to a singular by suffix (`-ies` -> `-y`, `-ches`/`-shes`/`-xes`/`-sses`
//!    lose `-es`, other `-s` but `-ss`/`-us`/`-is` lose `-s`), so "sentence" and "sentences" count
//!    together.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Serialize;

// Word lists, space-separated.
/// Articles, demonstratives and possessives.
const DETERMINERS: &str = "a an the this that these those some any each every all both either \
    neither no my your his her its our their";
/// Indirect objects between a verb and its direct object ("Give *me* a recipe").
const OBJECT_PRONOUNS: &str = "me us him them";
/// Quantities and ordering words before a noun ("three examples", "the following sentences").
const QUANTITIES: &str = "one two three four five six seven eight nine ten few several many \
    more most another other following given";
/// Other words that are never a root verb or part of a noun phrase.
const OTHER_FUNCTION_WORDS: &str = "i you he she it we they myself yourself what which who whom \
    whose when where why how whether if is are was were be been am do does did can could would \
    should will shall may might must have has had not there here in on at by for from to of with \
    without about into onto over under between among through after before as than like and or \
    but nor so yet based according let such same own yes";

/// The word lists as sets, built once: (skipped before the object, every function word).
fn word_sets() -> &'static (HashSet<&'static str>, HashSet<&'static str>) {
    static SETS: OnceLock<(HashSet<&'static str>, HashSet<&'static str>)> = OnceLock::new();
    SETS.get_or_init(|| {
        let skipped: HashSet<&str> = [DETERMINERS, OBJECT_PRONOUNS, QUANTITIES]
            .iter()
            .flat_map(|list| list.split_whitespace())
            .collect();
        let mut function = skipped.clone();
        function.extend(OTHER_FUNCTION_WORDS.split_whitespace());
        (skipped, function)
    })
}

/// Skipped between the verb and its object.
fn skipped_before_object(word: &str) -> bool {
    word_sets().0.contains(word)
}

const LEADING_SKIPS: &[&str] = &["please", "now", "then", "also", "kindly"];

/// Most words read as one noun phrase.
const MAX_PHRASE: usize = 4;

/// The root verb and direct-object noun of an instruction, if it has that structure.
pub fn verb_noun(instruction: &str) -> Option<(String, String)> {
    let mut words = instruction.split_whitespace().map(|raw| {
        let ends_clause = raw.ends_with([',', '.', ':', ';', '?', '!', ')']);
        let word = raw
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        (word, ends_clause)
    });
    let (verb, verb_ends) = loop {
        let (word, ends) = words.next()?;
        if !LEADING_SKIPS.contains(&word.as_str()) {
            break (word, ends);
        }
    };
    if verb_ends || !is_content(&verb) || is_participle(&verb) {
        return None;
    }
    let mut head: Option<String> = None;
    let mut read = 0;
    for (word, ends) in words {
        if head.is_none() && (skipped_before_object(&word) || is_number(&word)) {
            if ends {
                return None;
            }
            continue;
        }
        if !is_content(&word) {
            break;
        }
        head = Some(word);
        read += 1;
        if ends || read == MAX_PHRASE {
            break;
        }
    }
    head.map(|noun| (verb, singular(&noun)))
}

/// `-ing` words open a fronted clause ("Using ...", "Assuming ..."), except the few verbs that
/// end that way.
fn is_participle(word: &str) -> bool {
    const ING_VERBS: &[&str] = &["bring", "sing", "string", "ring", "swing", "sting", "wring"];
    word.ends_with("ing") && !ING_VERBS.contains(&word)
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_digit())
}

fn is_content(word: &str) -> bool {
    word.chars().any(char::is_alphabetic) && !word_sets().1.contains(word)
}

fn singular(noun: &str) -> String {
    if let Some(stem) = noun.strip_suffix("ies") {
        if stem.len() >= 2 {
            return format!("{stem}y");
        }
    }
    for suffix in ["ches", "shes", "xes", "sses"] {
        if noun.ends_with(suffix) {
            return noun[..noun.len() - 2].to_string();
        }
    }
    if noun.len() > 3
        && noun.ends_with('s')
        && !(noun.ends_with("ss") || noun.ends_with("us") || noun.ends_with("is"))
    {
        return noun[..noun.len() - 1].to_string();
    }
    noun.to_string()
}

/// A verb with its most frequent objects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerbEntry {
    pub verb: String,
    /// Instructions with this root verb and some object.
    pub count: u64,
    /// Top nouns with their counts, most frequent first.
    pub nouns: Vec<(String, u64)>,
}

/// The verb-noun summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerbNoun {
    pub instructions: u64,
    /// Instructions with a root verb and a direct-object noun.
    pub with_structure: u64,
    pub unique_verbs: u64,
    pub unique_pairs: u64,
    pub top: Vec<VerbEntry>,
}

/// Top `verbs` verbs with their top `nouns` nouns (ties broken alphabetically).
pub fn verb_noun_summary<'a>(
    instructions: impl Iterator<Item = &'a str>,
    verbs: usize,
    nouns: usize,
) -> VerbNoun {
    let mut total = 0u64;
    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    for text in instructions {
        total += 1;
        if let Some(pair) = verb_noun(text) {
            *pairs.entry(pair).or_default() += 1;
        }
    }
    // Per verb: instructions with an object, and each noun's count.
    type Objects<'a> = (u64, Vec<(&'a str, u64)>);
    let mut by_verb: HashMap<&str, Objects<'_>> = HashMap::new();
    for ((verb, noun), &n) in &pairs {
        let entry = by_verb.entry(verb).or_default();
        entry.0 += n;
        entry.1.push((noun, n));
    }
    let mut ranked: Vec<(&str, Objects<'_>)> = by_verb.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let unique_verbs = ranked.len() as u64;
    let top = ranked
        .into_iter()
        .take(verbs)
        .map(|(verb, (count, mut list))| {
            list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            VerbEntry {
                verb: verb.to_string(),
                count,
                nouns: list
                    .into_iter()
                    .take(nouns)
                    .map(|(n, c)| (n.to_string(), c))
                    .collect(),
            }
        })
        .collect();
    VerbNoun {
        instructions: total,
        with_structure: pairs.values().sum(),
        unique_verbs,
        unique_pairs: pairs.len() as u64,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_verbs_and_objects() {
        let cases: [(&str, Option<(&str, &str)>); 14] = [
            ("Write a short story about a cat.", Some(("write", "story"))),
            ("Generate a list of 5 words.", Some(("generate", "list"))),
            (
                "Give me three examples of birds.",
                Some(("give", "example")),
            ),
            (
                "Classify the following sentences.",
                Some(("classify", "sentence")),
            ),
            ("Please sort the numbers in order", Some(("sort", "number"))),
            ("Name the capital city of France.", Some(("name", "city"))),
            (
                "Find 3 synonyms, then sort them.",
                Some(("find", "synonym")),
            ),
            ("Bring me the menu.", Some(("bring", "menu"))),
            // No verb-object structure.
            ("Explain how a rainbow forms.", None),
            ("What is the capital of France?", None),
            ("Given a list, sort it.", None),
            ("Summarize.", None),
            ("Using the data, plot a chart.", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let expected = expected.map(|(v, n)| (v.to_string(), n.to_string()));
            assert_eq!(verb_noun(text), expected, "{text:?}");
        }
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("stories"), "story");
        assert_eq!(singular("boxes"), "box");
        assert_eq!(singular("class"), "class");
        assert_eq!(singular("analysis"), "analysis");
        assert_eq!(singular("words"), "word");
        assert_eq!(singular("bus"), "bus");
    }

    #[test]
    fn summary_ranks_by_count_then_name() {
        let s = verb_noun_summary(
            [
                "Write a poem.",
                "Write a story.",
                "Write a poem about rain.",
                "Sort the numbers.",
                "What is love?",
            ]
            .into_iter(),
            20,
            4,
        );
        assert_eq!(s.instructions, 5);
        assert_eq!(s.with_structure, 4);
        assert_eq!(s.unique_verbs, 2);
        assert_eq!(s.top[0].verb, "write");
        assert_eq!(
            s.top[0].nouns,
            [("poem".to_string(), 2), ("story".to_string(), 1)]
        );
        assert_eq!(s.top[1].verb, "sort");
    }
}
