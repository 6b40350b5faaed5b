//! Tokenizers for ROUGE-L.
//!
//! [`TokenizerMode::RougeScore`] reproduces `rouge_score.tokenize.tokenize(text, stemmer=None)`
//! (rouge-score 0.1.2) exactly: Python's `str.lower()`, then every run of characters outside
//! `[a-z0-9]` becomes a separator. Because lowercasing comes first, two non-ASCII characters do
//! produce ASCII letters, and only these two (checked exhaustively against Python 3.11's Unicode
//! 14 tables, and against Rust's tables by a test below):
//!
//! * `'İ'` (U+0130) lowercases to `"i\u{307}"`: an `i` followed by a combining dot, which is a
//!   separator, so `"İstanbul"` gives `["i", "stanbul"]`;
//! * `'K'` (U+212A, Kelvin sign) lowercases to `"k"`.
//!
//! Everything else outside ASCII (accents, `ß`, ligatures such as `'ﬁ'`, CJK) is a separator, so
//! `"café"` gives `["caf"]` and Chinese text gives no tokens at all: it scores 0 against
//! everything and is never deduplicated. That is the reference behaviour, kept on purpose.
//!
//! [`TokenizerMode::Unicode`] is this project's own mode for non-Latin text: every CJK ideograph,
//! kana or Hangul character is a token of its own; other runs of Unicode letters and digits
//! (with combining marks and zero-width joiners attached) form lowercased words; everything else
//! separates.

use serde::{Deserialize, Serialize};

/// How text is split into tokens before ROUGE-L.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerMode {
    /// Bit-for-bit `rouge_score`'s default tokenizer without stemming: lowercase, keep `[a-z0-9]`
    /// runs. Non-Latin scripts produce no tokens.
    #[default]
    RougeScore,
    /// CJK characters are single tokens; runs of other Unicode letters and digits are lowercased
    /// words; everything else separates.
    Unicode,
}

/// A tokenizer in one [`TokenizerMode`], optionally stemming. Cheap to copy; holds no state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokenizer {
    mode: TokenizerMode,
    stemmer: bool,
}

impl Tokenizer {
    /// A tokenizer in the given mode, without stemming (`rouge_score`'s `use_stemmer=False`).
    pub fn new(mode: TokenizerMode) -> Self {
        Tokenizer {
            mode,
            stemmer: false,
        }
    }

    /// A tokenizer that, when `use_stemmer` is set, replaces every ASCII token longer than 3
    /// characters by its NLTK Porter stem ([`crate::porter::stem`]), as `rouge_score` does with
    /// `use_stemmer=True`.
    pub fn with_stemmer(mode: TokenizerMode, use_stemmer: bool) -> Self {
        Tokenizer {
            mode,
            stemmer: use_stemmer,
        }
    }

    /// The mode this tokenizer runs in.
    pub fn mode(&self) -> TokenizerMode {
        self.mode
    }

    /// Whether tokens are stemmed.
    pub fn stems(&self) -> bool {
        self.stemmer
    }

    /// Splits `text` into owned tokens.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t.to_owned()));
        out
    }

    /// Calls `f` on every token of `text`, in order, without allocating per token (except for
    /// stems).
    pub fn for_each_token(&self, text: &str, mut f: impl FnMut(&str)) {
        if self.stemmer {
            let stemmed = |t: &str| {
                if t.len() > 3 && t.is_ascii() {
                    let s = crate::porter::stem(t);
                    // rouge_score drops tokens that are no longer valid; stems of [a-z0-9]+
                    // words are never empty, but the check costs nothing.
                    if !s.is_empty() {
                        f(&s);
                    }
                } else {
                    f(t);
                }
            };
            return match self.mode {
                TokenizerMode::RougeScore => rouge_score_tokens(text, stemmed),
                TokenizerMode::Unicode => unicode_tokens(text, stemmed),
            };
        }
        match self.mode {
            TokenizerMode::RougeScore => rouge_score_tokens(text, f),
            TokenizerMode::Unicode => unicode_tokens(text, f),
        }
    }
}

/// Splits `text` into tokens in the given mode. Shorthand for `Tokenizer::new(mode).tokenize(text)`.
pub fn tokenize(text: &str, mode: TokenizerMode) -> Vec<String> {
    Tokenizer::new(mode).tokenize(text)
}

