//! Hugging Face `nn.Linear` weights (`[out, in]`) as burn `Linear` modules (`[in, out]`).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A burn `Linear` from an HF weight `[out, in]` and optional bias `[out]`. The weight is
/// copied once into burn's contiguous `[in, out]` layout: a transposed view would be re-laid
/// out (or multiplied through a strided path) on every forward.
pub fn hf_linear<B: Backend>(weight_out_in: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    let device = weight_out_in.device();
    let weight = Tensor::from_data(weight_out_in.transpose().into_data(), &device);
    Linear {
        weight: Param::from_tensor(weight),
        bias: bias.map(Param::from_tensor),
    }
}
