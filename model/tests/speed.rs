//! Decode speed on a random SmolLM2-135M-shaped model (not a timed test; run with
//! `cargo test -p model --release --test speed -- --ignored --nocapture`).

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use burn::backend::Flex;
use burn::module::Param;
use burn::nn::Embedding;
use burn::tensor::{Distribution, Tensor};
use model::attention::{Attention, AttentionSettings};
use model::config::{AttentionImpl, RopeScaling};
use model::engine::{generate, GenerationRequest};
use model::generate::greedy;
use model::layer::DecoderLayer;
use model::linear::hf_linear;
use model::mlp::Mlp;
use model::norm::RmsNorm;
use model::rope::Rope;
use model::Model;

type B = Flex;

fn rand2(out: usize, inp: usize) -> Tensor<B, 2> {
    Tensor::random(
        [out, inp],
        Distribution::Normal(0.0, 0.02),
        &Default::default(),
    )
}

fn smollm_shaped() -> Model<B> {
    let (hidden, inter, layers, h, kvh, vocab) = (576, 1536, 30, 9, 3, 49152);
    let d = hidden / h;
    let dev = Default::default();
    let ones = |n: usize| Tensor::<B, 1>::ones([n], &dev);
    let embed = rand2(vocab, hidden);
    Model {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers: (0..layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: hf_linear(rand2(h * d, hidden), None),
                    k_proj: hf_linear(rand2(kvh * d, hidden), None),
                    v_proj: hf_linear(rand2(kvh * d, hidden), None),
                    o_proj: hf_linear(rand2(hidden, h * d), None),
                    q_norm: None,
                    k_norm: None,
                    q_lora: None,
                    k_lora: None,
                    v_lora: None,
                    o_lora: None,
                    settings: AttentionSettings {
                        num_heads: h,
                        num_kv_heads: kvh,
                        head_dim: d,
                        window: None,
                        logn_train_len: None,
                        implementation: AttentionImpl::Plain,
                    },
                },
                mlp: Mlp {
                    gate_proj: hf_linear(rand2(inter, hidden), None),
                    up_proj: hf_linear(rand2(inter, hidden), None),
                    down_proj: hf_linear(rand2(hidden, inter), None),
                    gate_lora: None,
                    up_lora: None,
                    down_lora: None,
                },
                input_layernorm: RmsNorm::new(ones(hidden), 1e-5),
                post_attention_layernorm: RmsNorm::new(ones(hidden), 1e-5),
            })
            .collect(),
        norm: RmsNorm::new(ones(hidden), 1e-5),
        lm_head: None,
        rope: Rope {
            dim: d,
            theta: 100000.0,
            scaling: RopeScaling::None,
            max_position_embeddings: 8192,
        },
    }
}

#[test]
#[ignore]
fn decode_speed_smollm_shape() {
    run(&smollm_shaped());
}

fn run(model: &Model<B>) {
    let prompt: Vec<u32> = (0..64).map(|i| i * 7 + 1).collect();
    greedy(model, &prompt, 2, &[]).unwrap(); // warm-up (lazy init)
    let t = Instant::now();
    let n = 32;
    greedy(model, &prompt, n, &[]).unwrap();
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "batch 1: prefill 64 + {n} tokens in {s:.2}s -> {:.1} tok/s overall",
        n as f64 / s
    );
    for batch in [8usize] {
        let reqs: Vec<_> = (0..batch)
            .map(|i| {
                GenerationRequest::new(prompt.iter().map(|t| (t + i as u32) % 49152).collect(), n)
            })
            .collect();
        let t = Instant::now();
        generate(model, &reqs, batch, None).unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "batch {batch}: {} tokens in {s:.2}s -> {:.1} tok/s overall",
            batch * n,
            (batch * n) as f64 / s
        );
    }
}
