//! Insert-time near-duplicate detection with the Self-Instruct / Stanford Alpaca semantics, exact
//! and without comparing every pair.
//!
//! The reference loop (Alpaca's `generate_instruction.py`) tokenizes every kept instruction once
//! and, for each candidate, computes ROUGE-L F against *all* of them; the candidate is dropped
//! when the maximum is strictly greater than the threshold (0.7), otherwise it joins the pool at
//! once, so duplicates inside one batch are caught too. [`NearDupIndex`] makes the same decisions
//! and returns the same top-k scores as that brute force ([`NearDupIndex::check_brute_force`] is
//! kept as the oracle the tests compare with), but only scores documents that can matter:
//!
//! * Each indexed document is interned once to `u32` token ids and has full postings
//!   (document, multiplicity) for every token.
//! * For a query of `la` tokens, `LCS(q, d) <= overlap(q, d) = sum_t min(c_q(t), c_d(t))` and
//!   `LCS <= min(la, lb)`. Query tokens are visited rarest first (document frequency); after
//!   some are visited, a document's LCS is bounded by its overlap on the visited tokens plus
//!   `S`, the query multiplicity of the tokens not visited yet. A document reached by no visited
//!   token is bounded by `min(S, la, lb)`, whatever its content.
//! * F is a strictly increasing function of the LCS for fixed lengths (see
//!   [`crate::rouge::f_from_lcs`]), so the bound on F is that same `f64` function evaluated at the
//!   LCS bound. Most candidates are discarded before any division: the computed F is within a
//!   few ulps of `2·LCS/(la+lb)`, so `2·bound < (k-th score)·(1 - 1e-12)·(la+lb)` proves the
//!   candidate cannot enter; whatever passes is compared on the exact `f64` F.
//! * Branch and bound for the exact top-k (k >= 1; the maximum is the first entry, so the
//!   decision is exact as well): reached documents are scored in decreasing overlap order, each
//!   only if its bound can still beat the current k-th entry; once the bound for documents not
//!   reached yet cannot beat it either, the remaining (most frequent) tokens' postings are never
//!   read. Otherwise the next token is visited and newly reached documents are bounded the same
//!   way. Bounds only shrink as tokens are visited, so a document pruned once stays pruned.
//! * Ties are broken by the lower id, the same total order as the brute force. Documents that
//!   share no token with the query score exactly 0 and fill the top-k, lowest ids first, only when
//!   fewer than k documents score above 0.
//! * [`NearDupIndex::check_and_insert_batch`] checks a chunk of candidates against the index in
//!   parallel (rayon), scores each candidate against the earlier candidates of its chunk, then
//!   resolves the chunk in order, so the decisions are those of the sequential loop.
//!
//! The exact LCS is the bit-parallel one of [`crate::lcs`], with the query as the pattern: for
//! queries of up to 64 tokens a per-thread table of query bit masks indexed by token id, so a
//! document token costs one load; longer queries use multi-word masks over query slots.
//!
//! [`NearDupIndex::check`] does not touch the vocabulary: query tokens the index has never seen
//! cannot match any document and only count in the query's length.

use std::cell::RefCell;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::lcs::{lcs_len, BitPattern, NO_SLOT};
use crate::rouge::f_from_lcs;
use crate::tokenize::{Tokenizer, TokenizerMode};

/// Token id of a query token that no indexed document contains.
const UNKNOWN: u32 = u32::MAX;

/// Candidates per parallel chunk in [`NearDupIndex::check_and_insert_batch`].
const BATCH_CHUNK: usize = 64;

