//! Pre-norm RMSNorm, computed in f32 (Qwen report 2.3: "RMSNorm").

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};

/// `y = weight * x / sqrt(mean(x^2) + eps)` over the last dimension, as transformers'
/// `Qwen2RMSNorm`: the statistics are taken in f32 whatever the activation dtype, and the result
/// is cast back before the weight multiplies it.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[dim]`
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Build from a `[dim]` weight.
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    /// `x`: `[..., dim]` -> `[..., dim]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let variance = x.clone().square().mean_dim(D - 1);
        let normed = x.div(variance.add_scalar(self.eps).sqrt());
        let normed = normed.cast(FloatDType::from(dtype));
        let dim = self.weight.dims()[0];
        let mut shape = [1usize; D];
        shape[D - 1] = dim;
        normed.mul(self.weight.val().reshape(shape))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    #[test]
    fn rms_norm_matches_hand_computation() {
        let device = Default::default();
        let w =
            Tensor::<B, 1>::from_data(TensorData::new(vec![1.0f32, 2.0, 0.5, -1.0], [4]), &device);
        let norm = RmsNorm::new(w, 1e-6);
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0], [2, 4]),
            &device,
        );
        let y = norm.forward(x).into_data().to_vec::<f32>().unwrap();
        // mean of squares = 30/4 = 7.5
        let r = 1.0 / (7.5f64 + 1e-6).sqrt();
        let expect = [r, 4.0 * r, 1.5 * r, -4.0 * r, 0.0, 0.0, 0.0, 0.0];
        for (a, b) in y.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
