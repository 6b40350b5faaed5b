//! Causal self-attention: bias only on q/k/v (Qwen2), optional per-head q/k RMSNorm (Qwen3),
//! grouped-query attention, an optional sliding window, LogN query scaling past the training
//! length (Qwen-1's `use_logn_attn`), and two kernels chosen at config time: the plain
//! masked-softmax reference and burn's fused `attention` op.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

use crate::cache::LayerKv;
use crate::config::AttentionImpl;
use crate::lora::{project, Lora};
use crate::norm::RmsNorm;
use crate::rope::{apply_rotary, RopeTables};

/// Shape and behaviour of one attention layer (nothing here is a weight).
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionSettings {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// A query at position `q` sees keys `k` with `q - window < k <= q`; `None` = all `k <= q`.
    pub window: Option<usize>,
    /// LogN scaling's training length: queries at 0-based position `p` with `p + 1 > n` are
    /// multiplied by `ln(p + 1) / ln(n)`.
    pub logn_train_len: Option<usize>,
    pub implementation: AttentionImpl,
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[hidden, heads * head_dim]`, bias in Qwen2.
    pub q_proj: Linear<B>,
    /// `[hidden, kv_heads * head_dim]`
    pub k_proj: Linear<B>,
    /// `[hidden, kv_heads * head_dim]`
    pub v_proj: Linear<B>,
    /// `[heads * head_dim, hidden]`, no bias in Qwen2.
    pub o_proj: Linear<B>,
    /// Qwen3: RMSNorm over each query head, `[head_dim]`.
    pub q_norm: Option<RmsNorm<B>>,
    /// Qwen3: RMSNorm over each key head, `[head_dim]`.
    pub k_norm: Option<RmsNorm<B>>,
    /// LoRA adapters beside the projections (`None` unless fine-tuning with LoRA).
    pub q_lora: Option<Lora<B>>,
    pub k_lora: Option<Lora<B>>,
    pub v_lora: Option<Lora<B>>,
    pub o_lora: Option<Lora<B>>,
    #[module(skip)]
    pub settings: AttentionSettings,
}

/// LogN factors for queries at positions `start..start + len`: `ln(p + 1) / ln(n)` past `n`.
pub fn logn_factors(train_len: usize, start: usize, len: usize) -> Vec<f32> {
    (start..start + len)
        .map(|p| {
            let i = p + 1;
            if i > train_len {
                ((i as f64).ln() / (train_len as f64).ln()) as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// `[s, t]` mask, `true` = hidden, for queries at `start..start + s` over keys `0..start + s`.
pub fn causal_mask(start: usize, s: usize, window: Option<usize>) -> Vec<bool> {
    let t = start + s;
    let mut mask = Vec::with_capacity(s * t);
    for i in 0..s {
        let q = start + i;
        for k in 0..t {
            let outside_window = window.is_some_and(|w| q - k.min(q) >= w);
            mask.push(k > q || outside_window);
        }
    }
    mask
}

impl<B: Backend> Attention<B> {
    /// `x`: `[batch, seq, hidden]` at positions `start..start + seq`; `past`: this layer's cache
    /// of positions `0..start`. Returns `[batch, seq, hidden]` and the cache extended by `seq`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        start: usize,
        past: Option<LayerKv<B>>,
    ) -> (Tensor<B, 3>, LayerKv<B>) {
        let cfg = &self.settings;
        let [_, s, _] = x.dims();
        let device = x.device();
        let (mut q, k, v) = self.project(x, rope);
        let kv = match past {
            Some(p) => LayerKv {
                k: Tensor::cat(vec![p.k, k], 2),
                v: Tensor::cat(vec![p.v, v], 2),
            },
            None => LayerKv { k, v },
        };
        let t = kv.k.dims()[2];
        debug_assert_eq!(t, start + s);
        if let Some(n) = cfg.logn_train_len {
            let f = logn_factors(n, start, s);
            if f.iter().any(|&x| x != 1.0) {
                q = q * Tensor::<B, 4>::from_data(TensorData::new(f, [1, 1, s, 1]), &device);
            }
        }
        let mask = Tensor::<B, 2, Bool>::from_data(
            TensorData::new(causal_mask(start, s, cfg.window), [s, t]),
            &device,
        );
        let out = self.attend(q, kv.k.clone(), kv.v.clone(), mask.reshape([1, 1, s, t]));
        (out, kv)
    }

    /// Project and rotate: `x` `[batch, seq, hidden]` -> q `[batch, heads, seq, head_dim]`,
    /// k and v `[batch, kv_heads, seq, head_dim]`. `rope` broadcasts to `[batch, 1, seq, head_dim]`.
    pub(crate) fn project(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let cfg = &self.settings;
        let [b, s, _] = x.dims();
        let (h, kvh, d) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        // [b, s, h * d] -> [b, s, h, d] (per-head norm here, as Qwen3) -> [b, h, s, d]
        let mut q = project(&self.q_proj, self.q_lora.as_ref(), x.clone()).reshape([b, s, h, d]);
        let mut k = project(&self.k_proj, self.k_lora.as_ref(), x.clone()).reshape([b, s, kvh, d]);
        let v = project(&self.v_proj, self.v_lora.as_ref(), x)
            .reshape([b, s, kvh, d])
            .swap_dims(1, 2);
        if let Some(norm) = &self.q_norm {
            q = norm.forward(q);
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(k);
        }
        (
            apply_rotary(q.swap_dims(1, 2), rope),
            apply_rotary(k.swap_dims(1, 2), rope),
            v,
        )
    }

    /// Attention of `q` `[batch, heads, s, d]` over `k`, `v` `[batch, kv_heads, t, d]` with
    /// `mask` (`true` = hidden) broadcastable to `[batch, 1, s, t]`, then `o_proj`:
    /// returns `[batch, s, hidden]`.
    pub(crate) fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Tensor<B, 4, Bool>,
    ) -> Tensor<B, 3> {
        let cfg = &self.settings;
        let [b, h, s, d] = q.dims();
        let t = k.dims()[2];
        let kvh = cfg.num_kv_heads;
        let rep = h / kvh;
        // Grouped-query attention without copying keys and values: query head j reads kv head
        // j / rep, so the `rep` query heads of a group become extra query rows of that kv head.
        // [b, h, s, d] -> [b, kvh, rep * s, d]; the mask's rows repeat per group member.
        let q = q.reshape([b, kvh, rep * s, d]);
        let mb = mask.dims()[0];
        let mask = mask
            .expand([mb, 1, s, t])
            .reshape([mb, 1, 1, s, t])
            .expand([mb, 1, rep, s, t])
            .reshape([mb, 1, rep * s, t])
            .expand([b, kvh, rep * s, t]);
        let scale = 1.0 / (d as f64).sqrt();
        let out = match cfg.implementation {
            AttentionImpl::Plain => {
                // [b, kvh, rep * s, d] x [b, kvh, d, t] -> [b, kvh, rep * s, t]
                let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
                softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3).matmul(v)
            }
            AttentionImpl::Fused => {
                let options = AttentionModuleOptions {
                    scale: Some(scale),
                    softcap: None,
                    is_causal: false,
                };
                attention(q, k, v, Some(mask), None, options)
            }
        };
        let out = out.reshape([b, h, s, d]);
        // [b, h, s, d] -> [b, s, h * d]
        project(
            &self.o_proj,
            self.o_lora.as_ref(),
            out.swap_dims(1, 2).reshape([b, s, h * d]),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "attention_tests.rs"]
mod tests;
