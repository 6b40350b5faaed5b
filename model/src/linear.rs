//! Hugging Face `nn.Linear` weights (`[out, in]`) as burn `Linear` modules, and the matrix
//! product the model runs them with.
//!
//! Layout, measured with flex's gemm on the 2-core dev machine (GFLOP/s, Qwen2.5-0.5B MLP and
//! head shapes): for `rows` <= 128 input rows, `W[out, in] x X^T` with `W` contiguous reaches
//! 45-72, against 24-61 for `X x W[in, out]` (the gemm re-packs its right-hand side, and its
//! small-`m` path is weak); from ~512 rows, `X x W^T` is ahead (66-80 vs 41-70). So weights
//! stay in the checkpoint's `[out, in]` memory order (burn's `[in, out]` parameter is a
//! transposed view of it) and [`matmul_rows`] picks the product by row count.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Above this many rows, `X x W^T` beats `W x X^T` (see the module doc).
const ROWS_WEIGHT_ON_RIGHT: usize = 256;

/// A burn `Linear` from an HF weight `[out, in]` and optional bias `[out]`. burn's parameter is
/// `[in, out]`: here a transposed view of the HF tensor, so memory stays `[out, in]`.
pub fn hf_linear<B: Backend>(weight_out_in: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(weight_out_in.transpose()),
        bias: bias.map(Param::from_tensor),
    }
}

/// `x` `[rows, in]` times the weight `w_out_in` `[out, in]` transposed: `[rows, out]`.
pub fn matmul_rows<B: Backend>(x: Tensor<B, 2>, w_out_in: Tensor<B, 2>) -> Tensor<B, 2> {
    if x.dims()[0] <= ROWS_WEIGHT_ON_RIGHT {
        // [out, in] x [in, rows] -> [out, rows] -> [rows, out]
        w_out_in.matmul(x.transpose()).transpose()
    } else {
        x.matmul(w_out_in.transpose())
    }
}

/// `layer` applied to `x` `[batch, seq, in]` -> `[batch, seq, out]` as ONE product of
/// `[batch * seq, in]` rows. burn's `Linear::forward` on a 3-D input runs a batched matmul, one
/// `[seq, in] x [in, out]` product per batch row, and the CPU gemm re-packs the whole weight
/// for each: at decode (`seq` = 1) a batch of 32 rows read every weight 32 times.
pub fn forward_rows<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, inp] = x.dims();
    let mut y = matmul_rows(x.reshape([b * s, inp]), layer.weight.val().transpose());
    if let Some(bias) = &layer.bias {
        y = y + bias.val().unsqueeze_dim(0);
    }
    let out = y.dims()[1];
    y.reshape([b, s, out])
}
