//! Helpers for unit tests.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData};

use crate::linear::hf_linear;

/// A linear layer from HF-layout (`[out, in]`) values.
pub fn linear_from<B: Backend>(
    w: &[f32],
    shape: [usize; 2],
    bias: Option<&[f32]>,
    device: &B::Device,
) -> Linear<B> {
    let w = Tensor::from_data(TensorData::new(w.to_vec(), shape), device);
    let b = bias.map(|b| Tensor::from_data(TensorData::new(b.to_vec(), [b.len()]), device));
    hf_linear(w, b)
}

/// Random HF-layout weights `[out, in]` as a `Vec`, deterministic in `seed`.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    // xorshift: reproducible without depending on a backend's RNG.
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect()
}

pub fn rand_linear<B: Backend>(
    out: usize,
    inp: usize,
    bias: bool,
    seed: u64,
    device: &B::Device,
) -> Linear<B> {
    let b = rand_vec(out, seed + 1);
    linear_from(
        &rand_vec(out * inp, seed),
        [out, inp],
        bias.then_some(&b[..]),
        device,
    )
}

pub fn randn<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

pub fn max_abs_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar().elem()
}

/// A committed fixture checkpoint (`tests/fixtures/models/<name>`), loaded on `B`.
pub fn fixture_model<B: Backend>(name: &str) -> crate::Model<B> {
    fixture_checkpoint::<B>(name).model
}

/// A committed fixture checkpoint with its tokenizer and config.
pub fn fixture_checkpoint<B: Backend>(name: &str) -> crate::LoadedModel<B> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name);
    crate::load_any::<B>(&dir, &Default::default()).unwrap()
}
