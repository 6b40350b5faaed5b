//! The CPU generation engine: the same decoder as [`crate::model::Model`], run on plain `f32`
//! buffers with weights packed once for the matrix product ([`kernels`]), for throughput on the
//! CPU backend, where burn's generic operations spend most of a decode step re-packing weights,
//! copying strided views and allocating.
//!
//! It is built from a loaded burn model ([`CpuModel::from_model`]) and computes exactly the
//! same function, step for step: RMSNorm in f32 (`x / sqrt(mean(x²) + eps) * w`), q/k/v with
//! their biases, Qwen3's per-head q/k norm, rotate-half RoPE with the same f32 tables
//! ([`Rope::inv_freq`], including `dynamic` scaling's per-length base), LogN query scaling,
//! grouped-query attention with per-layer windows, SwiGLU, the final norm and the (tied or
//! untied) head. Only summation order differs from burn's kernels: the golden tests hold it to
//! transformers' logits with the same bound as the burn path.
//!
//! Keys and values live per sequence as `[position][kv_heads * head_dim]` rows per layer
//! ([`SeqKv`]): a decode step appends one row per sequence and never copies a cache; a batch
//! of sequences is just a list of them, so dropping or refilling a slot moves no data.
//! Attention is exact softmax (max-subtracted) over the visible keys of the row's own
//! sequence; the burn path's choice between fused and plain attention does not apply here.

pub mod amx;
pub mod kernels;

/// Test values shared by the kernels' tests.
#[cfg(test)]
mod testing {
    /// `n` values in [-1, 1) from a hash of the index.
    pub fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// `x[rows, inp] · w[out, inp]ᵀ` in f64.
    pub fn reference(x: &[f32], rows: usize, w: &[f32], out: usize, inp: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; rows * out];
        for r in 0..rows {
            for o in 0..out {
                y[r * out + o] = (0..inp)
                    .map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                    .sum();
            }
        }
        y
    }

    /// `v` rounded toward zero to bf16 values.
    pub fn bf16(v: Vec<f32>) -> Vec<f32> {
        v.into_iter()
            .map(|v| f32::from_bits(v.to_bits() & 0xffff_0000))
            .collect()
    }
}

use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::engine::to_f32;
use crate::model::{ForwardError, Model};
use crate::rope::Rope;
use kernels::{attend, matmul, HeadCache, Packed};

/// A model the CPU engine cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuModelError {
    #[error("the model has LoRA adapters attached: merge them first (lora::merge_lora)")]
    Lora,
}

struct Norm {
    weight: Vec<f32>,
    eps: f32,
}

struct Layer {
    input_norm: Norm,
    /// q, k and v stacked: `[(heads + 2 kv_heads) * head_dim, hidden]`.
    qkv: Packed,
    qkv_bias: Option<Vec<f32>>,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    o: Packed,
    o_bias: Option<Vec<f32>>,
    post_norm: Norm,
    /// gate and up stacked: `[2 * intermediate, hidden]`.
    gate_up: Packed,
    gate_up_bias: Option<Vec<f32>>,
    down: Packed,
    down_bias: Option<Vec<f32>>,
    window: Option<usize>,
    logn_train_len: Option<usize>,
}

/// The decoder on packed `f32` weights (see the module doc).
pub struct CpuModel {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    /// `[vocab, hidden]` token embeddings; `None` when tied to the head (read from it).
    embed: Option<Vec<f32>>,
    layers: Vec<Layer>,
    norm: Norm,
    head: Packed,
    rope: Rope,
}

