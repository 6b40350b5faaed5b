//! One decode step for many independent sequences at once ("slots"), each at its own position.
//!
//! The slot cache keeps every row right-padded to a common capacity: row `r` holds its keys
//! and values at columns `0..len[r]`, zeros beyond. A step writes each row's new key at column
//! `len[r]` (in place), and masks columns past the row's position (and outside its window). Masked columns get weight exactly 0, so a sequence decodes
//! the same alone or in a batch, up to summation order.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};

use crate::attention::logn_factors;
use crate::cache::{KvCache, LayerKv};
use crate::model::{ForwardError, Model};

/// Keys and values of the sequences being decoded together.
#[derive(Debug, Clone)]
pub struct SlotCache<B: Backend> {
    /// Per layer, `[rows, kv_heads, capacity, head_dim]`.
    layers: Vec<LayerKv<B>>,
    lens: Vec<usize>,
}

impl<B: Backend> SlotCache<B> {
    pub fn new() -> Self {
        Self {
            layers: Vec::new(),
            lens: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// Positions cached per row.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    fn capacity(&self) -> usize {
        self.layers.first().map_or(0, |l| l.k.dims()[2])
    }

    /// Pad every layer along the position axis to at least `needed` columns (doubling).
    fn reserve(&mut self, needed: usize) {
        let cap = self.capacity();
        if needed <= cap {
            return;
        }
        let new_cap = needed.max(cap * 2).max(16);
        for l in &mut self.layers {
            l.k = pad_to(l.k.clone(), new_cap);
            l.v = pad_to(l.v.clone(), new_cap);
        }
    }

    /// Append `copies` rows that continue the single sequence cached in `prefill`.
    pub fn push(&mut self, prefill: &KvCache<B>, copies: usize) -> Result<(), ForwardError> {
        if !self.layers.is_empty() && prefill.num_layers() != self.layers.len() {
            return Err(ForwardError::CacheLayers {
                expected: self.layers.len(),
                found: prefill.num_layers(),
            });
        }
        let len = prefill.len();
        self.reserve(len + 1);
        let cap = if self.layers.is_empty() {
            (len + 1).max(16)
        } else {
            self.capacity()
        };
        let fresh = self.layers.is_empty();
        for i in 0..prefill.num_layers() {
            let kv = prefill.layer(i).ok_or(ForwardError::Empty)?;
            let k = Tensor::cat(vec![pad_to(kv.k.clone(), cap); copies], 0);
            let v = Tensor::cat(vec![pad_to(kv.v.clone(), cap); copies], 0);
            if fresh {
                self.layers.push(LayerKv { k, v });
            } else {
                let l = &mut self.layers[i];
                l.k = Tensor::cat(vec![l.k.clone(), k], 0);
                l.v = Tensor::cat(vec![l.v.clone(), v], 0);
            }
        }
        self.lens.extend(std::iter::repeat_n(len, copies));
        Ok(())
    }

    /// Keep only the rows in `keep` (ascending row indices), in that order.
    pub fn retain(&mut self, keep: &[usize]) {
        if keep.len() == self.lens.len() {
            return;
        }
        self.lens = keep.iter().map(|&r| self.lens[r]).collect();
        if keep.is_empty() {
            self.layers.clear();
            return;
        }
        let device = self.layers[0].k.device();
        let idx: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
        let idx = Tensor::<B, 1, burn::tensor::Int>::from_data(
            TensorData::new(idx, [keep.len()]),
            &device,
        );
        for l in &mut self.layers {
            l.k = l.k.clone().select(0, idx.clone());
            l.v = l.v.clone().select(0, idx.clone());
        }
    }
}

impl<B: Backend> Default for SlotCache<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// Zero-pad `[rows, heads, t, d]` to `[rows, heads, cap, d]`.
fn pad_to<B: Backend>(x: Tensor<B, 4>, cap: usize) -> Tensor<B, 4> {
    let [r, h, t, d] = x.dims();
    if t >= cap {
        return x;
    }
    let zeros = Tensor::zeros([r, h, cap - t, d], &x.device());
    Tensor::cat(vec![x, zeros], 2)
}

impl<B: Backend> Model<B> {
    /// One token per row of `cache`: `tokens[r]` at position `cache.lens()[r]`. Returns logits
    /// `[rows, vocab]`; every row's cache grows by one.
    pub fn forward_slots(
        &self,
        tokens: &[u32],
        cache: &mut SlotCache<B>,
    ) -> Result<Tensor<B, 2>, ForwardError> {
        let rows = cache.rows();
        if tokens.len() != rows {
            return Err(ForwardError::Ragged {
                first: rows,
                other: tokens.len(),
            });
        }
        if rows == 0 {
            return Err(ForwardError::Empty);
        }
        let ids: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        let input = self.tokens(&ids)?;
        let device = input.device();
        let positions: Vec<usize> = cache.lens.clone();
        let max_pos = positions.iter().copied().max().unwrap_or(0);
        cache.reserve(max_pos + 1);
        let cap = cache.capacity();

        let rope = self.rope.tables_rows::<B>(&positions, &device);
        if cache.layers.len() != self.layers.len() {
            return Err(ForwardError::CacheLayers {
                expected: self.layers.len(),
                found: cache.layers.len(),
            });
        }
        let mut masks: Vec<(Option<usize>, Tensor<B, 4, Bool>)> = Vec::new();
        let mut x = self.embed_tokens.forward(input);
        // The cache tensors are owned here (not shared), so each row's new key and value is
        // written in place, without copying the cache.
        let cached = std::mem::take(&mut cache.layers);
        for (layer, kv) in self.layers.iter().zip(cached) {
            let settings = &layer.self_attn.settings;
            let mask = match masks.iter().find(|(w, _)| *w == settings.window) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = slot_mask::<B>(&positions, cap, settings.window, &device);
                    masks.push((settings.window, m.clone()));
                    m
                }
            };
            let logn = settings.logn_train_len.map(|n| {
                let f: Vec<f32> = positions
                    .iter()
                    .map(|&p| logn_factors(n, p, 1)[0])
                    .collect();
                Tensor::<B, 4>::from_data(TensorData::new(f, [rows, 1, 1, 1]), &device)
            });
            let h = layer.input_layernorm.forward(x.clone());
            // q: [rows, heads, 1, d]; k, v: [rows, kv_heads, 1, d]
            let (mut q, k, v) = layer.self_attn.project(h, &rope);
            if let Some(f) = logn {
                q = q * f;
            }
            let (kc, vc) = write_columns(kv, k, v, &positions);
            let attn = layer.self_attn.attend(q, kc.clone(), vc.clone(), mask);
            cache.layers.push(LayerKv { k: kc, v: vc });
            let y = x + attn;
            x = y.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(y));
        }
        for l in &mut cache.lens {
            *l += 1;
        }
        let logits = self.head(self.norm.forward(x));
        let [_, _, vocab] = logits.dims();
        Ok(logits.reshape([rows, vocab]))
    }
}

