//! LoRA adapters (Hu et al., 2021): `y = W x + (alpha / r) * B A dropout(x)` beside a frozen
//! projection, with `A` `[in, r]` initialised uniformly (Kaiming-like bound `1/sqrt(in)`) and `B`
//! `[r, out]` zero, so an attached adapter changes nothing until it is trained. Merged into the
//! base weight for export ([`merge_lora`]).

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use crate::linear::forward_rows;
use crate::model::Model;

/// The projections an adapter can sit on, named as in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 7] = [
        Self::Q,
        Self::K,
        Self::V,
        Self::O,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];

    /// The checkpoint's name of the projection (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Q => "q_proj",
            Self::K => "k_proj",
            Self::V => "v_proj",
            Self::O => "o_proj",
            Self::Gate => "gate_proj",
            Self::Up => "up_proj",
            Self::Down => "down_proj",
        }
    }

    /// Parses `q_proj`, `q` (and the other six the same way).
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.strip_suffix("_proj").unwrap_or(name);
        Self::ALL
            .into_iter()
            .find(|t| t.name().strip_suffix("_proj") == Some(short))
    }
}

/// Rank, scaling and dropout of the adapters, and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSettings {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<LoraTarget>,
}

impl LoraSettings {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One adapter. `a`: `[in, r]`, `b`: `[r, out]` (the orientation `x · A · B` wants).
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    pub a: Param<Tensor<B, 2>>,
    pub b: Param<Tensor<B, 2>>,
    pub scale: f64,
    pub dropout: Dropout,
}

impl<B: Backend> Lora<B> {
    pub fn new(inp: usize, out: usize, settings: &LoraSettings, device: &B::Device) -> Self {
        let bound = 1.0 / (inp as f64).sqrt();
        let a = Tensor::random(
            [inp, settings.rank],
            Distribution::Uniform(-bound, bound),
            device,
        );
        Self {
            a: Param::from_tensor(a),
            b: Param::from_tensor(Tensor::zeros([settings.rank, out], device)),
            scale: settings.scale(),
            dropout: DropoutConfig::new(settings.dropout).init(),
        }
    }

    /// The adapter's contribution for `x` `[batch, seq, in]` -> `[batch, seq, out]`.
    pub fn delta(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, inp] = x.dims();
        let x = self.dropout.forward(x.reshape([b * s, inp]));
        let y = x
            .matmul(self.a.val())
            .matmul(self.b.val())
            .mul_scalar(self.scale);
        let out = y.dims()[1];
        y.reshape([b, s, out])
    }

    /// `scale * A · B` `[in, out]`, the update to a burn-oriented (`[in, out]`) weight.
    pub fn weight_delta(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }
}

/// `linear(x)`, plus the adapter's contribution when there is one.
pub fn project<B: Backend>(
    linear: &Linear<B>,
    lora: Option<&Lora<B>>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    match lora {
        None => forward_rows(linear, x),
        Some(adapter) => forward_rows(linear, x.clone()) + adapter.delta(x),
    }
}

fn adapter_for<B: Backend>(
    linear: &Linear<B>,
    target: LoraTarget,
    settings: &LoraSettings,
) -> Option<Lora<B>> {
    if !settings.targets.contains(&target) {
        return None;
    }
    let [inp, out] = linear.weight.dims();
    Some(Lora::new(inp, out, settings, &linear.weight.device()))
}

/// Freezes every weight of `model` and attaches fresh adapters on `settings.targets` of every
/// layer; only the adapters are trainable afterwards.
pub fn attach_lora<B: Backend>(model: Model<B>, settings: &LoraSettings) -> Model<B> {
    let mut model = model.no_grad();
    for layer in &mut model.layers {
        let attn = &mut layer.self_attn;
        attn.q_lora = adapter_for(&attn.q_proj, LoraTarget::Q, settings);
        attn.k_lora = adapter_for(&attn.k_proj, LoraTarget::K, settings);
        attn.v_lora = adapter_for(&attn.v_proj, LoraTarget::V, settings);
        attn.o_lora = adapter_for(&attn.o_proj, LoraTarget::O, settings);
        let mlp = &mut layer.mlp;
        mlp.gate_lora = adapter_for(&mlp.gate_proj, LoraTarget::Gate, settings);
        mlp.up_lora = adapter_for(&mlp.up_proj, LoraTarget::Up, settings);
        mlp.down_lora = adapter_for(&mlp.down_proj, LoraTarget::Down, settings);
    }
    model
}

fn merge_into<B: Backend>(linear: &mut Linear<B>, lora: Option<Lora<B>>) {
    if let Some(adapter) = lora {
        let delta = adapter.weight_delta();
        let weight = linear.weight.val() + delta;
        linear.weight = Param::from_tensor(weight);
    }
}

/// Folds every adapter into its base weight (`W + scale · A · B`) and removes it; the result
/// computes what the adapted model computed, with no adapters left.
pub fn merge_lora<B: Backend>(mut model: Model<B>) -> Model<B> {
    for layer in &mut model.layers {
        let attn = &mut layer.self_attn;
        merge_into(&mut attn.q_proj, attn.q_lora.take());
        merge_into(&mut attn.k_proj, attn.k_lora.take());
        merge_into(&mut attn.v_proj, attn.v_lora.take());
        merge_into(&mut attn.o_proj, attn.o_lora.take());
        let mlp = &mut layer.mlp;
        merge_into(&mut mlp.gate_proj, mlp.gate_lora.take());
        merge_into(&mut mlp.up_proj, mlp.up_lora.take());
        merge_into(&mut mlp.down_proj, mlp.down_lora.take());
    }
    model
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_short_and_checkpoint_names() {
        assert_eq!(LoraTarget::parse("q_proj"), Some(LoraTarget::Q));
        assert_eq!(LoraTarget::parse("down"), Some(LoraTarget::Down));
        assert_eq!(LoraTarget::parse("gate_proj"), Some(LoraTarget::Gate));
        assert_eq!(LoraTarget::parse("lm_head"), None);
        for t in LoraTarget::ALL {
            assert_eq!(LoraTarget::parse(t.name()), Some(t));
        }
    }
}
