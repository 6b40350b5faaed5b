//! ROUGE-L exactly as `rouge_score` 0.1.2 computes it:
//! `RougeScorer(["rougeL"], use_stemmer=False).score(target, prediction)["rougeL"]`.
//!
//! The arithmetic follows `rouge_scorer._score_lcs` and `scoring.fmeasure` operation by
//! operation, so the three `f64`s are bit-for-bit those of Python:
//!
//! ```text
//! if not target or not prediction: (0, 0, 0)
//! precision = lcs / len(prediction);  recall = lcs / len(target)
//! fmeasure  = 2 * precision * recall / (precision + recall)  if precision + recall > 0 else 0.0
//! ```
//!
//! (Integer true division is correctly rounded in both languages for lengths below 2^53, and
//! `2 * p * r` is evaluated left to right as `(2 * p) * r` in both.) The committed fixture
//! `tests/fixtures/rouge/pairs.jsonl` pins this against the Python package.
//!
//! F is symmetric bit for bit: `(2p)r` and `(2r)p` are both the correctly rounded `2pr`, so the
//! near-duplicate index may score in either direction.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

use crate::lcs::lcs_len;
use crate::tokenize::{Tokenizer, TokenizerMode};

/// Precision, recall and F-measure of one ROUGE-L comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// LCS / number of prediction tokens.
    pub precision: f64,
    /// LCS / number of target tokens.
    pub recall: f64,
    /// Harmonic mean, computed as `rouge_score.scoring.fmeasure` does.
    pub fmeasure: f64,
}

