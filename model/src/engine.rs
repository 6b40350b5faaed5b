//! Batched generation with continuous refill: many requests of different lengths decode
//! together; when a sequence finishes, its row leaves the batch and the next waiting request is
//! prefilled into it, so the batch stays full.
//!
//! Each request is prefilled alone; its `n` samples share that prefill and decode as `n` rows.
//! Sample `i` of a request draws from the random stream seeded with `seed + i`, so output
//! depends only on the request, never on its batch neighbours.
//!
//! Prefill runs in chunks of [`PREFILL_CHUNK`] tokens at fixed offsets (0, 64, 128, ...), and the
//! keys and values of a chunk-aligned prompt prefix that several requests of the job share are
//! computed once and reused: Self-Instruct's classification and instance prompts are one long
//! few-shot block plus a short task, so most of their prefill is shared. Because the chunk
//! boundaries never depend on the other requests, a prompt computes exactly the same numbers
//! whether its prefix came from the cache or not. (Not with `dynamic` rope scaling, whose base
//! depends on the length of each forward pass: such models prefill in one pass, uncached.)
//! Where the model computes every row independently of how a prompt is cut
//! ([`Runner::splits_anywhere`]: the CPU engine), a prompt is also cut where it stops sharing a
//! prefix with another request of the job, so prefixes of any length are computed once (the
//! chat template and system message that every chat prompt starts with, for one).

use std::collections::{HashMap, VecDeque};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::batch::SlotCache;
use crate::cache::KvCache;
use crate::cpu::{CpuModel, SeqKv};
use crate::generate::FinishReason;
use crate::model::{ForwardError, Model};
use crate::sampler::{Sampler, SamplingError, SamplingParams};

/// One prompt to continue.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// Token ids that end a sequence (EOS); the stopping token is kept in `tokens`.
    pub stop_token_ids: Vec<u32>,
    /// Strings that end a sequence; checked on the decoded text, which is cut before the match.
    pub stop: Vec<String>,
    /// Number of samples to draw (each with seed `sampling.seed + i`).
    pub n: usize,
}

impl GenerationRequest {
    pub fn new(prompt: Vec<u32>, max_new_tokens: usize) -> Self {
        Self {
            prompt,
            sampling: SamplingParams::default(),
            max_new_tokens,
            stop_token_ids: Vec::new(),
            stop: Vec::new(),
            n: 1,
        }
    }
}

/// One finished sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Generated token ids only.
    pub tokens: Vec<u32>,
    /// Decoded text, cut before the stop string (only when a decoder was given).
    pub text: Option<String>,
    pub finish_reason: FinishReason,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("request {request}: {source}")]
    Sampling {
        request: usize,
        source: SamplingError,
    },
    #[error("request {request}: {source}")]
    Forward {
        request: usize,
        source: ForwardError,
    },
    #[error("request {request}: stop strings need a detokenizer")]
    NoDecoder { request: usize },
    #[error("max_batch must be at least 1")]
    BatchSize,
}

/// Turns generated ids into text (for stop strings and `Completion::text`).
pub type Decoder<'a> = &'a dyn Fn(&[u32]) -> String;

struct Row {
    request: usize,
    sample: usize,
    sampler: Sampler,
    tokens: Vec<u32>,
}

