//! Rotary position embedding in the Hugging Face rotate-half layout, f32 inverse frequencies,
//! with `linear`, `dynamic` (transformers' dynamic NTK) and static NTK-aware (`alpha`) scaling
//! (Qwen report 2.3, "RoPE" and "NTK-aware interpolation").
//!
//! burn's `RotaryEncoding` rotates interleaved pairs `(2i, 2i+1)`; transformers rotates
//! `(i, i + d/2)`, so this is written out here.
//!
//! Dynamic scaling is stateful in transformers: the base is recomputed from the longest
//! sequence seen (`max(position_ids) + 1`, never below `max_position_embeddings`). Here it is a
//! function of the positions being encoded: [`Rope::tables`] takes `seq_len`, the length of the
//! whole context up to and including the last position. One forward pass over a sequence matches
//! transformers exactly. In cached generation each step encodes its new query/key with the base
//! of the current total length while earlier keys keep the rotation they were cached with — the
//! same thing transformers' `generate` does (its cache also stores rotated keys). Qwen-1's own
//! code instead picks an NTK alpha from the context length; use `rope_type: "ntk"` for a fixed
//! alpha.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::config::RopeScaling;

/// Rope parameters for one head dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// Rotated dimension (the head dimension), even.
    pub dim: usize,
    /// `rope_theta`.
    pub theta: f64,
    pub scaling: RopeScaling,
    /// `max_position_embeddings`: where dynamic scaling starts.
    pub max_position_embeddings: usize,
}

/// `cos` and `sin` tables, each `[1, 1, seq, dim]`, broadcast over batch and heads.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    pub cos: Tensor<B, 4>,
    pub sin: Tensor<B, 4>,
}

impl Rope {
    /// Inverse frequencies `[dim/2]` in f32, for a context of `seq_len` tokens (only dynamic
    /// scaling looks at `seq_len`).
    pub fn inv_freq(&self, seq_len: usize) -> Vec<f32> {
        let d = self.dim as f32;
        // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), all in f32.
        let with_base = |base: f32| -> Vec<f32> {
            (0..self.dim / 2)
                .map(|i| 1.0 / base.powf((2 * i) as f32 / d))
                .collect()
        };
        let exponent = self.dim as f64 / (self.dim as f64 - 2.0);
        match self.scaling {
            RopeScaling::None => with_base(self.theta as f32),
            RopeScaling::Linear { factor } => with_base(self.theta as f32)
                .into_iter()
                .map(|f| f / factor as f32)
                .collect(),
            RopeScaling::NtkAlpha { alpha } => {
                with_base((self.theta * alpha.powf(exponent)) as f32)
            }
            RopeScaling::Dynamic { factor } => {
                // transformers computes this with seq_len as a tensor, i.e. in f32.
                let max = self.max_position_embeddings;
                let seq = seq_len.max(max) as f32;
                let factor = factor as f32;
                let stretch = (factor * seq / max as f32) - (factor - 1.0);
                let base = self.theta as f32 * stretch.powf(exponent as f32);
                with_base(base)
            }
        }
    }

    /// Whether the rotation of a position depends on the length of the context it is encoded
    /// in (`dynamic` scaling), so a sequence cannot be encoded in independent pieces.
    pub fn depends_on_length(&self) -> bool {
        matches!(self.scaling, RopeScaling::Dynamic { .. })
    }

