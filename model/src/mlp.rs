//! SwiGLU feed-forward block (Qwen report 2.3), width `intermediate_size` as the config says.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::lora::{project, Lora};

/// `down_proj(silu(gate_proj(x)) * up_proj(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[hidden, intermediate]` (burn's input-major layout of the HF `[intermediate, hidden]`).
    pub gate_proj: Linear<B>,
    /// `[hidden, intermediate]`
    pub up_proj: Linear<B>,
    /// `[intermediate, hidden]`
    pub down_proj: Linear<B>,
    /// LoRA adapters beside the projections (`None` unless fine-tuning with LoRA).
    pub gate_lora: Option<Lora<B>>,
    pub up_lora: Option<Lora<B>>,
    pub down_lora: Option<Lora<B>>,
}

impl<B: Backend> Mlp<B> {
    /// `x`: `[batch, seq, hidden]` -> `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(project(&self.gate_proj, self.gate_lora.as_ref(), x.clone()));
        let up = project(&self.up_proj, self.up_lora.as_ref(), x);
        project(&self.down_proj, self.down_lora.as_ref(), gate * up)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::linear_from;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn swiglu_matches_hand_computation() {
        let device = Default::default();
        // hidden 2, intermediate 3; HF layout [out, in].
        let mlp = Mlp::<Flex> {
            gate_proj: linear_from(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2], None, &device),
            up_proj: linear_from(&[2.0, 0.0, 0.0, 2.0, 1.0, -1.0], [3, 2], None, &device),
            down_proj: linear_from(&[1.0, 1.0, 1.0, 0.0, 1.0, 0.0], [2, 3], None, &device),
            gate_lora: None,
            up_lora: None,
            down_lora: None,
        };
        let x =
            Tensor::<Flex, 3>::from_data(TensorData::new(vec![1.0f32, -2.0], [1, 1, 2]), &device);
        let y = mlp.forward(x).into_data().to_vec::<f32>().unwrap();
        let silu = |v: f64| v / (1.0 + (-v).exp());
        let g = [silu(1.0), silu(-2.0), silu(-1.0)];
        let u = [2.0, -4.0, 3.0];
        let h = [g[0] * u[0], g[1] * u[1], g[2] * u[2]];
        let expect = [h[0] + h[1] + h[2], h[1]];
        for (a, b) in y.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
