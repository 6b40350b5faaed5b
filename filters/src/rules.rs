//! Rule filters on a candidate instruction: the cheap checks the reference runs before ROUGE-L.
//!
//! The reference is self-instruct's `post_process_gpt3_response` (Wang et al., 2022), with the
//! blacklist additions from Stanford Alpaca's `generate_instruction.py`. The rules run in the
//! reference's order and the first failing one names the [`DropReason`]:
//!
//! 1. [`DropReason::Empty`]: nothing left after normalisation.
//! 2. [`DropReason::TooShort`] / [`DropReason::TooLong`]: word count outside
//!    `min_words..=max_words` (reference: `len(inst.split()) <= 3 or > 150`).
//! 3. [`DropReason::Blacklisted`]: a blacklisted word occurs as a whole word, case-insensitively
//!    (reference: `re.search(r"\b{word}\b", inst, flags=re.I)` for each word).
//! 4. [`DropReason::WriteAProgram`]: starts with a forbidden prefix ("Write a program").
//! 5. [`DropReason::StartsWithPunctuation`]: first character in Python's `string.punctuation`.
//! 6. [`DropReason::StartsNonAscii`]: first character not ASCII.
//!
//! Python semantics are reproduced exactly where they are observable, and pinned by
//! `filters/tests/rules_python_crosscheck.rs` against a fixture that Python itself wrote
//! (`tests/fixtures/rules/make_fixture.py`):
//!
//! - Whitespace is Python's `str.isspace()`: Unicode `White_Space` plus the ASCII separators
//!   U+001C..U+001F, which Rust's [`char::is_whitespace`] does not count.
//! - A "word character" for `\b` is Python's `str` regex one: any letter (`\p{L}`), any number
//!   (`\p{N}`) or `_`. Rust's own `\b` differs (it counts combining marks and all connector
//!   punctuation as word characters), so the boundaries are spelled out as classes instead.
//! - `re.I` on ASCII letters also matches `İ`/`ı` for `i`, `K` (Kelvin sign) for `k` and `ſ`
//!   for `s`; Rust's simple case folding lacks the first two, so ASCII letters get explicit
//!   classes. Non-ASCII letters in a user-supplied blacklist word fall back to Rust's simple case
//!   folding, which agrees with Python on everything but such special cases.
//!
//! Deliberate deviations from the reference, each a decision rather than an accident:
//!
//! - **No `capitalize()`.** self-instruct calls `inst.capitalize()`, which also lowercases the
//!   rest of the instruction ("Explain NASA's role" becomes "Explain nasa's role"). We keep the
//!   text as generated. Because capitalize ran *before* the `startswith("Write a program")` test,
//!   that test effectively ignored ASCII case in self-instruct ("write a program", "WRITE A
//!   PROGRAM" were dropped); [`RuleConfig::prefix_ignore_ascii_case`] (default `true`) keeps that
//!   effect. Set it to `false` for Alpaca's behaviour, which never capitalised and so compared
//!   case-sensitively.
//! - **Alpaca's blacklist additions are on by default** (video, audio, music, flowchart, diagram):
//!   a text-only generator cannot produce or consume those media any more than images.
//! - **Blacklist words are literals.** The reference pasted each word into a regex unescaped; we
//!   escape them, so a configured `c++` means the text "c++".

use std::borrow::Cow;

use regex::Regex;

use crate::reason::{DropReason, FilterStats, Verdict};

/// The reference blacklist (self-instruct) followed by Alpaca's additions.
pub const DEFAULT_BLACKLIST: [&str; 18] = [
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    // Added by Stanford Alpaca.
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
];

/// The prefix self-instruct drops, because the model learned to bolt it onto ordinary tasks and
/// it leaves unclear whether the answer is the program or its output.
pub const DEFAULT_FORBIDDEN_PREFIX: &str = "Write a program";