/// Settings of the near-duplicate check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearDupConfig {
    /// A candidate whose maximum ROUGE-L F against the index is strictly greater than this is a
    /// near duplicate (reference: 0.7, so F exactly 0.7 is kept). The comparison is on the `f64`
    /// that `rouge_score` computes: some pairs with 2·LCS = 0.7·(la+lb) exactly come out as
    /// 0.7000000000000001 (LCS 7, lengths 8 and 12) and are dropped, as by the reference.
    pub threshold: f64,
    /// How many of the most similar indexed instructions to report (reference: 10).
    pub top_k: usize,
    /// Tokenizer for ROUGE-L (reference: `rouge_score`'s).
    pub tokenizer: TokenizerMode,
    /// Porter-stem tokens longer than 3 characters, as `rouge_score`'s `use_stemmer=True`
    /// (reference: false).
    pub use_stemmer: bool,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        NearDupConfig {
            threshold: 0.7,
            top_k: 10,
            tokenizer: TokenizerMode::RougeScore,
            use_stemmer: false,
        }
    }
}

impl NearDupConfig {
    /// Rejects settings that cannot mean anything: a threshold that is not finite.
    pub fn validate(&self) -> Result<(), NearDupError> {
        if !self.threshold.is_finite() {
            return Err(NearDupError::InvalidThreshold(self.threshold));
        }
        Ok(())
    }
}

/// Errors of the near-duplicate index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NearDupError {
    /// The threshold is NaN or infinite.
    #[error("near-duplicate threshold must be a finite number, got {0}")]
    InvalidThreshold(f64),
    /// Document ids are `u32` inside the index.
    #[error("near-duplicate index is full ({0} documents)")]
    Full(usize),
}

/// The outcome of checking one candidate against the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    /// `max <= threshold`: the candidate is new enough to keep.
    pub accepted: bool,
    /// The id the candidate received, when it was inserted ([`NearDupIndex::check_and_insert`]
    /// on an accepted candidate); `None` otherwise.
    pub id: Option<usize>,
    /// Highest ROUGE-L F against any indexed instruction (0.0 for an empty index).
    pub max: f64,
    /// The `top_k` most similar indexed instructions, `(id, F)`, by decreasing F, ties by
    /// increasing id. Fewer entries only when the index holds fewer documents.
    pub top_k: Vec<(usize, f64)>,
    /// Mean F of the `top_k` entries (0.0 when there are none). The reference reports the mean
    /// over the *whole* pool, which needs every pair; this is the mean of the k nearest, which
    /// the index computes exactly.
    pub mean: f64,
}

/// One posting: a document containing the token, how many times, and the document's length in
/// tokens (so pruning needs no look-up in the document table). Both small fields saturate at
/// `u16::MAX`; the saturated value means "look it up" (see [`NearDupIndex::posting_count`]).
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    count: u16,
    len: u16,
}

/// The near-duplicate index: every accepted instruction, tokenized and interned once.
#[derive(Debug, Clone)]
pub struct NearDupIndex {
    config: NearDupConfig,
    tokenizer: Tokenizer,
    vocab: FxHashMap<Box<str>, u32>,
    /// Postings per token id, documents in increasing id order.
    postings: Vec<Vec<Posting>>,
    texts: Vec<String>,
    /// Token ids of all documents, concatenated; document `d` is `tokens[starts[d]..starts[d+1]]`.
    tokens: Vec<u32>,
    starts: Vec<usize>,
}

impl NearDupIndex {
    /// An empty index.
    pub fn new(config: NearDupConfig) -> Result<Self, NearDupError> {
        config.validate()?;
        Ok(NearDupIndex {
            config,
            tokenizer: Tokenizer::with_stemmer(config.tokenizer, config.use_stemmer),
            vocab: FxHashMap::default(),
            postings: Vec::new(),
            texts: Vec::new(),
            tokens: Vec::new(),
            starts: vec![0],
        })
    }

    /// The settings this index was built with.
    pub fn config(&self) -> &NearDupConfig {
        &self.config
    }

    /// Number of indexed instructions.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The text of an indexed instruction.
    pub fn text(&self, id: usize) -> Option<&str> {
        self.texts.get(id).map(String::as_str)
    }