/// Generate for every request; returns, per request in input order, its `n` completions.
pub fn generate<R: Runner>(
    model: &R,
    requests: &[GenerationRequest],
    max_batch: usize,
    decoder: Option<Decoder<'_>>,
) -> Result<Vec<Vec<Completion>>, GenerateError> {
    if max_batch == 0 {
        return Err(GenerateError::BatchSize);
    }
    for (i, r) in requests.iter().enumerate() {
        r.sampling
            .validate()
            .map_err(|source| GenerateError::Sampling { request: i, source })?;
        if !r.stop.is_empty() && decoder.is_none() {
            return Err(GenerateError::NoDecoder { request: i });
        }
        // Surface bad prompts before any work is done.
        model
            .check_prompt(&r.prompt)
            .map_err(|source| GenerateError::Forward { request: i, source })?;
    }
    let mut results: Vec<Vec<Option<Completion>>> =
        requests.iter().map(|r| vec![None; r.n]).collect();
    // (request, first sample not yet started)
    let mut waiting: VecDeque<(usize, usize)> = (0..requests.len()).map(|i| (i, 0)).collect();
    let mut prefixes = PrefixCache::new(model, requests);
    let mut prefilled: Option<(usize, R::Seq, Vec<f32>)> = None;
    let mut rows: Vec<Row> = Vec::new();
    let mut cache = model.new_slots();
    let mut next_tokens: Vec<u32> = Vec::new();
    // Logits of a decode step, `[rows, vocab]`: one allocation for the whole job.
    let mut flat: Vec<f32> = Vec::new();

    loop {
        // Refill: start waiting samples while there is room.
        while rows.len() < max_batch {
            let Some(&(req, first)) = waiting.front() else {
                break;
            };
            let r = &requests[req];
            if first >= r.n {
                waiting.pop_front();
                continue;
            }
            let fwd = |source| GenerateError::Forward {
                request: req,
                source,
            };
            if prefilled.as_ref().is_none_or(|p| p.0 != req) {
                let (kv, logits) = prefixes.prefill(model, &r.prompt).map_err(fwd)?;
                prefilled = Some((req, kv, logits));
            }
            let Some((_, kv, logits)) = prefilled.as_ref() else {
                break;
            };
            let take = (r.n - first).min(max_batch - rows.len());
            let mut pushed = 0;
            for (sample, slot) in results[req].iter_mut().enumerate().skip(first).take(take) {
                let mut sampler = Sampler::new(SamplingParams {
                    seed: r.sampling.seed.wrapping_add(sample as u64),
                    ..r.sampling.clone()
                });
                if r.max_new_tokens == 0 {
                    *slot = Some(finish(Vec::new(), FinishReason::Length, decoder));
                    continue;
                }
                let token = sampler.sample(&mut logits.clone());
                let row = Row {
                    request: req,
                    sample,
                    sampler,
                    tokens: vec![token],
                };
                match check_done(r, &row.tokens, decoder) {
                    Some(done) => *slot = Some(done),
                    None => {
                        rows.push(row);
                        next_tokens.push(token);
                        pushed += 1;
                    }
                }
            }
            if pushed > 0 {
                model.push(&mut cache, kv, pushed).map_err(fwd)?;
            }
            if let Some(w) = waiting.front_mut() {
                w.1 = first + take;
            }
        }
        if rows.is_empty() {
            break;
        }
        model
            .decode(&mut cache, &next_tokens, &mut flat)
            .map_err(|source| GenerateError::Forward {
                request: rows[0].request,
                source,
            })?;
        let vocab = model.vocab_size();
        let n_rows = flat.len() / vocab;
        let mut keep = Vec::with_capacity(n_rows);
        let mut still = Vec::with_capacity(n_rows);
        next_tokens.clear();
        // Each row samples from its own slice of this step's logits, in place.
        let per_row = flat.chunks_mut(vocab);
        for (i, (mut row, l)) in rows.into_iter().zip(per_row).enumerate() {
            let token = row.sampler.sample(l);
            row.tokens.push(token);
            match check_done(&requests[row.request], &row.tokens, decoder) {
                Some(done) => results[row.request][row.sample] = Some(done),
                None => {
                    keep.push(i);
                    next_tokens.push(token);
                    still.push(row);
                }
            }
        }
        rows = still;
        model.retain(&mut cache, &keep);
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.unwrap_or_else(|| finish(Vec::new(), FinishReason::Length, None)))
                .collect()
        })
        .collect())
}

/// `Some(completion)` when `tokens` (generated so far) end the sequence.
fn check_done(
    r: &GenerationRequest,
    tokens: &[u32],
    decoder: Option<Decoder<'_>>,
) -> Option<Completion> {
    let last = *tokens.last()?;
    if r.stop_token_ids.contains(&last) {
        return Some(finish(tokens.to_vec(), FinishReason::Stop, decoder));
    }
    if let (false, Some(decode)) = (r.stop.is_empty(), decoder) {
        let text = decode(tokens);
        if let Some(cut) = r
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            return Some(Completion {
                tokens: tokens.to_vec(),
                text: Some(text[..cut].to_string()),
                finish_reason: FinishReason::Stop,
            });
        }
    }
    if tokens.len() >= r.max_new_tokens {
        return Some(finish(tokens.to_vec(), FinishReason::Length, decoder));
    }
    None
}

fn finish(
    tokens: Vec<u32>,
    finish_reason: FinishReason,
    decoder: Option<Decoder<'_>>,
) -> Completion {
    let text = decoder.map(|d| d(&tokens));
    Completion {
        tokens,
        text,
        finish_reason,
    }
}