/// `rouge_score.scoring.fmeasure`, same operation order.
#[inline]
pub fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// The score for an LCS length and the two token counts, as `rouge_scorer._score_lcs` does.
#[inline]
pub fn score_from_lcs(lcs: usize, target_len: usize, prediction_len: usize) -> Score {
    if target_len == 0 || prediction_len == 0 {
        return Score::default();
    }
    let precision = lcs as f64 / prediction_len as f64;
    let recall = lcs as f64 / target_len as f64;
    Score {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// Only the F-measure of [`score_from_lcs`]. Strictly increasing in `lcs` for fixed lengths
/// (one LCS step moves F by `2 / (la + lb)`, far more than the few ulps of rounding), which is
/// what lets the index bound F by bounding the LCS.
#[inline]
pub fn f_from_lcs(lcs: usize, target_len: usize, prediction_len: usize) -> f64 {
    score_from_lcs(lcs, target_len, prediction_len).fmeasure
}

/// ROUGE-L scorer over raw strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct RougeScorer {
    tokenizer: Tokenizer,
}

impl RougeScorer {
    /// A scorer tokenizing in `mode` ([`TokenizerMode::RougeScore`] reproduces `rouge_score`).
    pub fn new(mode: TokenizerMode) -> Self {
        RougeScorer {
            tokenizer: Tokenizer::new(mode),
        }
    }

    /// A scorer that stems like `rouge_score`'s `use_stemmer=True` when `use_stemmer` is set.
    pub fn with_stemmer(mode: TokenizerMode, use_stemmer: bool) -> Self {
        RougeScorer {
            tokenizer: Tokenizer::with_stemmer(mode, use_stemmer),
        }
    }

    /// The tokenizer in use.
    pub fn tokenizer(&self) -> Tokenizer {
        self.tokenizer
    }

    /// ROUGE-L of `prediction` against `target` (argument order as `rouge_score`'s `score`).
    pub fn score(&self, target: &str, prediction: &str) -> Score {
        TOKEN_BUF.with(|buf| match buf.try_borrow_mut() {
            Ok(mut words) => self.score_with(&mut words, target, prediction),
            Err(_) => self.score_with(&mut TokenBuf::default(), target, prediction),
        })
    }

    fn score_with(&self, words: &mut TokenBuf, target: &str, prediction: &str) -> Score {
        words.clear();
        self.tokenizer.for_each_token(target, |t| words.push(t));
        let split = words.ends.len();
        self.tokenizer.for_each_token(prediction, |t| words.push(t));
        words.intern();
        score_ids(&words.ids[..split], &words.ids[split..])
    }
}

/// ROUGE-L of two sequences of interned token ids (equal ids = equal tokens).
pub fn score_ids(target: &[u32], prediction: &[u32]) -> Score {
    if target.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    score_from_lcs(lcs_len(target, prediction), target.len(), prediction.len())
}

thread_local! {
    static TOKEN_BUF: std::cell::RefCell<TokenBuf> = const {
        std::cell::RefCell::new(TokenBuf {
            text: String::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            ids: Vec::new(),
            table: Vec::new(),
        })
    };
}

/// Tokens of two texts packed in one string and interned to ids local to the pair, reused
/// between calls so scoring raw strings allocates nothing once warm.
#[derive(Default)]
struct TokenBuf {
    text: String,
    /// Token `i` is `text[starts[i]..ends[i]]`.
    starts: Vec<usize>,
    ends: Vec<usize>,
    ids: Vec<u32>,
    /// Open-addressing table of token indices (`u32::MAX` = empty).
    table: Vec<u32>,
}

impl TokenBuf {
    fn clear(&mut self) {
        self.text.clear();
        self.starts.clear();
        self.ends.clear();
    }

    fn push(&mut self, t: &str) {
        self.starts.push(self.text.len());
        self.text.push_str(t);
        self.ends.push(self.text.len());
    }

    fn token(&self, i: usize) -> &str {
        &self.text[self.starts[i]..self.ends[i]]
    }

    /// Fills `ids`: equal tokens get equal ids, numbered from 0 in order of first appearance.
    fn intern(&mut self) {
        let n = self.ends.len();
        let cap = (2 * n).next_power_of_two().max(8);
        self.table.clear();
        self.table.resize(cap, u32::MAX);
        self.ids.clear();
        let mut next = 0u32;
        for i in 0..n {
            let tok = self.token(i);
            let mut h = FxHasher::default();
            tok.hash(&mut h);
            let mut slot = h.finish() as usize & (cap - 1);
            let id = loop {
                let j = self.table[slot];
                if j == u32::MAX {
                    self.table[slot] = i as u32;
                    next += 1;
                    break next - 1;
                }
                if self.token(j as usize) == tok {
                    break self.ids[j as usize];
                }
                slot = (slot + 1) & (cap - 1);
            };
            self.ids.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(t: &str, p: &str) -> Score {
        RougeScorer::default().score(t, p)
    }

    #[test]
    fn empty_scores_zero() {
        assert_eq!(rl("", "a b"), Score::default());
        assert_eq!(rl("a b", ""), Score::default());
        assert_eq!(rl("!!!", "写诗"), Score::default());
        assert_eq!(rl("a b", "c d"), Score::default());
    }

    #[test]
    fn known_values() {
        // rouge_score: score("the cat sat", "the cat sat on the mat")
        let s = rl("the cat sat", "the cat sat on the mat");
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 1.0);
        assert_eq!(s.fmeasure, 2.0 * 0.5 * 1.0 / 1.5);
        let s = rl("A B C D", "a x b c");
        assert_eq!((s.precision, s.recall), (0.75, 0.75));
    }

    /// Seven shared tokens out of ten on both sides: F is exactly what Python prints for
    /// `2 * 0.7 * 0.7 / 1.4`.
    #[test]
    fn boundary_value_is_pythons() {
        let s = score_from_lcs(7, 10, 10);
        assert_eq!(s.fmeasure, 2.0 * 0.7 * 0.7 / (0.7 + 0.7));
        assert!(s.fmeasure <= 0.7);
        // 7 of 10 and 7 of 10 via 14/20 and via other length pairs with 2*lcs/(la+lb) = 0.7.
        assert!(f_from_lcs(14, 20, 20) <= 0.7);
        assert!(f_from_lcs(8, 10, 10) > 0.7);
    }

    /// The reference scores Chinese 0 against everything; the Unicode mode sees the characters.
    #[test]
    fn unicode_mode_scores_cjk() {
        assert_eq!(rl("写一首诗", "写一首歌"), Score::default());
        let s = RougeScorer::new(TokenizerMode::Unicode).score("写一首诗", "写一首歌");
        assert_eq!((s.precision, s.recall), (0.75, 0.75));
    }

    #[test]
    fn f_is_symmetric() {
        for la in 1..40 {
            for lb in 1..40 {
                for l in 0..=la.min(lb) {
                    assert_eq!(
                        f_from_lcs(l, la, lb).to_bits(),
                        f_from_lcs(l, lb, la).to_bits()
                    );
                }
            }
        }
    }

    #[test]
    fn f_strictly_increases_with_lcs() {
        for la in 1..300 {
            for lb in (1..300).step_by(7) {
                for l in 1..=la.min(lb) {
                    assert!(f_from_lcs(l, la, lb) > f_from_lcs(l - 1, la, lb));
                }
            }
        }
    }
}
