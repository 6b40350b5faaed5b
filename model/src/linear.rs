//! Hugging Face `nn.Linear` weights (`[out, in]`) as burn `Linear` modules (`[in, out]`).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A burn `Linear` from an HF weight `[out, in]` and optional bias `[out]`. The weight is kept as
/// a transposed view of the HF layout (what burn's own `LinearLayout::Col` does), so loading
/// copies nothing.
pub fn hf_linear<B: Backend>(weight_out_in: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(weight_out_in.transpose()),
        bias: bias.map(Param::from_tensor),
    }
}