/// A tensor's values as `f32` (converted from its dtype when it is not f32).
pub(crate) fn to_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    let data = t.into_data();
    match data.to_vec::<f32>() {
        Ok(v) => v,
        Err(_) => data.convert::<f32>().to_vec::<f32>().unwrap_or_default(),
    }
}

/// Prefill chunk length (tokens); prompt prefixes are shared at multiples of it.
pub const PREFILL_CHUNK: usize = 64;

/// Keys and values of prompt prefixes that more than one request of a job starts with (only
/// those are kept, so memory stays bounded by what is actually shared). Prefixes end at chunk
/// boundaries, or, for a model that [`Runner::splits_anywhere`], wherever a prompt stops
/// sharing tokens with another prompt of the job.
struct PrefixCache<S> {
    /// How many requests start with each prefix that ends at one of their cut points.
    shared: HashMap<Vec<u32>, usize>,
    cached: HashMap<Vec<u32>, S>,
    /// Each prompt's cut points inside it, ascending: chunk ends, or where it stops sharing a
    /// prefix with another prompt when the model [`Runner::splits_anywhere`].
    cuts: HashMap<Vec<u32>, Vec<usize>>,
    chunked: bool,
}

impl<S: Clone> PrefixCache<S> {
    fn new<R: Runner<Seq = S>>(model: &R, requests: &[GenerationRequest]) -> Self {
        let chunked = model.chunked_prefill();
        let mut shared: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut cuts: HashMap<Vec<u32>, Vec<usize>> = HashMap::new();
        if chunked {
            let prompts: Vec<&[u32]> = requests.iter().map(|r| &r.prompt[..]).collect();
            // Cut where prefixes are shared when any cut gives the same numbers, else at the
            // fixed chunk boundaries.
            let cut_points: Vec<Vec<usize>> = if model.splits_anywhere() {
                common_prefixes(&prompts)
            } else {
                prompts.iter().map(|p| chunk_ends(p.len())).collect()
            };
            for (prompt, ends) in prompts.iter().zip(cut_points) {
                // A prompt equal to another (or a prefix of one) shares all but its last token,
                // which yields the logits.
                let mut ends: Vec<usize> = ends
                    .into_iter()
                    .map(|end| end.min(prompt.len().saturating_sub(1)))
                    .filter(|&end| end > 0)
                    .collect();
                ends.dedup();
                for &end in &ends {
                    *shared.entry(prompt[..end].to_vec()).or_default() += 1;
                }
                cuts.insert(prompt.to_vec(), ends);
            }
            shared.retain(|_, n| *n > 1);
        }
        Self {
            shared,
            cached: HashMap::new(),
            cuts,
            chunked,
        }
    }

    /// The cache after `prompt` and the logits of its last position.
    fn prefill<R: Runner<Seq = S>>(
        &mut self,
        model: &R,
        prompt: &[u32],
    ) -> Result<(S, Vec<f32>), ForwardError> {
        let mut kv = model.new_seq();
        if !self.chunked {
            let logits = model.extend(&mut kv, prompt, true)?;
            return Ok((kv, logits));
        }
        let ends = match self.cuts.get(prompt) {
            Some(ends) => ends.clone(),
            None => chunk_ends(prompt.len()),
        };
        // Resume after the longest cached prefix, if any.
        let start = match ends
            .iter()
            .rev()
            .find_map(|&end| Some((end, self.cached.get(&prompt[..end])?)))
        {
            Some((end, hit)) => {
                kv = hit.clone();
                end
            }
            None => 0,
        };
        let mut done = start;
        for end in ends.into_iter().filter(|&end| end > start) {
            model.extend(&mut kv, &prompt[done..end], false)?;
            done = end;
            if self.shared.contains_key(&prompt[..end]) {
                self.cached.insert(prompt[..end].to_vec(), kv.clone());
            }
        }
        let logits = model.extend(&mut kv, &prompt[done..], true)?;
        Ok((kv, logits))
    }
}

