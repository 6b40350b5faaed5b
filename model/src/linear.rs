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

/// `layer` applied to `x` `[batch, seq, in]` -> `[batch, seq, out]` as ONE `[batch * seq, in]`
/// matrix product. burn's `Linear::forward` on a 3-D input runs a batched matmul, one
/// `[seq, in] x [in, out]` product per batch row, and the CPU gemm re-packs the whole weight
/// for each: at decode (`seq` = 1) a batch of 32 rows read every weight 32 times.
pub fn forward_rows<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, inp] = x.dims();
    let y = layer.forward(x.reshape([b * s, inp]));
    let out = y.dims()[1];
    y.reshape([b, s, out])
}