    /// Number of tokens of an indexed instruction.
    pub fn token_len(&self, id: usize) -> Option<usize> {
        (id < self.len()).then(|| self.starts[id + 1] - self.starts[id])
    }

    /// Adds `text` without checking it (seed tasks, `--against` files). Returns its id.
    pub fn insert(&mut self, text: &str) -> Result<usize, NearDupError> {
        let ids = self.intern(text);
        self.push_doc(text, &ids)
    }

    /// Adds every text without checking; returns the number added.
    pub fn extend<I, S>(&mut self, texts: I) -> Result<usize, NearDupError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut n = 0;
        for t in texts {
            self.insert(t.as_ref())?;
            n += 1;
        }
        Ok(n)
    }

    /// Checks `text` against the index without inserting it.
    pub fn check(&self, text: &str) -> Novelty {
        let q = self.lookup(text);
        let top = with_scratch(|sc| self.top_k_exact(&q, sc));
        self.novelty(top, None)
    }

    /// Checks `text` and inserts it when accepted (the reference loop's step).
    pub fn check_and_insert(&mut self, text: &str) -> Result<Novelty, NearDupError> {
        let q = self.intern(text);
        let top = with_scratch(|sc| self.top_k_exact(&q, sc));
        let mut nov = self.novelty(top, None);
        if nov.accepted {
            nov.id = Some(self.push_doc(text, &q)?);
        }
        Ok(nov)
    }

    /// Runs [`NearDupIndex::check_and_insert`] on every text in order and returns the outcomes:
    /// the same decisions and scores as the sequential loop, with the index look-ups of each
    /// chunk of candidates done in parallel on the rayon pool.
    pub fn check_and_insert_batch<S: AsRef<str>>(
        &mut self,
        texts: &[S],
    ) -> Result<Vec<Novelty>, NearDupError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH_CHUNK) {
            let queries: Vec<Vec<u32>> = chunk.iter().map(|t| self.intern(t.as_ref())).collect();
            let this = &*self;
            let from_index: Vec<TopK> = queries
                .par_iter()
                .map(|q| with_scratch(|sc| this.top_k_exact(q, sc)))
                .collect();
            let mut accepted_in_chunk: Vec<(usize, u32)> = Vec::new(); // (position in chunk, doc id)
            for (i, mut top) in from_index.into_iter().enumerate() {
                // The earlier candidates of this chunk that were kept are part of the pool too.
                let q = &queries[i];
                for &(j, id) in &accepted_in_chunk {
                    let other = &queries[j];
                    let (la, lb) = (q.len(), other.len());
                    if la == 0 || lb == 0 {
                        top.push(0.0, id);
                    } else if top.beats(f_from_lcs(la.min(lb), la, lb), id) {
                        top.push(f_from_lcs(lcs_len(q, other), la, lb), id);
                    }
                }
                let mut nov = self.novelty(top, None);
                if nov.accepted {
                    let id = self.push_doc(chunk[i].as_ref(), &queries[i])?;
                    nov.id = Some(id);
                    accepted_in_chunk.push((i, id as u32));
                }
                out.push(nov);
            }
        }
        Ok(out)
    }

    /// The brute-force answer for `text`: F against every indexed document. The oracle for tests
    /// and benchmarks; O(len) LCS computations.
    pub fn check_brute_force(&self, text: &str) -> Novelty {
        let q = self.lookup(text);
        let mut top = TopK::new(self.config.top_k.max(1));
        for d in 0..self.len() {
            let doc = self.doc(d);
            let f = if q.is_empty() || doc.is_empty() {
                0.0
            } else {
                f_from_lcs(lcs_len(&q, doc), q.len(), doc.len())
            };
            top.push(f, d as u32);
        }
        self.novelty(top, None)
    }

    fn novelty(&self, top: TopK, id: Option<usize>) -> Novelty {
        let max = top.items.first().map_or(0.0, |&(f, _)| f);
        let mut top_k: Vec<(usize, f64)> =
            top.items.iter().map(|&(f, d)| (d as usize, f)).collect();
        top_k.truncate(self.config.top_k);
        let mean = if top_k.is_empty() {
            0.0
        } else {
            top_k.iter().map(|&(_, f)| f).sum::<f64>() / top_k.len() as f64
        };
        Novelty {
            accepted: max <= self.config.threshold,
            id,
            max,
            top_k,
            mean,
        }
    }

    fn doc(&self, d: usize) -> &[u32] {
        &self.tokens[self.starts[d]..self.starts[d + 1]]
    }

    /// Token ids of `text`, adding unseen tokens to the vocabulary (with empty postings).
    fn intern(&mut self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let (vocab, postings) = (&mut self.vocab, &mut self.postings);
        self.tokenizer.for_each_token(text, |t| {
            let id = match vocab.get(t) {
                Some(&id) => id,
                None => {
                    let id = postings.len() as u32;
                    vocab.insert(t.into(), id);
                    postings.push(Vec::new());
                    id
                }
            };
            ids.push(id);
        });
        ids
    }

    /// Token ids of `text` without touching the vocabulary; unseen tokens are [`UNKNOWN`].
    fn lookup(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.tokenizer.for_each_token(text, |t| {
            ids.push(self.vocab.get(t).copied().unwrap_or(UNKNOWN))
        });
        ids
    }

    fn push_doc(&mut self, text: &str, ids: &[u32]) -> Result<usize, NearDupError> {
        let d = self.texts.len();
        if d >= u32::MAX as usize {
            return Err(NearDupError::Full(d));
        }
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        for run in sorted.chunk_by(|a, b| a == b) {
            let count = run.len().min(usize::from(u16::MAX)) as u16;
            let len = ids.len().min(usize::from(u16::MAX)) as u16;
            self.postings[run[0] as usize].push(Posting {
                doc: d as u32,
                count,
                len,
            });
        }
        self.texts.push(text.to_owned());
        self.tokens.extend_from_slice(ids);
        self.starts.push(self.tokens.len());
        Ok(d)
    }

    /// The exact top-k (k = max(top_k, 1)) of query `q` (token ids, [`UNKNOWN`] allowed) by
    /// branch and bound; see the module documentation.
    fn top_k_exact(&self, q: &[u32], sc: &mut Scratch) -> TopK {
        let n = self.len();
        let mut top = TopK::new(self.config.top_k.max(1));
        if n == 0 {
            return top;
        }
        let la = q.len();
        sc.ensure(n, self.postings.len());

        // Distinct known query tokens with their multiplicities; slot = index in `distinct`.
        let mut distinct: Vec<(u32, u32)> = Vec::new();
        for &t in q {
            if t == UNKNOWN {
                continue;
            }
            let s = &mut sc.slot_of[t as usize];
            if *s == NO_SLOT {
                *s = distinct.len() as u32;
                distinct.push((t, 1));
            } else {
                distinct[*s as usize].1 += 1;
            }
        }
        let mut pattern = if la <= 64 {
            // One word: a dense per-token mask table, so a document token costs one load.
            for (i, &t) in q.iter().enumerate() {
                if t != UNKNOWN {
                    sc.mask_of[t as usize] |= 1u64 << i;
                }
            }
            Pattern::Word
        } else {
            let slots: Vec<u32> = q
                .iter()
                .map(|&t| {
                    if t == UNKNOWN {
                        NO_SLOT
                    } else {
                        sc.slot_of[t as usize]
                    }
                })
                .collect();
            Pattern::Words(BitPattern::from_slots(&slots, distinct.len()))
        };
        distinct.sort_by_key(|&(t, _)| (self.postings[t as usize].len(), t));
        let mut rest: usize = distinct.iter().map(|&(_, c)| c as usize).sum();

        // Phase 1: visit the rare tokens, and enough others that an unreached document cannot
        // pass the threshold, before scoring anything.
        let cap = (n / 32).max(32);
        let mut next = 0;
        while next < distinct.len() {
            let (t, cq) = distinct[next];
            let df = self.postings[t as usize].len();
            if df > cap && f_from_lcs(rest.min(la), la, rest.min(la)) <= self.config.threshold {
                break;
            }
            for p in &self.postings[t as usize] {
                let d = p.doc as usize;
                if sc.state[d] == UNREACHED {
                    sc.state[d] = REACHED;
                    sc.touched.push(p.doc);
                }
                sc.ov[d] += self.posting_count(p, t).min(cq);
            }
            rest -= cq as usize;
            next += 1;
        }

        // Score reached documents by decreasing overlap (counting sort).
        sc.counts.clear();
        sc.counts.resize(la + 2, 0);
        for &d in &sc.touched {
            sc.counts[sc.ov[d as usize] as usize] += 1;
        }
        let mut acc = 0;
        for c in sc.counts.iter_mut().rev() {
            let here = *c;
            *c = acc;
            acc += here;
        }
        sc.order.clear();
        sc.order.resize(sc.touched.len(), 0);
        for &d in &sc.touched {
            let slot = &mut sc.counts[sc.ov[d as usize] as usize];
            sc.order[*slot as usize] = d;
            *slot += 1;
        }
        let order = std::mem::take(&mut sc.order);
        let mut bucket = usize::MAX;
        for &d in &order {
            let ov = sc.ov[d as usize] as usize;
            if ov != bucket {
                // The best any document with this overlap could score (its length equal to the
                // bound); overlaps only decrease along `order`.
                bucket = ov;
                let x = (ov + rest).min(la);
                if !top.could_enter(f_from_lcs(x, la, x)) {
                    break;
                }
            }
            let lb = self.starts[d as usize + 1] - self.starts[d as usize];
            self.consider(d, lb, ov + rest, la, &mut pattern, &mut top, sc);
        }
        sc.order = order;

        // Phase 2: while a document reached by no visited token could still enter the top-k,
        // visit the next token and bound or score the documents it reaches for the first time.
        while next < distinct.len() {
            let x = rest.min(la);
            if top.is_full() && !top.could_enter(f_from_lcs(x, la, x)) {
                break;
            }
            let (t, cq) = distinct[next];
            rest -= cq as usize;
            next += 1;
            for p in &self.postings[t as usize] {
                let d = p.doc as usize;
                if sc.state[d] != UNREACHED {
                    continue;
                }
                sc.state[d] = REACHED;
                sc.touched.push(p.doc);
                let ov = self.posting_count(p, t).min(cq);
                sc.ov[d] = ov;
                let lb = if p.len == u16::MAX {
                    self.doc(d).len()
                } else {
                    usize::from(p.len)
                };
                self.consider(
                    p.doc,
                    lb,
                    ov as usize + rest,
                    la,
                    &mut pattern,
                    &mut top,
                    sc,
                );
            }
        }

        // Documents sharing no token score exactly 0; they fill the list only when it is short,
        // which means every reached document has been scored and every token visited.
        if !top.is_full() {
            for d in 0..n {
                if sc.state[d] == UNREACHED {
                    top.push(0.0, d as u32);
                    if top.is_full() {
                        break;
                    }
                }
            }
        }

        for &d in &sc.touched {
            sc.ov[d as usize] = 0;
            sc.state[d as usize] = UNREACHED;
        }
        sc.touched.clear();
        for &(t, _) in &distinct {
            sc.slot_of[t as usize] = NO_SLOT;
            sc.mask_of[t as usize] = 0;
        }
        top
    }

    /// Multiplicity of token `t` in the posting's document (counted when the posting saturated).
    #[inline]
    fn posting_count(&self, p: &Posting, t: u32) -> u32 {
        if p.count == u16::MAX {
            self.doc(p.doc as usize).iter().filter(|&&x| x == t).count() as u32
        } else {
            u32::from(p.count)
        }
    }

    /// Scores document `d` (`lb` tokens) unless its bound `min(lcs_bound, la, lb)` cannot enter the top-k.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn consider(
        &self,
        d: u32,
        lb: usize,
        lcs_bound: usize,
        la: usize,
        pattern: &mut Pattern,
        top: &mut TopK,
        sc: &mut Scratch,
    ) {
        let bound = lcs_bound.min(la).min(lb);
        // Division-free rejection: F(bound) is 2·bound/(la+lb) to within a few ulps, far inside
        // the 1e-12 margin of `top.floor`. (A document that passes only by that margin is scored
        // and then refused by `push`, which compares the exact F.) The same test skips computing
        // F for a scored document that cannot enter.
        let sum = (la + lb) as f64;
        if ((2 * bound) as f64) < top.floor * sum {
            return;
        }
        let doc = self.doc(d as usize);
        let lcs = match pattern {
            Pattern::Word => {
                let mut v = !0u64;
                for &t in doc {
                    let m = sc.mask_of[t as usize];
                    v = v.wrapping_add(v & m) | (v & !m);
                }
                (!v & (u64::MAX >> (64 - la))).count_ones() as usize
            }
            Pattern::Words(p) => {
                let slot_of = &sc.slot_of;
                p.lcs_slots(doc.iter().map(|&t| slot_of[t as usize]))
            }
        };
        if ((2 * lcs) as f64) >= top.floor * sum {
            top.push(f_from_lcs(lcs, la, lb), d);
        }
    }
}

