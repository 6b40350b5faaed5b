//! Key/value cache, passed into the model explicitly; the rope position of new tokens is the
//! cache length, so positions cannot drift from what is cached.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// One layer's cached keys and values, each `[batch, kv_heads, cached_len, head_dim]`, already
/// rotated (keys) and not yet expanded for grouped-query attention.
#[derive(Debug, Clone)]
pub struct LayerKv<B: Backend> {
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
}

/// The cache of a whole model for one batch of sequences that share positions.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<LayerKv<B>>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Number of positions cached (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Layer `layer`'s keys and values, if any were cached.
    pub fn layer(&self, layer: usize) -> Option<&LayerKv<B>> {
        self.layers.get(layer).and_then(Option::as_ref)
    }

    /// Take layer `layer`'s entry out (the attention concatenates onto it and puts it back).
    pub(crate) fn take(&mut self, layer: usize) -> Option<LayerKv<B>> {
        self.layers.get_mut(layer).and_then(Option::take)
    }

    pub(crate) fn put(&mut self, layer: usize, kv: LayerKv<B>) {
        if let Some(slot) = self.layers.get_mut(layer) {
            *slot = Some(kv);
        }
    }

    /// Record that `n` more positions were written to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