/// What Python's `str.lower()` makes of `c`, restricted to `[a-z0-9]`: `Some(ascii)` when the
/// lowercase form *starts* with an ASCII letter or digit. For U+0130 the lowercase form continues
/// with U+0307, which is a separator; the caller ends the token after it (see [`ends_token`]).
#[inline]
fn rouge_char(c: char) -> Option<u8> {
    match c {
        'a'..='z' | '0'..='9' => Some(c as u8),
        'A'..='Z' => Some(c.to_ascii_lowercase() as u8),
        '\u{130}' => Some(b'i'),
        '\u{212A}' => Some(b'k'),
        _ => None,
    }
}

/// True when the lowercase form of `c` ends with a separator although it starts with a token
/// character (only `'İ'` -> `"i\u{307}"`).
#[inline]
fn ends_token(c: char) -> bool {
    c == '\u{130}'
}

fn rouge_score_tokens(text: &str, mut f: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    // Fast path: pure ASCII text is sliced and only lowercased when it has capitals.
    if text.is_ascii() {
        let mut buf = String::new();
        let mut start = None;
        for (i, &b) in bytes.iter().enumerate() {
            if b.is_ascii_alphanumeric() {
                if start.is_none() {
                    start = Some(i);
                }
            } else if let Some(s) = start.take() {
                emit_ascii(&text[s..i], &mut buf, &mut f);
            }
        }
        if let Some(s) = start {
            emit_ascii(&text[s..], &mut buf, &mut f);
        }
        return;
    }
    let mut buf = String::new();
    for c in text.chars() {
        match rouge_char(c) {
            Some(b) => {
                buf.push(b as char);
                if ends_token(c) {
                    f(&buf);
                    buf.clear();
                }
            }
            None => {
                if !buf.is_empty() {
                    f(&buf);
                    buf.clear();
                }
            }
        }
    }
    if !buf.is_empty() {
        f(&buf);
    }
}

#[inline]
fn emit_ascii(tok: &str, buf: &mut String, f: &mut impl FnMut(&str)) {
    if tok.bytes().any(|b| b.is_ascii_uppercase()) {
        buf.clear();
        buf.push_str(tok);
        buf.make_ascii_lowercase();
        f(buf);
    } else {
        f(tok);
    }
}

/// CJK ideographs, kana and Hangul: each such letter is a token of its own in
/// [`TokenizerMode::Unicode`]. Punctuation in these blocks (`、`, `。`, `・`, ...) is not a
/// letter and therefore separates.
pub fn is_cjk(c: char) -> bool {
    let cp = c as u32;
    let in_block = matches!(cp,
        0x3005..=0x3007          // 々 〆 〇 (letters/numbers in CJK Symbols and Punctuation)
        | 0x3021..=0x3029        // Hangzhou numerals
        | 0x3038..=0x303C
        | 0x3040..=0x309F        // Hiragana
        | 0x30A0..=0x30FF        // Katakana
        | 0x3100..=0x312F        // Bopomofo
        | 0x3130..=0x318F        // Hangul Compatibility Jamo
        | 0x31A0..=0x31BF        // Bopomofo Extended
        | 0x31F0..=0x31FF        // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF        // CJK Extension A
        | 0x4E00..=0x9FFF        // CJK Unified Ideographs
        | 0x1100..=0x11FF        // Hangul Jamo
        | 0xA960..=0xA97F        // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF        // Hangul Syllables
        | 0xD7B0..=0xD7FF        // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF        // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F        // Halfwidth Katakana
        | 0xFFA0..=0xFFDC        // Halfwidth Hangul
        | 0x1B000..=0x1B16F      // Kana Supplement / Extended-A
        | 0x20000..=0x2FA1F      // CJK Extensions B-F, Compatibility Supplement
        | 0x30000..=0x323AF      // CJK Extensions G-H
    );
    in_block && c.is_alphanumeric()
}

/// Combining marks (general category M: accents such as `e\u{301}`, Indic vowel signs and
/// viramas) and the zero-width (non-)joiners continue a word although they are not alphanumeric.
fn continues_word(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}') || unicode_normalization::char::is_combining_mark(c)
}