/// For each prompt, the lengths of the prefixes it shares with the other prompts (the longest
/// common prefix with each of them, distinct values): sorted, neighbours share the most, and
/// the common prefix with a prompt further away is the minimum over the steps to it.
fn common_prefixes(prompts: &[&[u32]]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&a, &b| prompts[a].cmp(prompts[b]));
    // lcp[i]: common prefix of sorted prompts i and i + 1.
    let lcp: Vec<usize> = order
        .windows(2)
        .map(|w| {
            let (a, b) = (prompts[w[0]], prompts[w[1]]);
            a.iter().zip(b).take_while(|(x, y)| x == y).count()
        })
        .collect();
    let mut out = vec![Vec::new(); prompts.len()];
    for (pos, &p) in order.iter().enumerate() {
        let mut lens = Vec::new();
        let mut run = usize::MAX;
        for &l in lcp[pos..].iter() {
            run = run.min(l);
            if run == 0 {
                break;
            }
            lens.push(run);
        }
        run = usize::MAX;
        for &l in lcp[..pos].iter().rev() {
            run = run.min(l);
            if run == 0 {
                break;
            }
            lens.push(run);
        }
        lens.sort_unstable();
        lens.dedup();
        out[p] = lens;
    }
    out
}

/// What the engine needs from a model: prefill one sequence, then decode many sequences one
/// token at a time in slots. Implemented by the burn [`Model`] (any backend) and by the CPU
/// engine's [`CpuModel`].
pub trait Runner {
    /// One sequence's cache.
    type Seq: Clone;
    /// The caches of the sequences decoding together.
    type Slots;
    fn vocab_size(&self) -> usize;
    /// Whether prompts may be prefilled in fixed chunks (and their prefixes shared).
    fn chunked_prefill(&self) -> bool;
    /// Whether a prompt prefilled in pieces cut anywhere gives the same numbers as in chunks
    /// (every row computed on its own), so prefixes may be shared at any length.
    fn splits_anywhere(&self) -> bool {
        false
    }
    /// An error for a prompt the model cannot run (empty, ids outside the vocabulary).
    fn check_prompt(&self, prompt: &[u32]) -> Result<(), ForwardError>;
    fn new_seq(&self) -> Self::Seq;
    /// Append `tokens` to `seq`; the logits of the last one (`[vocab]`) when `logits`, else empty.
    fn extend(
        &self,
        seq: &mut Self::Seq,
        tokens: &[u32],
        logits: bool,
    ) -> Result<Vec<f32>, ForwardError>;
    fn new_slots(&self) -> Self::Slots;
    /// Append `copies` slots continuing `seq`.
    fn push(
        &self,
        slots: &mut Self::Slots,
        seq: &Self::Seq,
        copies: usize,
    ) -> Result<(), ForwardError>;
    /// Keep only the slots in `keep` (ascending), in that order.
    fn retain(&self, slots: &mut Self::Slots, keep: &[usize]);
    /// One token per slot; logits `[slots, vocab]` flattened into `logits` (its allocation is
    /// reused from step to step).
    fn decode(
        &self,
        slots: &mut Self::Slots,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), ForwardError>;
}

impl<B: Backend> Runner for Model<B> {
    type Seq = KvCache<B>;
    type Slots = SlotCache<B>;

    fn vocab_size(&self) -> usize {
        Model::vocab_size(self)
    }

    fn chunked_prefill(&self) -> bool {
        !self.rope.depends_on_length()
    }

    fn check_prompt(&self, prompt: &[u32]) -> Result<(), ForwardError> {
        self.tokens(&[prompt]).map(|_| ())
    }

    fn new_seq(&self) -> KvCache<B> {
        self.new_cache()
    }

    fn extend(
        &self,
        seq: &mut KvCache<B>,
        tokens: &[u32],
        logits: bool,
    ) -> Result<Vec<f32>, ForwardError> {
        let input = self.tokens(&[tokens])?;
        if logits {
            Ok(to_f32(self.forward_last(input, seq)?))
        } else {
            self.forward_hidden(input, seq)?;
            Ok(Vec::new())
        }
    }

    fn new_slots(&self) -> SlotCache<B> {
        SlotCache::new()
    }

    fn push(
        &self,
        slots: &mut SlotCache<B>,
        seq: &KvCache<B>,
        copies: usize,
    ) -> Result<(), ForwardError> {
        slots.push(seq, copies)
    }

    fn retain(&self, slots: &mut SlotCache<B>, keep: &[usize]) {
        slots.retain(keep);
    }

    fn decode(
        &self,
        slots: &mut SlotCache<B>,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), ForwardError> {
        *logits = to_f32(self.forward_slots(tokens, slots)?);
        Ok(())
    }
}