/// The query prepared for bit-parallel LCS: in the scratch's dense mask table when it fits one
/// 64-bit word, else a multi-word [`BitPattern`] over query slots.
enum Pattern {
    Word,
    Words(BitPattern),
}

/// Per-document query state: no visited token reached it yet, or reached (then it has been
/// scored or pruned, and stays so).
const UNREACHED: u8 = 0;
const REACHED: u8 = 1;

/// Per-thread working memory of a query, left clean (all zero / [`NO_SLOT`]) after each one.
#[derive(Default)]
struct Scratch {
    /// Overlap on visited tokens, per document.
    ov: Vec<u32>,
    state: Vec<u8>,
    touched: Vec<u32>,
    order: Vec<u32>,
    counts: Vec<u32>,
    /// Query slot per token id.
    slot_of: Vec<u32>,
    /// Query position bits per token id (queries of at most 64 tokens).
    mask_of: Vec<u64>,
    /// Set while a query runs.
    busy: bool,
}

impl Scratch {
    fn ensure(&mut self, docs: usize, vocab: usize) {
        if self.ov.len() < docs {
            self.ov.resize(docs, 0);
            self.state.resize(docs, UNREACHED);
        }
        if self.slot_of.len() < vocab {
            self.slot_of.resize(vocab, NO_SLOT);
            self.mask_of.resize(vocab, 0);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut sc) => {
            // A query that unwound half-way would leave marks behind; never trust them.
            if sc.busy {
                *sc = Scratch::default();
            }
            sc.busy = true;
            let r = f(&mut sc);
            sc.busy = false;
            r
        }
        // Not reachable (queries do not nest); a fresh scratch is correct, only slower.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The k best `(F, id)` so far, ordered by F descending then id ascending.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    items: Vec<(f64, u32)>,
    /// Slightly below the k-th score once full (-1 before): `2·lcs <= floor·(la+lb)` proves
    /// that F cannot reach the k-th score.
    floor: f64,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
            floor: -1.0,
        }
    }

    fn is_full(&self) -> bool {
        self.items.len() >= self.k
    }

    /// Whether `(f, id)` would enter.
    #[inline]
    fn beats(&self, f: f64, id: u32) -> bool {
        match self.items.get(self.k.wrapping_sub(1)) {
            Some(&(lf, lid)) if self.is_full() => f > lf || (f == lf && id < lid),
            _ => true,
        }
    }

    /// Whether some document with score `f` (any id) could enter.
    #[inline]
    fn could_enter(&self, f: f64) -> bool {
        match self.items.last() {
            Some(&(lf, _)) if self.is_full() => f >= lf,
            _ => true,
        }
    }

    fn push(&mut self, f: f64, id: u32) {
        if !self.beats(f, id) {
            return;
        }
        let pos = self
            .items
            .iter()
            .position(|&(g, j)| f > g || (f == g && id < j))
            .unwrap_or(self.items.len());
        self.items.insert(pos, (f, id));
        self.items.truncate(self.k);
        if self.is_full() {
            self.floor = self.items[self.k - 1].0 * (1.0 - 1e-12);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(texts: &[&str]) -> NearDupIndex {
        let mut idx = NearDupIndex::new(NearDupConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        for t in texts {
            idx.insert(t).unwrap_or_else(|e| panic!("{e}"));
        }
        idx
    }

    #[test]
    fn threshold_is_strict() {
        // 7 of 10 tokens in common, same length: F = 2*0.7*0.7/1.4, which is <= 0.7 -> kept.
        let base = "a b c d e f g h i j";
        let mut idx = index(&[base]);
        let n = idx.check("a b c d e f g x y z");
        assert!(n.max <= 0.7 && n.accepted, "{n:?}");
        // 8 of 10: rejected.
        let n = idx
            .check_and_insert("a b c d e f g h y z")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!n.accepted && n.id.is_none());
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn batch_catches_duplicates_within_itself() {
        let mut idx = index(&[]);
        let out = idx
            .check_and_insert_batch(&[
                "write a poem about the sea",
                "write a poem about the sea!",
                "list three fruits",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.iter().map(|n| n.accepted).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(out[1].top_k, vec![(0, 1.0)]);
        assert_eq!(out[2].id, Some(1));
        assert_eq!(idx.text(1), Some("list three fruits"));
    }

    #[test]
    fn empty_index_and_empty_query() {
        let idx = index(&[]);
        let n = idx.check("anything");
        assert!(n.accepted && n.top_k.is_empty() && n.max == 0.0 && n.mean == 0.0);
        let idx = index(&["one two", "three four"]);
        let n = idx.check("!!!");
        assert_eq!(n.top_k, vec![(0, 0.0), (1, 0.0)]);
        assert!(n.accepted);
    }

    #[test]
    fn top_k_order_and_mean() {
        let idx = index(&["x y z", "a b c d", "a b c e", "a q r s"]);
        let n = idx.check("a b c d");
        assert_eq!(n.top_k[0], (1, 1.0));
        assert_eq!(n.top_k[1], (2, 0.75));
        assert_eq!(n.top_k[2], (3, 0.25));
        assert_eq!(n.top_k[3], (0, 0.0));
        assert_eq!(n.mean, (1.0 + 0.75 + 0.25 + 0.0) / 4.0);
        assert!(!n.accepted);
    }

    #[test]
    fn config_validation_and_serde() {
        let bad = NearDupConfig {
            threshold: f64::NAN,
            ..NearDupConfig::default()
        };
        assert!(matches!(
            NearDupIndex::new(bad),
            Err(NearDupError::InvalidThreshold(_))
        ));
        let c: NearDupConfig =
            serde_json::from_str(r#"{"threshold": 0.5, "tokenizer": "unicode"}"#)
                .unwrap_or_default();
        assert_eq!(
            c,
            NearDupConfig {
                threshold: 0.5,
                tokenizer: TokenizerMode::Unicode,
                ..NearDupConfig::default()
            }
        );
        assert!(serde_json::from_str::<NearDupConfig>(r#"{"treshold": 0.5}"#).is_err());
    }

    #[test]
    fn unicode_mode_dedups_chinese() {
        let cfg = NearDupConfig {
            tokenizer: TokenizerMode::Unicode,
            ..NearDupConfig::default()
        };
        let mut idx = NearDupIndex::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        let a = idx
            .check_and_insert("写一首关于春天的诗")
            .unwrap_or_else(|e| panic!("{e}"));
        let b = idx
            .check_and_insert("写一首关于春天的诗。")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.accepted && !b.accepted);
    }

    /// Postings store counts and lengths in 16 bits; longer documents and more repeats than that
    /// are looked up instead, with the same results as the brute force.
    #[test]
    fn saturated_postings_are_exact() {
        let long = "a ".repeat(70_000) + "b c";
        let mut idx = index(&[&long, "a b c d", "b c a"]);
        for q in ["a b c", "a", &"a ".repeat(66_000), "b c d"] {
            assert_eq!(idx.check(q), idx.check_brute_force(q), "{:.20}", q);
        }
        let n = idx
            .check_and_insert(&"a ".repeat(69_999))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!n.accepted && n.top_k[0].0 == 0);
    }

    /// Corpus of near-duplicates over a small vocabulary with a few very frequent tokens.
    fn corpus() -> impl Strategy<Value = Vec<String>> {
        let word = prop_oneof![
            4 => Just("the".to_string()),
            2 => Just("a".to_string()),
            10 => (0u32..30).prop_map(|i| format!("w{i}")),
        ];
        let base = prop::collection::vec(word, 0..20);
        prop::collection::vec(
            (
                base,
                prop::collection::vec((0usize..20, 0u32..30, 0u8..3), 0..4),
                1usize..4,
            ),
            1..40,
        )
        .prop_map(|groups| {
            let mut out = Vec::new();
            for (base, edits, copies) in groups {
                out.push(base.join(" "));
                for c in 0..copies {
                    let mut v = base.clone();
                    for &(pos, w, op) in edits.iter().skip(c % 2) {
                        let p = if v.is_empty() { 0 } else { pos % v.len() };
                        match op {
                            0 if !v.is_empty() => {
                                v.remove(p);
                            }
                            1 => v.insert(p, format!("w{w}")),
                            _ if !v.is_empty() => v[p] = format!("w{w}"),
                            _ => {}
                        }
                    }
                    out.push(v.join(" "));
                }
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(120))]

        /// Every decision and every top-k list equals the brute force, for both the single and
        /// the batch entry points, across thresholds and k.
        #[test]
        fn index_equals_brute_force(texts in corpus(), k in 1usize..12, t in prop_oneof![Just(0.7), Just(0.5), Just(0.3), Just(0.9)]) {
            let cfg = NearDupConfig { threshold: t, top_k: k, ..NearDupConfig::default() };
            let mut fast = NearDupIndex::new(cfg).unwrap_or_else(|e| panic!("{e}"));
            let mut batch = NearDupIndex::new(cfg).unwrap_or_else(|e| panic!("{e}"));
            let batch_out = batch.check_and_insert_batch(&texts).unwrap_or_else(|e| panic!("{e}"));
            for (i, text) in texts.iter().enumerate() {
                let want = fast.check_brute_force(text);
                let got = fast.check(text);
                prop_assert_eq!(&got, &want);
                let ins = fast.check_and_insert(text).unwrap_or_else(|e| panic!("{e}"));
                prop_assert_eq!(ins.accepted, want.accepted);
                prop_assert_eq!(&ins.top_k, &want.top_k);
                prop_assert_eq!(&batch_out[i].top_k, &want.top_k, "batch item {}", i);
                prop_assert_eq!(batch_out[i].accepted, want.accepted);
                prop_assert_eq!(batch_out[i].id, ins.id);
            }
            prop_assert_eq!(fast.len(), batch.len());
        }
    }
}