/// Settings for [`InstructionRules`]. Every field has the reference value as its default, so an
/// empty config section reproduces the paper's filters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Fewest words an instruction may have and be kept (inclusive). Reference: 4, because it
    /// drops `len(inst.split()) <= 3`.
    pub min_words: usize,
    /// Most words an instruction may have and be kept (inclusive). Reference: 150.
    pub max_words: usize,
    /// Words or phrases that drop an instruction when they occur as whole words, ignoring case.
    /// Matched as literals against the whitespace-normalised instruction, so a phrase must be
    /// written with single spaces ("go to"). An empty list turns the rule off.
    pub blacklist: Vec<String>,
    /// Prefixes that drop an instruction. Reference: `["Write a program"]`. An empty list turns
    /// the rule off.
    pub forbidden_prefixes: Vec<String>,
    /// Compare the prefixes ignoring ASCII case. `true` reproduces what self-instruct dropped
    /// (it capitalised before comparing); `false` is Alpaca's case-sensitive `startswith`.
    pub prefix_ignore_ascii_case: bool,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            min_words: 4,
            max_words: 150,
            blacklist: DEFAULT_BLACKLIST.iter().map(|w| (*w).to_owned()).collect(),
            forbidden_prefixes: vec![DEFAULT_FORBIDDEN_PREFIX.to_owned()],
            prefix_ignore_ascii_case: true,
        }
    }
}

/// A [`RuleConfig`] that cannot be used, naming the offending field.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("`min_words` ({min_words}) is greater than `max_words` ({max_words}): every instruction would be dropped")]
    WordBounds { min_words: usize, max_words: usize },
    #[error("`blacklist[{index}]` is empty")]
    EmptyBlacklistWord { index: usize },
    #[error(
        "`blacklist[{index}]` ({word:?}) has leading, trailing or repeated whitespace; \
         instructions are whitespace-normalised, so it could never match"
    )]
    UnnormalizedBlacklistWord { index: usize, word: String },
    #[error("`forbidden_prefixes[{index}]` is empty, which would drop every instruction")]
    EmptyForbiddenPrefix { index: usize },
    #[error("`blacklist` could not be compiled into a regex: {0}")]
    Regex(#[from] regex::Error),
}

impl RuleConfig {
    /// Checks the settings without building anything.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.min_words > self.max_words {
            return Err(RuleError::WordBounds {
                min_words: self.min_words,
                max_words: self.max_words,
            });
        }
        for (index, word) in self.blacklist.iter().enumerate() {
            if word.is_empty() {
                return Err(RuleError::EmptyBlacklistWord { index });
            }
            if normalize_cow(word) != word.as_str() {
                return Err(RuleError::UnnormalizedBlacklistWord {
                    index,
                    word: word.clone(),
                });
            }
        }
        if let Some(index) = self.forbidden_prefixes.iter().position(String::is_empty) {
            return Err(RuleError::EmptyForbiddenPrefix { index });
        }
        Ok(())
    }
}

/// Python's `str.isspace()`: Unicode `White_Space` plus U+001C..U+001F (file, group, record and
/// unit separators), which Python counts and Rust does not. Used for trimming, collapsing and
/// word counting so that all three agree with the reference's `strip`, `re.sub(r"\s+")` and
/// `split()`.
pub fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `len(text.split())`: the number of runs of non-whitespace characters.
pub fn count_words(text: &str) -> usize {
    text.split(is_py_whitespace)
        .filter(|w| !w.is_empty())
        .count()
}

/// Collapses every whitespace run to one space and trims both ends: the reference's
/// `re.sub(r"\s+", " ", inst).strip()`. Deliberately no `capitalize()` (see the module docs).
/// The filters judge this form, so it is also the form to store.
pub fn normalize_instruction(text: &str) -> String {
    normalize_cow(text).into_owned()
}