/// Write row `r`'s new key and value (`[rows, kv_heads, 1, d]`) at column `positions[r]` of the
/// cache (`[rows, kv_heads, cap, d]`). The cache is moved in, so the writes happen in place.
fn write_columns<B: Backend>(
    cache: LayerKv<B>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    positions: &[usize],
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let LayerKv {
        k: mut kc,
        v: mut vc,
    } = cache;
    let [_, kvh, _, d] = k.dims();
    for (r, &p) in positions.iter().enumerate() {
        let at = [r..r + 1, 0..kvh, p..p + 1, 0..d];
        kc = kc.slice_assign(at.clone(), k.clone().slice([r..r + 1, 0..kvh, 0..1, 0..d]));
        vc = vc.slice_assign(at, v.clone().slice([r..r + 1, 0..kvh, 0..1, 0..d]));
    }
    (kc, vc)
}

/// `[rows, 1, 1, cap]`, `true` = hidden: columns after the row's position or outside its window.
fn slot_mask<B: Backend>(
    positions: &[usize],
    cap: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let mut m = Vec::with_capacity(positions.len() * cap);
    for &p in positions {
        for c in 0..cap {
            m.push(c > p || window.is_some_and(|w| p - c.min(p) >= w));
        }
    }
    Tensor::from_data(TensorData::new(m, [positions.len(), 1, 1, cap]), device)
}
