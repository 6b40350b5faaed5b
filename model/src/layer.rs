//! One pre-norm decoder layer: `x = x + attn(norm(x)); x = x + mlp(norm(x))`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::Attention;
use crate::cache::LayerKv;
use crate::mlp::Mlp;
use crate::norm::RmsNorm;
use crate::rope::RopeTables;

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub self_attn: Attention<B>,
    pub mlp: Mlp<B>,
    /// `[hidden]`, before attention.
    pub input_layernorm: RmsNorm<B>,
    /// `[hidden]`, before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// `x`: `[batch, seq, hidden]` at positions `start..start + seq` -> same shape, and this
    /// layer's cache extended by `seq`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        start: usize,
        past: Option<LayerKv<B>>,
    ) -> (Tensor<B, 3>, LayerKv<B>) {
        let (attn, kv) =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), rope, start, past);
        let x = x + attn;
        let x = x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x));
        (x, kv)
    }
}