    /// `cos` and `sin`, each `[rows, dim]` flattened, for rows of (absolute 0-based position,
    /// length of the context it is encoded in).
    pub fn cos_sin(&self, rows: impl IntoIterator<Item = (usize, usize)>) -> (Vec<f32>, Vec<f32>) {
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        let mut inv: Option<(usize, Vec<f32>)> = None;
        for (p, seq_len) in rows {
            // Only dynamic scaling looks at the length; recompute when it changes.
            let key = if self.depends_on_length() { seq_len } else { 0 };
            if inv.as_ref().is_none_or(|(k, _)| *k != key) {
                inv = Some((key, self.inv_freq(seq_len)));
            }
            let Some((_, freqs)) = &inv else { continue };
            // emb = cat(freqs, freqs): the same angle for dims i and i + d/2.
            for _ in 0..2 {
                for &f in freqs {
                    let angle = f * p as f32;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        (cos, sin)
    }

    /// Tables for `positions` (absolute, 0-based) in a context of `seq_len` tokens.
    pub fn tables<B: Backend>(
        &self,
        positions: &[usize],
        seq_len: usize,
        device: &B::Device,
    ) -> RopeTables<B> {
        let (cos, sin) = self.cos_sin(positions.iter().map(|&p| (p, seq_len)));
        let shape = [1, 1, positions.len(), self.dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// Tables for one new token per row: row `r` at position `positions[r]` in a context of
    /// `positions[r] + 1` tokens. Returns `[rows, 1, 1, dim]` each.
    pub fn tables_rows<B: Backend>(
        &self,
        positions: &[usize],
        device: &B::Device,
    ) -> RopeTables<B> {
        let (cos, sin) = self.cos_sin(positions.iter().map(|&p| (p, p + 1)));
        let shape = [positions.len(), 1, 1, self.dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

/// Rotate `x` (`[batch, heads, seq, dim]`) by the tables: `x * cos + rotate_half(x) * sin`,
/// where `rotate_half([x1, x2]) = [-x2, x1]` on the two halves of the last dimension.
pub fn apply_rotary<B: Backend>(x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * tables.cos.clone() + rotated * tables.sin.clone()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn rope(scaling: RopeScaling) -> Rope {
        Rope {
            dim: 4,
            theta: 10000.0,
            scaling,
            max_position_embeddings: 8,
        }
    }

    #[test]
    fn default_inverse_frequencies() {
        assert_eq!(rope(RopeScaling::None).inv_freq(1), vec![1.0, 0.01]);
    }

    #[test]
    fn linear_divides_frequencies() {
        assert_eq!(
            rope(RopeScaling::Linear { factor: 4.0 }).inv_freq(1),
            vec![0.25, 0.0025]
        );
    }

    #[test]
    fn static_ntk_alpha_raises_the_base() {
        // d = 4: base' = 10000 * alpha^(4/2) = 90000 for alpha 3; inv = [1, 90000^(-2/4)] = [1, 1/300].
        let inv = rope(RopeScaling::NtkAlpha { alpha: 3.0 }).inv_freq(1);
        assert_eq!(inv[0], 1.0);
        assert!((inv[1] as f64 - 1.0 / 300.0).abs() < 1e-9, "{}", inv[1]);
    }

    #[test]
    fn dynamic_only_acts_past_max_positions() {
        let r = rope(RopeScaling::Dynamic { factor: 2.0 });
        assert_eq!(r.inv_freq(8), vec![1.0, 0.01]);
        assert_eq!(r.inv_freq(3), vec![1.0, 0.01]);
        // seq 16, max 8, factor 2: stretch = 2*16/8 - 1 = 3, base = 10000 * 3^2 = 90000,
        // inv[1] = 90000^(-1/2) = 1/300.
        let inv = r.inv_freq(16);
        assert!((inv[1] as f64 - 1.0 / 300.0).abs() < 1e-9, "{}", inv[1]);
    }

    #[test]
    fn rotate_half_layout() {
        let device = Default::default();
        let r = rope(RopeScaling::None);
        let tables = r.tables::<Flex>(&[0, 1], 2, &device);
        let x = Tensor::<Flex, 4>::from_data(
            TensorData::new(
                vec![1.0f32, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
                [1, 1, 2, 4],
            ),
            &device,
        );
        let y = apply_rotary(x, &tables)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Position 0 is the identity.
        assert_eq!(&y[..4], &[1.0, 2.0, 3.0, 4.0]);
        // Position 1: pairs (x0, x2) rotate by 1 rad, (x1, x3) by 0.01 rad.
        let (c0, s0, c1, s1) = (1f64.cos(), 1f64.sin(), 0.01f64.cos(), 0.01f64.sin());
        let expect = [
            1.0 * c0 - 3.0 * s0,
            2.0 * c1 - 4.0 * s1,
            3.0 * c0 + 1.0 * s0,
            4.0 * c1 + 2.0 * s1,
        ];
        for (a, b) in y[4..].iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
