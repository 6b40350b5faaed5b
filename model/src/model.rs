//! The causal language model: `embed_tokens -> layers -> norm -> lm_head`.
//!
//! The Qwen report's architecture list (Bai et al., 2023, section 2.3), where each item lives
//! and the test that pins it:
//!
//! | Feature | Code | Test |
//! |---|---|---|
//! | Untied embedding and output projection (tied when `tie_word_embeddings`) | [`Model::lm_head`] | `golden::qwen2_gqa4_untied`, `golden::qwen2_mha_tied` |
//! | RoPE, f32 inverse frequencies, rotate-half layout | [`crate::rope`] | `rope::tests::rotate_half_layout`, all golden tests |
//! | NTK-aware scaling: static alpha | [`crate::config::RopeScaling::NtkAlpha`] | `rope::tests::static_ntk_alpha_raises_the_base`, `golden::static_ntk_alpha_equals_a_raised_rope_theta` |
//! | Dynamic NTK scaling past `max_position_embeddings` | [`crate::config::RopeScaling::Dynamic`] | `rope::tests::dynamic_only_acts_past_max_positions`, `golden::qwen2_dynamic_rope` |
//! | Bias only in q/k/v | [`crate::attention::Attention`] (`Config::qkv_bias`) | `golden::qwen2_*`, `golden::llama_gqa2_sharded` |
//! | Pre-norm RMSNorm in f32 | [`crate::norm::RmsNorm`], [`crate::layer::DecoderLayer`] | `norm::tests::rms_norm_matches_hand_computation` |
//! | SwiGLU MLP, width `intermediate_size` | [`crate::mlp::Mlp`] | `mlp::tests::swiglu_matches_hand_computation` |
//! | Grouped-query attention | [`crate::attention::Attention`] | `attention::tests::gqa_equals_repeated_heads`, golden GQA 1/2/4 |
//! | LogN query scaling beyond the training length | [`crate::attention::logn_factors`] | `attention::tests::logn_factors_independent_values`, `attention::tests::logn_scales_queries_past_train_len`, `golden::logn_only_acts_past_the_training_length` |
//! | Per-layer window attention (`use_sliding_window`/`max_window_layers`/`layer_types`, or `layer_windows`) | [`crate::config::Config::layer_window`], [`crate::attention::causal_mask`] | `config::tests::sliding_window_follows_transformers`, `attention::tests::window_mask`, `golden::qwen2_sliding_window`, `golden::explicit_layer_windows_reproduce_transformers_sliding_layers` |
//! | Fused attention, plain masked softmax kept as reference | [`crate::config::AttentionImpl`] | `attention::tests::fused_matches_plain`, `golden::fused_attention_matches_transformers` |
//! | Qwen3 per-head q/k RMSNorm, explicit `head_dim` | [`crate::attention::Attention`] | `golden::qwen3_qk_norm` |

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::cache::KvCache;
use crate::layer::DecoderLayer;
use crate::linear::{forward_rows, matmul_rows};
use crate::norm::RmsNorm;
use crate::rope::Rope;

/// Invalid input to a forward pass.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("empty input: no tokens to run")]
    Empty,
    #[error("batch rows have different lengths ({first} and {other})")]
    Ragged { first: usize, other: usize },
    #[error("the cache has {found} layers, the model {expected}")]
    CacheLayers { expected: usize, found: usize },
}

#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// `[vocab, hidden]`
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    /// `[hidden]`, the final norm.
    pub norm: RmsNorm<B>,
    /// `[hidden, vocab]`; `None` when the checkpoint ties it to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    pub rope: Rope,
}

impl<B: Backend> Model<B> {
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.weight.dims()[0]
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// A fresh cache for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.layers.len())
    }

    /// Token ids (`rows` of equal length) as a `[batch, seq]` tensor, checked against the vocabulary.
    pub fn tokens(&self, rows: &[&[u32]]) -> Result<Tensor<B, 2, Int>, ForwardError> {
        let first = rows.first().map(|r| r.len()).ok_or(ForwardError::Empty)?;
        if first == 0 {
            return Err(ForwardError::Empty);
        }
        let vocab = self.vocab_size();
        let mut flat = Vec::with_capacity(rows.len() * first);
        for r in rows {
            if r.len() != first {
                return Err(ForwardError::Ragged {
                    first,
                    other: r.len(),
                });
            }
            for &id in *r {
                if id as usize >= vocab {
                    return Err(ForwardError::TokenOutOfRange { id, vocab });
                }
                flat.push(id as i64);
            }
        }
        let device = self.embed_tokens.weight.device();
        Ok(Tensor::from_data(
            TensorData::new(flat, [rows.len(), first]),
            &device,
        ))
    }

    /// Logits `[batch, seq, vocab]` for `tokens` (`[batch, seq]`, ids < vocab) at positions
    /// `cache.len()..cache.len() + seq`; the cache is extended by `seq`.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>, ForwardError> {
        Ok(self.head(self.forward_hidden(tokens, cache)?))
    }

    /// Logits `[batch, vocab]` of the last position only (a prefill needs no more; the output
    /// projection over every prompt position would cost as much as a layer or more).
    pub fn forward_last(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 2>, ForwardError> {
        let x = self.forward_hidden(tokens, cache)?;
        let [b, s, hidden] = x.dims();
        let last = x.slice([0..b, s - 1..s, 0..hidden]);
        let logits = self.head(last);
        let vocab = logits.dims()[2];
        Ok(logits.reshape([b, vocab]))
    }

    /// The final-normed hidden states `[batch, seq, hidden]` (see [`Model::forward`]).
    pub fn forward_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>, ForwardError> {
        if cache.num_layers() != self.layers.len() {
            return Err(ForwardError::CacheLayers {
                expected: self.layers.len(),
                found: cache.num_layers(),
            });
        }
        let [_, s] = tokens.dims();
        if s == 0 {
            return Err(ForwardError::Empty);
        }
        let start = cache.len();
        let positions: Vec<usize> = (start..start + s).collect();
        let tables = self
            .rope
            .tables::<B>(&positions, start + s, &tokens.device());
        let mut x = self.embed_tokens.forward(tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            let (y, kv) = layer.forward(x, &tables, start, cache.take(i));
            cache.put(i, kv);
            x = y;
        }
        cache.advance(s);
        Ok(self.norm.forward(x))
    }

    /// Output projection: `[batch, seq, hidden]` -> `[batch, seq, vocab]`, through `lm_head`
    /// or, when tied, the transposed embedding.
    pub fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => forward_rows(head, x),
            None => {
                // The embedding `[vocab, hidden]` is already the head's `[out, in]`.
                let [b, s, hidden] = x.dims();
                let y = matmul_rows(x.reshape([b * s, hidden]), self.embed_tokens.weight.val());
                let vocab = y.dims()[1];
                y.reshape([b, s, vocab])
            }
        }
    }

    /// Logits `[seq, vocab]` of one sequence, one forward pass without a cache.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor<B, 2>, ForwardError> {
        let tokens = self.tokens(&[ids])?;
        let mut cache = self.new_cache();
        let logits = self.forward(tokens, &mut cache)?;
        let [_, s, v] = logits.dims();
        Ok(logits.reshape([s, v]))
    }
}