fn unicode_tokens(text: &str, mut f: impl FnMut(&str)) {
    let mut buf = String::new();
    let mut one = [0u8; 4];
    for c in text.chars() {
        if is_cjk(c) {
            if !buf.is_empty() {
                f(&buf);
                buf.clear();
            }
            f(c.encode_utf8(&mut one));
        } else if c.is_alphanumeric() || (!buf.is_empty() && continues_word(c)) {
            buf.extend(c.to_lowercase());
        } else if !buf.is_empty() {
            f(&buf);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        f(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(text: &str) -> Vec<String> {
        tokenize(text, TokenizerMode::RougeScore)
    }

    fn uni(text: &str) -> Vec<String> {
        tokenize(text, TokenizerMode::Unicode)
    }

    #[test]
    fn rouge_punctuation_digits_and_case() {
        assert_eq!(
            rs("Hello, World! 42x foo_bar-baz"),
            ["hello", "world", "42x", "foo", "bar", "baz"]
        );
        assert_eq!(rs("$16.99"), ["16", "99"]);
        assert_eq!(rs("e-mail: A.B@C.com"), ["e", "mail", "a", "b", "c", "com"]);
    }

    #[test]
    fn rouge_apostrophes_split() {
        assert_eq!(rs("don't"), ["don", "t"]);
        assert_eq!(rs("It\u{2019}s"), ["it", "s"]);
    }

    #[test]
    fn rouge_accents_and_ligatures_are_separators() {
        assert_eq!(rs("café"), ["caf"]);
        assert_eq!(rs("Straße"), ["stra", "e"]);
        assert_eq!(rs("\u{FB01}nd"), ["nd"]);
        assert_eq!(rs("naïve résumé"), ["na", "ve", "r", "sum"]);
    }

    #[test]
    fn rouge_turkish_dotted_i_and_kelvin() {
        assert_eq!(rs("İstanbul"), ["i", "stanbul"]);
        assert_eq!(rs("XİY"), ["xi", "y"]);
        assert_eq!(rs("5\u{212A}"), ["5k"]);
        assert_eq!(rs("ı"), Vec::<String>::new());
    }

    #[test]
    fn rouge_cjk_empty_and_whitespace() {
        assert!(rs("写一首关于春天的诗").is_empty());
        assert!(rs("").is_empty());
        assert!(rs(" \t\n\u{3000} ").is_empty());
        assert_eq!(rs("写 poem 诗"), ["poem"]);
    }

    /// The fast per-character mapping agrees with Rust's full Unicode lowercasing on every
    /// scalar value: which characters produce ASCII letters or digits, and which one ends the
    /// token it starts.
    #[test]
    fn rouge_char_matches_unicode_lowercase_everywhere() {
        for cp in 0..=0x10FFFFu32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let lower: Vec<char> = c.to_lowercase().collect();
            let ascii: String = lower.iter().filter(|l| l.is_ascii_alphanumeric()).collect();
            let expect_first = lower
                .first()
                .filter(|l| l.is_ascii_alphanumeric())
                .map(|&l| l as u8);
            assert_eq!(rouge_char(c), expect_first, "U+{cp:04X}");
            assert!(
                ascii.len() <= 1,
                "U+{cp:04X} lowercases to several ASCII characters"
            );
            if expect_first.is_some() {
                assert_eq!(ascii.len(), 1, "U+{cp:04X}");
                let ends = lower.last().is_some_and(|l| !l.is_ascii_alphanumeric());
                assert_eq!(ends_token(c), ends, "U+{cp:04X}");
            } else {
                assert!(
                    ascii.is_empty(),
                    "U+{cp:04X} has ASCII after a non-ASCII start"
                );
            }
        }
    }

    #[test]
    fn unicode_mode_cjk_single_tokens() {
        assert_eq!(uni("写一首诗。"), ["写", "一", "首", "诗"]);
        assert_eq!(
            uni("ひらがなカタカナ・한국어"),
            ["ひ", "ら", "が", "な", "カ", "タ", "カ", "ナ", "한", "국", "어"]
        );
        assert_eq!(uni("GPT-4で要約"), ["gpt", "4", "で", "要", "約"]);
    }

    #[test]
    fn unicode_mode_keeps_letters_and_digits() {
        assert_eq!(
            uni("Café déjà-vu, don't"),
            ["café", "déjà", "vu", "don", "t"]
        );
        assert_eq!(uni("Straße ΣΟΦΙΑ ١٢٣"), ["straße", "σοφια", "١٢٣"]);
        assert_eq!(uni("cafe\u{301}"), ["cafe\u{301}"]);
        assert_eq!(uni("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
    }

    #[test]
    fn unicode_mode_empty_and_whitespace() {
        assert!(uni("").is_empty());
        assert!(uni("  \n\t\u{3000}!?").is_empty());
    }

    #[test]
    fn mode_deserializes_snake_case() {
        let m: TokenizerMode = serde_json::from_str("\"unicode\"").unwrap_or_default();
        assert_eq!(m, TokenizerMode::Unicode);
        let m: TokenizerMode =
            serde_json::from_str("\"rouge_score\"").unwrap_or(TokenizerMode::Unicode);
        assert_eq!(m, TokenizerMode::RougeScore);
        assert_eq!(TokenizerMode::default(), TokenizerMode::RougeScore);
    }
}