impl Runner for CpuModel {
    type Seq = SeqKv;
    type Slots = Vec<SeqKv>;

    fn vocab_size(&self) -> usize {
        CpuModel::vocab_size(self)
    }

    fn chunked_prefill(&self) -> bool {
        CpuModel::chunked_prefill(self)
    }

    fn splits_anywhere(&self) -> bool {
        // Each row's products, attention and norms run the same operations in the same order
        // whatever rows share its forward pass.
        CpuModel::chunked_prefill(self)
    }

    fn check_prompt(&self, prompt: &[u32]) -> Result<(), ForwardError> {
        self.check_tokens(prompt)
    }

    fn new_seq(&self) -> SeqKv {
        CpuModel::new_seq(self)
    }

    fn extend(
        &self,
        seq: &mut SeqKv,
        tokens: &[u32],
        logits: bool,
    ) -> Result<Vec<f32>, ForwardError> {
        if logits {
            self.forward(&mut [(seq, tokens)])
        } else {
            self.append(seq, tokens)?;
            Ok(Vec::new())
        }
    }

    fn new_slots(&self) -> Vec<SeqKv> {
        Vec::new()
    }

    fn push(&self, slots: &mut Vec<SeqKv>, seq: &SeqKv, copies: usize) -> Result<(), ForwardError> {
        slots.extend(std::iter::repeat_n(seq, copies).cloned());
        Ok(())
    }

    fn retain(&self, slots: &mut Vec<SeqKv>, keep: &[usize]) {
        let mut i = 0;
        let mut next = keep.iter().peekable();
        slots.retain(|_| {
            let kept = next.peek() == Some(&&i);
            if kept {
                next.next();
            }
            i += 1;
            kept
        });
    }

    fn decode(
        &self,
        slots: &mut Vec<SeqKv>,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), ForwardError> {
        if tokens.len() != slots.len() {
            return Err(ForwardError::Ragged {
                first: slots.len(),
                other: tokens.len(),
            });
        }
        let mut seqs: Vec<(&mut SeqKv, &[u32])> = slots
            .iter_mut()
            .zip(tokens)
            .map(|(kv, t)| (kv, std::slice::from_ref(t)))
            .collect();
        self.forward_into(&mut seqs, logits)
    }
}

/// Chunk boundaries strictly inside a prompt of `len` tokens (the last chunk, which yields the
/// logits, always runs).
fn chunk_ends(len: usize) -> Vec<usize> {
    (1..)
        .map(|i| i * PREFILL_CHUNK)
        .take_while(|&end| end < len)
        .collect()
}

#[cfg(test)]
mod prefix_tests {
    use super::common_prefixes;

    /// Brute force: the distinct non-zero longest common prefixes with every other prompt.
    fn brute(prompts: &[&[u32]]) -> Vec<Vec<usize>> {
        (0..prompts.len())
            .map(|i| {
                let mut lens: Vec<usize> = (0..prompts.len())
                    .filter(|&j| j != i)
                    .map(|j| {
                        let (a, b) = (prompts[i], prompts[j]);
                        a.iter().zip(b).take_while(|(x, y)| x == y).count()
                    })
                    .filter(|&l| l > 0)
                    .collect();
                lens.sort_unstable();
                lens.dedup();
                lens
            })
            .collect()
    }

    #[test]
    fn common_prefixes_equal_the_pairwise_definition() {
        let cases: Vec<Vec<Vec<u32>>> = vec![
            vec![],
            vec![vec![1, 2, 3]],
            vec![vec![1, 2, 3], vec![1, 2, 3]],
            vec![
                vec![1, 2, 3, 4],
                vec![1, 2],
                vec![1, 2, 5],
                vec![9],
                vec![1, 7],
            ],
            // A pseudo-random mix of shared heads and tails.
            (0..40u32)
                .map(|i| {
                    let head = (i % 4) as usize * 3;
                    let mut p: Vec<u32> = (0..head as u32).collect();
                    p.extend((0..(i % 5)).map(|j| (i * 7 + j) % 3));
                    p
                })
                .collect(),
        ];
        for prompts in &cases {
            let refs: Vec<&[u32]> = prompts.iter().map(|p| &p[..]).collect();
            assert_eq!(common_prefixes(&refs), brute(&refs), "{prompts:?}");
        }
    }
}