/// One sequence's keys and values: per layer `[len][kv_heads * head_dim]`, keys rotated.
#[derive(Debug, Clone, Default)]
pub struct SeqKv {
    len: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl SeqKv {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `[out, in]` weight and bias of a burn `Linear` (whose parameter is `[in, out]`).
fn linear<B: Backend>(l: &burn::nn::Linear<B>) -> (Vec<f32>, usize, usize, Option<Vec<f32>>) {
    let [inp, out] = l.weight.dims();
    let w = to_f32(l.weight.val().transpose());
    (w, out, inp, l.bias.as_ref().map(|b| to_f32(b.val())))
}

/// Stack linears that read the same input into one packed weight (and one bias, zeros where a
/// part has none; `None` when no part has one).
fn stacked<B: Backend>(parts: &[&burn::nn::Linear<B>]) -> (Packed, Option<Vec<f32>>) {
    let mut w = Vec::new();
    let mut bias = Vec::new();
    let mut any_bias = false;
    let (mut out, mut inp) = (0, 0);
    for l in parts {
        let (lw, lo, li, lb) = linear(l);
        w.extend_from_slice(&lw);
        any_bias |= lb.is_some();
        bias.extend(lb.unwrap_or_else(|| vec![0.0; lo]));
        out += lo;
        inp = li;
    }
    (Packed::new(&w, out, inp), any_bias.then_some(bias))
}

fn norm<B: Backend>(n: &crate::norm::RmsNorm<B>) -> Norm {
    Norm {
        weight: to_f32(n.weight.val()),
        eps: n.eps as f32,
    }
}

impl CpuModel {
    /// Copy and pack the weights of `model` (which stays usable; the copy costs as much memory
    /// as the model's f32 weights).
    pub fn from_model<B: Backend>(model: &Model<B>) -> Result<Self, CpuModelError> {
        let first = model.layers.first();
        let (heads, kv_heads, head_dim) = first.map_or((1, 1, 1), |l| {
            let s = &l.self_attn.settings;
            (s.num_heads, s.num_kv_heads, s.head_dim)
        });
        let [vocab, hidden] = model.embed_tokens.weight.dims();
        let mut layers = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let a = &l.self_attn;
            let m = &l.mlp;
            let adapters = [
                &a.q_lora,
                &a.k_lora,
                &a.v_lora,
                &a.o_lora,
                &m.gate_lora,
                &m.up_lora,
                &m.down_lora,
            ];
            if adapters.iter().any(|x| x.is_some()) {
                return Err(CpuModelError::Lora);
            }
            let (qkv, qkv_bias) = stacked(&[&a.q_proj, &a.k_proj, &a.v_proj]);
            let (o, o_bias) = stacked(&[&a.o_proj]);
            let (gate_up, gate_up_bias) = stacked(&[&m.gate_proj, &m.up_proj]);
            let (down, down_bias) = stacked(&[&m.down_proj]);
            layers.push(Layer {
                input_norm: norm(&l.input_layernorm),
                qkv,
                qkv_bias,
                q_norm: a.q_norm.as_ref().map(norm),
                k_norm: a.k_norm.as_ref().map(norm),
                o,
                o_bias,
                post_norm: norm(&l.post_attention_layernorm),
                gate_up,
                gate_up_bias,
                down,
                down_bias,
                window: a.settings.window,
                logn_train_len: a.settings.logn_train_len,
            });
        }
        let embed_values = to_f32(model.embed_tokens.weight.val());
        let (head, embed) = match &model.lm_head {
            Some(h) => (stacked(&[h]).0, Some(embed_values)),
            None => (Packed::new(&embed_values, vocab, hidden), None),
        };
        Ok(Self {
            hidden,
            heads,
            kv_heads,
            head_dim,
            vocab,
            embed,
            layers,
            norm: norm(&model.norm),
            head,
            rope: model.rope.clone(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Whether prompts may be prefilled in chunks (not with `dynamic` rope scaling, whose
    /// base depends on the length of each forward pass).
    pub fn chunked_prefill(&self) -> bool {
        !self.rope.depends_on_length()
    }

    /// An empty cache.
    pub fn new_seq(&self) -> SeqKv {
        SeqKv {
            len: 0,
            k: vec![Vec::new(); self.layers.len()],
            v: vec![Vec::new(); self.layers.len()],
        }
    }

    /// Check token ids against the vocabulary.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<(), ForwardError> {
        if tokens.is_empty() {
            return Err(ForwardError::Empty);
        }
        match tokens.iter().find(|&&id| id as usize >= self.vocab) {
            Some(&id) => Err(ForwardError::TokenOutOfRange {
                id,
                vocab: self.vocab,
            }),
            None => Ok(()),
        }
    }

    /// Run each sequence's new tokens (appending them to its cache) and return the logits of the
    /// last new token of every sequence, `[seqs, vocab]` flattened.
    pub fn forward(&self, seqs: &mut [(&mut SeqKv, &[u32])]) -> Result<Vec<f32>, ForwardError> {
        let mut logits = Vec::new();
        self.forward_into(seqs, &mut logits)?;
        Ok(logits)
    }

    /// [`CpuModel::forward`] into `logits` (resized; its allocation is reused, so a decode loop
    /// does not map and zero fresh pages for every step's `[seqs, vocab]` logits).
    pub fn forward_into(
        &self,
        seqs: &mut [(&mut SeqKv, &[u32])],
        logits: &mut Vec<f32>,
    ) -> Result<(), ForwardError> {
        self.check(seqs)?;
        let x = self.hidden_states(seqs);
        // The last row of each sequence.
        let mut last = Vec::with_capacity(seqs.len() * self.hidden);
        let mut end = 0;
        for (_, tokens) in seqs.iter() {
            end += tokens.len();
            last.extend_from_slice(&x[(end - 1) * self.hidden..end * self.hidden]);
        }
        rms_norm(&mut last, self.hidden, &self.norm);
        // The product writes every element.
        logits.resize(seqs.len() * self.vocab, 0.0);
        matmul(&last, seqs.len(), &self.head, None, logits);
        Ok(())
    }

    /// Append `tokens` to `seq` without computing logits (a prefill chunk that is not the last).
    pub fn append(&self, seq: &mut SeqKv, tokens: &[u32]) -> Result<(), ForwardError> {
        let mut seqs = [(seq, tokens)];
        self.check(&seqs)?;
        self.hidden_states(&mut seqs);
        Ok(())
    }

    /// Every sequence has tokens inside the vocabulary and a cache of this model's depth.
    fn check(&self, seqs: &[(&mut SeqKv, &[u32])]) -> Result<(), ForwardError> {
        if seqs.is_empty() {
            return Err(ForwardError::Empty);
        }
        for (kv, tokens) in seqs {
            self.check_tokens(tokens)?;
            if kv.k.len() != self.layers.len() {
                return Err(ForwardError::CacheLayers {
                    expected: self.layers.len(),
                    found: kv.k.len(),
                });
            }
        }
        Ok(())
    }

    /// Logits of every position of one sequence, `[ids, vocab]` flattened, one pass without a
    /// cache (as [`Model::logits`]).
    pub fn logits(&self, ids: &[u32]) -> Result<Vec<f32>, ForwardError> {
        self.check_tokens(ids)?;
        let mut kv = self.new_seq();
        let mut x = self.hidden_states(&mut [(&mut kv, ids)]);
        rms_norm(&mut x, self.hidden, &self.norm);
        let mut logits = vec![0.0; ids.len() * self.vocab];
        matmul(&x, ids.len(), &self.head, None, &mut logits);
        Ok(logits)
    }

    /// The hidden states (before the final norm) of every new token, `[rows, hidden]`.
    fn hidden_states(&self, seqs: &mut [(&mut SeqKv, &[u32])]) -> Vec<f32> {
        let (hd, h, g, d) = (self.hidden, self.heads, self.kv_heads, self.head_dim);
        // Per row: (sequence, position, context length for the rope base).
        let mut rows: Vec<(usize, usize, usize)> = Vec::new();
        for (i, (kv, tokens)) in seqs.iter().enumerate() {
            let total = kv.len + tokens.len();
            rows.extend((kv.len..total).map(|p| (i, p, total)));
        }
        let n = rows.len();
        let mut x = vec![0.0f32; n * hd];
        let ids = seqs.iter().flat_map(|(_, t)| t.iter());
        for (dst, &id) in x.chunks_mut(hd).zip(ids) {
            match &self.embed {
                Some(e) => dst.copy_from_slice(&e[id as usize * hd..(id as usize + 1) * hd]),
                None => self.head.row(id as usize, dst),
            }
        }
        let (cos, sin) = self
            .rope
            .cos_sin(rows.iter().map(|&(_, pos, total)| (pos, total)));
        let qkv_width = (h + 2 * g) * d;
        let mut normed = vec![0.0f32; n * hd];
        let mut qkv = vec![0.0f32; n * qkv_width];
        let mut attn = vec![0.0f32; n * h * d];
        let mut proj = vec![0.0f32; n * hd];
        let inter = self.layers.first().map_or(0, |l| l.down.inp);
        let mut gate_up = vec![0.0f32; n * 2 * inter];
        let mut act = vec![0.0f32; n * inter];
        for (li, layer) in self.layers.iter().enumerate() {
            normed.copy_from_slice(&x);
            rms_norm(&mut normed, hd, &layer.input_norm);
            matmul(&normed, n, &layer.qkv, layer.qkv_bias.as_deref(), &mut qkv);
            for (r, row) in qkv.chunks_mut(qkv_width).enumerate() {
                let (q, kv) = row.split_at_mut(h * d);
                let k = &mut kv[..g * d];
                if let Some(qn) = &layer.q_norm {
                    q.chunks_mut(d).for_each(|head| rms_norm(head, d, qn));
                }
                if let Some(kn) = &layer.k_norm {
                    k.chunks_mut(d).for_each(|head| rms_norm(head, d, kn));
                }
                let (c, s) = (&cos[r * d..(r + 1) * d], &sin[r * d..(r + 1) * d]);
                q.chunks_mut(d).for_each(|head| rotate(head, c, s));
                k.chunks_mut(d).for_each(|head| rotate(head, c, s));
                if let Some(train) = layer.logn_train_len {
                    let f = crate::attention::logn_factors(train, rows[r].1, 1)[0];
                    if f != 1.0 {
                        q.iter_mut().for_each(|v| *v *= f);
                    }
                }
            }
            // Append every new key and value to its sequence's cache, in order.
            for (r, row) in qkv.chunks(qkv_width).enumerate() {
                let kv = &mut *seqs[rows[r].0].0;
                kv.k[li].extend_from_slice(&row[h * d..(h + g) * d]);
                kv.v[li].extend_from_slice(&row[(h + g) * d..]);
            }
            let caches: Vec<(&[f32], &[f32])> = seqs
                .iter()
                .map(|(kv, _)| (&kv.k[li][..], &kv.v[li][..]))
                .collect();
            let scale = 1.0 / (d as f32).sqrt();
            let rep = h / g;
            attn.par_chunks_mut(d)
                .enumerate()
                .for_each_init(Vec::new, |scores, (i, out)| {
                    let (r, head) = (i / h, i % h);
                    let (seq, pos, _) = rows[r];
                    let (k, v) = caches[seq];
                    let q = &qkv[r * qkv_width + head * d..r * qkv_width + (head + 1) * d];
                    let first = layer.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                    let cache = HeadCache {
                        k,
                        v,
                        stride: g * d,
                        offset: head / rep * d,
                        keys: first..pos + 1,
                    };
                    attend(q, &cache, scale, scores, out);
                });
            matmul(&attn, n, &layer.o, layer.o_bias.as_deref(), &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            normed.copy_from_slice(&x);
            rms_norm(&mut normed, hd, &layer.post_norm);
            matmul(
                &normed,
                n,
                &layer.gate_up,
                layer.gate_up_bias.as_deref(),
                &mut gate_up,
            );
            for (gu, a) in gate_up.chunks(2 * inter).zip(act.chunks_mut(inter)) {
                let (gate, up) = gu.split_at(inter);
                for ((a, &gv), &uv) in a.iter_mut().zip(gate).zip(up) {
                    *a = gv / (1.0 + (-gv).exp()) * uv;
                }
            }
            matmul(&act, n, &layer.down, layer.down_bias.as_deref(), &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for (kv, tokens) in seqs.iter_mut() {
            kv.len += tokens.len();
        }
        x
    }
}

/// RMSNorm over each `dim`-long row of `x`, in place.
fn rms_norm(x: &mut [f32], dim: usize, n: &Norm) {
    for row in x.chunks_mut(dim) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let denom = (mean + n.eps).sqrt();
        for (v, &w) in row.iter_mut().zip(&n.weight) {
            *v = *v / denom * w;
        }
    }
}

/// Rotate-half RoPE on one head: `x * cos + [-x2, x1] * sin`.
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos[i] + -b * sin[i];
        x[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}