/// [`normalize_instruction`] without allocating when the text is already normalised, which is
/// the common case for generated instructions.
fn normalize_cow(text: &str) -> Cow<'_, str> {
    let mut prev_space = true; // a space at the very start needs trimming
    let mut clean = true;
    for c in text.chars() {
        if is_py_whitespace(c) {
            if c != ' ' || prev_space {
                clean = false;
                break;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
    }
    // A trailing space (or an empty text, which is already normalised) ends with prev_space set.
    if clean && (!prev_space || text.is_empty()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split(is_py_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Cow::Owned(out)
}

/// A word character for Python's `\b` on `str` patterns: `str.isalnum()` or `_`, which is
/// exactly general categories L and N plus `_`.
const PY_WORD_CLASS: &str = r"[\p{L}\p{N}_]";
const PY_NON_WORD_CLASS: &str = r"[^\p{L}\p{N}_]";

/// The compiled rule set. Build once per run with [`InstructionRules::new`]; checking is
/// read-only, so one value can be shared across threads.
#[derive(Debug, Clone)]
pub struct InstructionRules {
    config: RuleConfig,
    /// One alternation over all blacklist words with Python-style boundaries; `None` when the
    /// blacklist is empty.
    blacklist: Option<Regex>,
}

impl InstructionRules {
    /// Validates the config and compiles the blacklist into a single regex.
    pub fn new(config: RuleConfig) -> Result<Self, RuleError> {
        config.validate()?;
        let blacklist = build_blacklist(&config.blacklist)?;
        Ok(InstructionRules { config, blacklist })
    }

    /// The settings these rules were built from.
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Judges one instruction. The text is normalised with [`normalize_instruction`] first, so
    /// `check(raw) == check(&normalize_instruction(raw))`.
    pub fn check(&self, instruction: &str) -> Verdict {
        let text = normalize_cow(instruction);
        let text = text.as_ref();
        let Some(first) = text.chars().next() else {
            return Verdict::Drop(DropReason::Empty);
        };
        let words = count_words(text);
        if words < self.config.min_words {
            return Verdict::Drop(DropReason::TooShort);
        }
        if words > self.config.max_words {
            return Verdict::Drop(DropReason::TooLong);
        }
        if self.is_blacklisted(text) {
            return Verdict::Drop(DropReason::Blacklisted);
        }
        if self.has_forbidden_prefix(text) {
            return Verdict::Drop(DropReason::WriteAProgram);
        }
        if first.is_ascii_punctuation() {
            // `is_ascii_punctuation` is exactly the 32 characters of Python's string.punctuation.
            return Verdict::Drop(DropReason::StartsWithPunctuation);
        }
        if !first.is_ascii() {
            return Verdict::Drop(DropReason::StartsNonAscii);
        }
        Verdict::Keep
    }

    /// Judges a batch in order and records every verdict in `stats`.
    pub fn check_batch<S: AsRef<str>>(
        &self,
        instructions: impl IntoIterator<Item = S>,
        stats: &mut FilterStats,
    ) -> Vec<Verdict> {
        instructions
            .into_iter()
            .map(|inst| {
                let verdict = self.check(inst.as_ref());
                stats.record(verdict);
                verdict
            })
            .collect()
    }

    /// Whether a blacklisted word occurs as a whole word, ignoring case. The text is matched as
    /// given; [`InstructionRules::check`] passes it normalised, which matters only for phrases
    /// such as "go to".
    pub fn is_blacklisted(&self, text: &str) -> bool {
        self.blacklist.as_ref().is_some_and(|re| re.is_match(text))
    }

    fn has_forbidden_prefix(&self, text: &str) -> bool {
        self.config.forbidden_prefixes.iter().any(|prefix| {
            if self.config.prefix_ignore_ascii_case {
                // Compare bytes: a prefix cut at a non-char boundary simply fails to match.
                text.as_bytes()
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
            } else {
                text.starts_with(prefix.as_str())
            }
        })
    }
}

/// Compiles `\b(word)\b` for every word into one regex with Python's boundary semantics.
///
/// Python's `\b` before a word that starts with a word character means "start of text or a
/// non-word character before"; before a word that starts with a non-word character it means "a
/// word character before" (and never matches at the start). The same holds mirrored at the end.
/// The regex crate has no look-around, so the neighbouring character is consumed instead; that
/// is harmless because only `is_match` is asked. Words are grouped by the kind of their edge
/// characters so each boundary class appears at most four times in the pattern.
fn build_blacklist(words: &[String]) -> Result<Option<Regex>, RuleError> {
    if words.is_empty() {
        return Ok(None);
    }
    let word_char = Regex::new(&format!("^{PY_WORD_CLASS}$"))?;
    let is_word = |c: Option<char>| {
        let mut buf = [0u8; 4];
        c.is_some_and(|c| word_char.is_match(c.encode_utf8(&mut buf)))
    };
    // Index: (starts with a word char, ends with a word char).
    let mut groups: [Vec<String>; 4] = Default::default();
    for word in words {
        let starts = is_word(word.chars().next());
        let ends = is_word(word.chars().next_back());
        groups[usize::from(starts) * 2 + usize::from(ends)].push(python_ignore_case_literal(word));
    }
    let mut branches = Vec::new();
    for (kind, alternatives) in groups.iter().enumerate() {
        if alternatives.is_empty() {
            continue;
        }
        let (starts, ends) = (kind / 2 == 1, kind % 2 == 1);
        let before = if starts {
            format!("(?:^|{PY_NON_WORD_CLASS})")
        } else {
            PY_WORD_CLASS.to_owned()
        };
        let after = if ends {
            format!("(?:$|{PY_NON_WORD_CLASS})")
        } else {
            PY_WORD_CLASS.to_owned()
        };
        branches.push(format!("{before}(?:{}){after}", alternatives.join("|")));
    }
    Ok(Some(Regex::new(&branches.join("|"))?))
}

/// A regex matching `word` the way Python's `re.IGNORECASE` does on a `str` pattern.
fn python_ignore_case_literal(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars() {
        if c.is_ascii_alphabetic() {
            let lower = c.to_ascii_lowercase();
            let upper = c.to_ascii_uppercase();
            // Characters whose Python simple lowercase, or Python's extra case equivalence
            // table (`_casefix`), ties them to an ASCII letter.
            let extra = match lower {
                'i' => "\u{130}\u{131}",
                'k' => "\u{212a}",
                's' => "\u{17f}",
                _ => "",
            };
            out.push('[');
            out.push(lower);
            out.push(upper);
            out.push_str(extra);
            out.push(']');
        } else if c.is_ascii() {
            out.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4])));
        } else {
            out.push_str("(?i:");
            out.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4])));
            out.push(')');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> InstructionRules {
        match InstructionRules::new(RuleConfig::default()) {
            Ok(r) => r,
            Err(e) => panic!("default config must build: {e}"),
        }
    }

    fn drop(reason: DropReason) -> Verdict {
        Verdict::Drop(reason)
    }

    fn words(n: usize) -> String {
        vec!["word"; n].join(" ")
    }

    // Rule 1: empty.
    #[test]
    fn empty_and_whitespace_only_drop_as_empty() {
        let r = rules();
        assert_eq!(r.check(""), drop(DropReason::Empty));
        assert_eq!(r.check("  \t\n \u{3000}\u{1f} "), drop(DropReason::Empty));
    }

    #[test]
    fn non_empty_instruction_passes_the_empty_rule() {
        assert_eq!(
            rules().check("  Summarize the following news article.  "),
            Verdict::Keep
        );
    }

    // Rule 2: word count.
    #[test]
    fn three_words_is_too_short_four_keeps() {
        let r = rules();
        assert_eq!(
            r.check("Summarize this article."),
            drop(DropReason::TooShort)
        );
        assert_eq!(r.check("Summarize this news article."), Verdict::Keep);
    }

    #[test]
    fn one_fifty_keeps_one_fifty_one_is_too_long() {
        let r = rules();
        assert_eq!(r.check(&words(150)), Verdict::Keep);
        assert_eq!(r.check(&words(151)), drop(DropReason::TooLong));
    }

    #[test]
    fn words_are_split_on_python_whitespace() {
        // U+001F separates words in Python's split() but is not Rust whitespace.
        assert_eq!(count_words("a\u{1f}b\u{1c}c"), 3);
        assert_eq!(count_words(" a\u{a0}b\u{85}c\u{3000}d "), 4);
        // A zero-width space is not whitespace in either language.
        assert_eq!(count_words("a\u{200b}b"), 1);
        let r = rules();
        assert_eq!(
            r.check("Summarize\u{1f}this\u{1f}news\u{1f}article"),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Summarize\u{200b}this\u{200b}news\u{200b}article"),
            drop(DropReason::TooShort)
        );
    }

    // Rule 3: blacklist.
    #[test]
    fn blacklisted_whole_words_drop() {
        let r = rules();
        assert_eq!(
            r.check("Go to the store and buy milk"),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("Describe the MAP of the old town."),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("Please go\n\t to the nearest station."),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("Compose some music for a birthday party."),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("Label the axes of this plot, please."),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("Explain this (diagram) in detail."),
            drop(DropReason::Blacklisted)
        );
    }

    #[test]
    fn blacklisted_substrings_inside_words_keep() {
        let r = rules();
        assert_eq!(
            r.check("Explain how the cargo industry works"),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Gotham city facts explained briefly"),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Describe a mapping between two sets."),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Explain what a profile picture_id field stores."),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Explain why the map2 function is lazy."),
            Verdict::Keep
        );
        assert_eq!(r.check("Tell me where to go today."), Verdict::Keep);
    }

    #[test]
    fn blacklist_boundaries_follow_python() {
        let r = rules();
        // Combining marks are not word characters in Python, so "map" + U+0301 still matches.
        assert!(r.is_blacklisted("the map\u{301} of it"));
        // Only `_` among connector punctuation is a word character in Python.
        assert!(r.is_blacklisted("map\u{203f}"));
        assert!(!r.is_blacklisted("map_"));
        // Python's re.I: İ and ı match i, the Kelvin sign matches k, ſ matches s.
        assert!(r.is_blacklisted("\u{130}MAGE"));
        assert!(r.is_blacklisted("\u{131}mage"));
        assert!(r.is_blacklisted("mapſ"));
        assert!(r.is_blacklisted("MUſIC"));
    }

    #[test]
    fn blacklist_with_non_word_edges_uses_python_boundaries() {
        let config = RuleConfig {
            blacklist: vec!["c++".into(), "#tag".into()],
            ..RuleConfig::default()
        };
        let r = match InstructionRules::new(config) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        // `\bc++\b` needs a word character right after the final `+`.
        assert!(r.is_blacklisted("use c++x now"));
        assert!(!r.is_blacklisted("use c++ now"));
        // `\b#tag` needs a word character right before the `#`, so never at the start.
        assert!(r.is_blacklisted("a#tag"));
        assert!(!r.is_blacklisted("#tag"));
        assert!(!r.is_blacklisted("a #tag"));
    }

    #[test]
    fn empty_blacklist_turns_the_rule_off() {
        let config = RuleConfig {
            blacklist: Vec::new(),
            ..RuleConfig::default()
        };
        let r = match InstructionRules::new(config) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.check("Draw a map of the city."), Verdict::Keep);
    }

    // Rule 4: forbidden prefix.
    #[test]
    fn write_a_program_prefix_drops() {
        let r = rules();
        assert_eq!(
            r.check("Write a program that prints the primes."),
            drop(DropReason::WriteAProgram)
        );
        // self-instruct capitalised first, so these were dropped there too.
        assert_eq!(
            r.check("write a program that prints the primes."),
            drop(DropReason::WriteAProgram)
        );
        assert_eq!(
            r.check("WRITE A PROGRAM that prints the primes."),
            drop(DropReason::WriteAProgram)
        );
        // A plain prefix test, as in the reference: "programme" starts with "program".
        assert_eq!(
            r.check("Write a programme for the school concert."),
            drop(DropReason::WriteAProgram)
        );
    }

    #[test]
    fn write_a_program_elsewhere_or_other_programs_keep() {
        let r = rules();
        assert_eq!(
            r.check("Please write a program that prints the primes."),
            Verdict::Keep
        );
        assert_eq!(
            r.check("Write a function that prints the primes."),
            Verdict::Keep
        );
    }

    #[test]
    fn case_sensitive_prefix_is_alpacas_startswith() {
        let config = RuleConfig {
            prefix_ignore_ascii_case: false,
            ..RuleConfig::default()
        };
        let r = match InstructionRules::new(config) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            r.check("Write a program that prints the primes."),
            drop(DropReason::WriteAProgram)
        );
        assert_eq!(
            r.check("write a program that prints the primes."),
            Verdict::Keep
        );
    }

    #[test]
    fn prefix_longer_than_text_or_cut_inside_a_char_does_not_panic() {
        let config = RuleConfig {
            min_words: 0,
            forbidden_prefixes: vec!["ab".into()],
            ..RuleConfig::default()
        };
        let r = match InstructionRules::new(config) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.check("a"), Verdict::Keep);
        // "ab" is two bytes; "aé" cut at two bytes ends inside "é".
        assert_eq!(r.check("aé"), Verdict::Keep);
        assert_eq!(r.check("é"), drop(DropReason::StartsNonAscii));
        assert_eq!(r.check("abc"), drop(DropReason::WriteAProgram));
    }

    // Rule 5: first character punctuation.
    #[test]
    fn leading_ascii_punctuation_drops() {
        let r = rules();
        assert_eq!(
            r.check("- Summarize this news article."),
            drop(DropReason::StartsWithPunctuation)
        );
        assert_eq!(
            r.check("\"Summarize this news article.\""),
            drop(DropReason::StartsWithPunctuation)
        );
        assert_eq!(
            r.check("_Summarize this news article"),
            drop(DropReason::StartsWithPunctuation)
        );
        // Digits are not punctuation.
        assert_eq!(r.check("1. Summarize this news article."), Verdict::Keep);
    }

    #[test]
    fn every_python_punctuation_character_drops_and_letters_keep() {
        let r = rules();
        for c in r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##.chars() {
            assert_eq!(
                r.check(&format!("{c}Summarize this news article")),
                drop(DropReason::StartsWithPunctuation)
            );
        }
        assert_eq!(r.check("Summarize this news article!"), Verdict::Keep);
    }

    // Rule 6: first character not ASCII.
    #[test]
    fn leading_non_ascii_drops() {
        let r = rules();
        assert_eq!(
            r.check("¿Cómo se dice hello en español?"),
            drop(DropReason::StartsNonAscii)
        );
        assert_eq!(
            r.check("请 把 这句话 翻译成 英文"),
            drop(DropReason::StartsNonAscii)
        );
        // Non-ASCII punctuation is not in string.punctuation, so it is the non-ASCII rule.
        assert_eq!(
            r.check("“Summarize this news article”"),
            drop(DropReason::StartsNonAscii)
        );
    }

    #[test]
    fn non_ascii_after_the_first_character_keeps() {
        assert_eq!(
            rules().check("Translate “bonjour” into Chinese: 你好"),
            Verdict::Keep
        );
    }

    // Order.
    #[test]
    fn first_failing_rule_names_the_reason() {
        let r = rules();
        // Too short beats blacklisted and punctuation.
        assert_eq!(r.check("- draw map"), drop(DropReason::TooShort));
        // Blacklisted beats the prefix and the first character.
        assert_eq!(
            r.check("Write a program to draw stars."),
            drop(DropReason::Blacklisted)
        );
        assert_eq!(
            r.check("¿Draw the stars in the sky?"),
            drop(DropReason::Blacklisted)
        );
    }

    #[test]
    fn normalization_collapses_and_trims_python_whitespace() {
        assert_eq!(normalize_instruction("  a \t\n b\u{1f}c  "), "a b c");
        assert_eq!(normalize_instruction("already clean"), "already clean");
        assert_eq!(normalize_instruction(""), "");
        assert_eq!(normalize_instruction(" "), "");
        assert!(matches!(normalize_cow("already clean"), Cow::Borrowed(_)));
        assert!(matches!(normalize_cow("trailing "), Cow::Owned(_)));
        assert!(matches!(normalize_cow("two  spaces"), Cow::Owned(_)));
        // No capitalize(): case is left alone.
        assert_eq!(
            normalize_instruction("explain NASA's role"),
            "explain NASA's role"
        );
    }

    // Config.
    #[test]
    fn config_validation_names_the_field() {
        let bad = |config: RuleConfig| match InstructionRules::new(config) {
            Ok(_) => panic!("config should be rejected"),
            Err(e) => e,
        };
        let e = bad(RuleConfig {
            min_words: 10,
            max_words: 5,
            ..RuleConfig::default()
        });
        assert!(matches!(
            e,
            RuleError::WordBounds {
                min_words: 10,
                max_words: 5
            }
        ));
        assert!(e.to_string().contains("min_words"));
        let e = bad(RuleConfig {
            blacklist: vec!["map".into(), String::new()],
            ..RuleConfig::default()
        });
        assert!(matches!(e, RuleError::EmptyBlacklistWord { index: 1 }));
        assert!(e.to_string().contains("blacklist[1]"));
        let e = bad(RuleConfig {
            blacklist: vec!["go  to".into()],
            ..RuleConfig::default()
        });
        assert!(matches!(
            e,
            RuleError::UnnormalizedBlacklistWord { index: 0, .. }
        ));
        let e = bad(RuleConfig {
            forbidden_prefixes: vec![String::new()],
            ..RuleConfig::default()
        });
        assert!(matches!(e, RuleError::EmptyForbiddenPrefix { index: 0 }));
        assert!(e.to_string().contains("forbidden_prefixes[0]"));
        // Equal bounds are a legitimate "exactly N words".
        assert!(RuleConfig {
            min_words: 5,
            max_words: 5,
            ..RuleConfig::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let parsed: RuleConfig = match serde_json::from_str(r#"{"max_words": 100}"#) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            parsed,
            RuleConfig {
                max_words: 100,
                ..RuleConfig::default()
            }
        );
        assert!(serde_json::from_str::<RuleConfig>(r#"{"max_word": 100}"#).is_err());
        let defaults = RuleConfig::default();
        assert_eq!((defaults.min_words, defaults.max_words), (4, 150));
        assert_eq!(defaults.blacklist.len(), 18);
        assert_eq!(
            defaults.forbidden_prefixes,
            vec!["Write a program".to_owned()]
        );
    }

    // Stats.
    #[test]
    fn batch_records_every_verdict() {
        let r = rules();
        let mut stats = FilterStats::default();
        let verdicts = r.check_batch(
            [
                "Summarize this news article.",
                "",
                "Draw a map of the town.",
                "Too short here",
                "Summarize this other article.",
            ],
            &mut stats,
        );
        assert_eq!(verdicts.len(), 5);
        assert_eq!(verdicts[1], drop(DropReason::Empty));
        assert_eq!(stats.seen, 5);
        assert_eq!(stats.kept, 2);
        assert_eq!(stats.drops(DropReason::Empty), 1);
        assert_eq!(stats.drops(DropReason::Blacklisted), 1);
        assert_eq!(stats.drops(DropReason::TooShort), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Judging raw text and its normal form agree, normalising is idempotent, and nothing
        /// panics on arbitrary Unicode (including Python-only whitespace).
        #[test]
        fn normalization_is_idempotent_and_judging_commutes_with_it(
            text in "[ a-zA-Z\u{1c}-\u{1f}\t\n\u{85}\u{a0}\u{3000}\u{200b}.,!é你İ_-]{0,40}|\\PC{0,40}"
        ) {
            let r = rules();
            let norm = normalize_instruction(&text);
            proptest::prop_assert_eq!(normalize_instruction(&norm), norm.clone());
            proptest::prop_assert_eq!(r.check(&text), r.check(&norm));
            proptest::prop_assert_eq!(count_words(&text), count_words(&norm));
            proptest::prop_assert!(!norm.starts_with(' ') && !norm.ends_with(' ') && !norm.contains("  "));
        }
    }
}
