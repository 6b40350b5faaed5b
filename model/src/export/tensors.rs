//! The model's weights under their transformers names, written as safetensors (one file, or
//! shards with `model.safetensors.index.json` above a size limit).
//!
//! Each tensor is read from the burn module when its bytes are written, so at most one tensor
//! is held in memory beside the model (a 1 GB model is not copied whole before writing).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, View};

use super::{ExportDtype, ExportError};
use crate::config::Config;
use crate::model::Model;
use crate::norm::RmsNorm;

/// A weight in Hugging Face layout (`nn.Linear` as `[out, in]`).
enum Weight<B: Backend> {
    Vector(Tensor<B, 1>),
    Matrix(Tensor<B, 2>),
}

/// One tensor of the output file.
pub(super) struct NamedTensor<B: Backend> {
    pub name: String,
    shape: Vec<usize>,
    dtype: ExportDtype,
    weight: Weight<B>,
}

impl<B: Backend> NamedTensor<B> {
    fn new(name: String, weight: Weight<B>, dtype: ExportDtype) -> Self {
        let shape = match &weight {
            Weight::Vector(t) => t.dims().to_vec(),
            Weight::Matrix(t) => t.dims().to_vec(),
        };
        Self {
            name,
            shape,
            dtype,
            weight,
        }
    }

    fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn byte_len(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

impl<B: Backend> View for &NamedTensor<B> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            ExportDtype::F32 => Dtype::F32,
            ExportDtype::Bf16 => Dtype::BF16,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Little-endian bytes in row-major order of the HF shape (a transposed burn view is made
    /// contiguous by `into_data`). bf16 rounds to nearest even, as torch's `.to(torch.bfloat16)`.
    fn data(&self) -> Cow<'_, [u8]> {
        let data: TensorData = match &self.weight {
            Weight::Vector(t) => t.clone().into_data(),
            Weight::Matrix(t) => t.clone().into_data(),
        };
        let values = data.iter::<f32>();
        let bytes: Vec<u8> = match self.dtype {
            ExportDtype::F32 => values.flat_map(f32::to_le_bytes).collect(),
            ExportDtype::Bf16 => values
                .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        };
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        self.byte_len()
    }
}

/// Collects the tensors in checkpoint order.
struct Collector<B: Backend> {
    dtype: ExportDtype,
    tensors: Vec<NamedTensor<B>>,
}

impl<B: Backend> Collector<B> {
    fn push(&mut self, name: String, weight: Weight<B>) {
        self.tensors
            .push(NamedTensor::new(name, weight, self.dtype));
    }

    /// `{prefix}.weight` `[out, in]` and `{prefix}.bias` when the layer has one; the bias must
    /// be there exactly when `config.json` will say so, or transformers would build another
    /// model than the one written.
    fn linear(
        &mut self,
        prefix: String,
        layer: &Linear<B>,
        bias_expected: bool,
    ) -> Result<(), ExportError> {
        // burn's parameter is `[in, out]` (see `crate::linear::hf_linear`).
        self.push(
            format!("{prefix}.weight"),
            Weight::Matrix(layer.weight.val().transpose()),
        );
        match (&layer.bias, bias_expected) {
            (Some(bias), true) => {
                self.push(format!("{prefix}.bias"), Weight::Vector(bias.val()));
                Ok(())
            }
            (None, false) => Ok(()),
            (found, _) => Err(ExportError::Inconsistent {
                tensor: format!("{prefix}.bias"),
                message: format!(
                    "the model {} this bias but the config says it {}",
                    if found.is_some() { "has" } else { "lacks" },
                    if bias_expected { "exists" } else { "does not" }
                ),
            }),
        }
    }

    fn norm(&mut self, prefix: String, norm: &RmsNorm<B>) {
        self.push(
            format!("{prefix}.weight"),
            Weight::Vector(norm.weight.val()),
        );
    }
}

/// Only base weights are written: an adapter still attached would be silently dropped.
fn check_no_adapters<B: Backend>(model: &Model<B>) -> Result<(), ExportError> {
    for (i, layer) in model.layers.iter().enumerate() {
        let (attn, mlp) = (&layer.self_attn, &layer.mlp);
        let adapters = [
            ("self_attn.q_proj", attn.q_lora.is_some()),
            ("self_attn.k_proj", attn.k_lora.is_some()),
            ("self_attn.v_proj", attn.v_lora.is_some()),
            ("self_attn.o_proj", attn.o_lora.is_some()),
            ("mlp.gate_proj", mlp.gate_lora.is_some()),
            ("mlp.up_proj", mlp.up_lora.is_some()),
            ("mlp.down_proj", mlp.down_lora.is_some()),
        ];
        if let Some((name, _)) = adapters.iter().find(|(_, attached)| *attached) {
            return Err(ExportError::UnmergedAdapter {
                tensor: format!("model.layers.{i}.{name}"),
            });
        }
    }
    Ok(())
}

/// Every tensor of `model` under its transformers name, in checkpoint order. The head is
/// written only when untied (`lm_head` is `None` means tied to the embedding).
pub(super) fn collect<B: Backend>(
    model: &Model<B>,
    config: &Config,
    dtype: ExportDtype,
) -> Result<Vec<NamedTensor<B>>, ExportError> {
    let embed = model.embed_tokens.weight.val();
    let expected = [config.vocab_size, config.hidden_size];
    if embed.dims() != expected {
        return Err(ExportError::Inconsistent {
            tensor: "model.embed_tokens.weight".into(),
            message: format!(
                "shape {:?} but the config says [vocab_size, hidden_size] = {expected:?}",
                embed.dims()
            ),
        });
    }
    if model.layers.len() != config.num_hidden_layers {
        return Err(ExportError::Inconsistent {
            tensor: "model.layers".into(),
            message: format!(
                "{} layers but the config says num_hidden_layers = {}",
                model.layers.len(),
                config.num_hidden_layers
            ),
        });
    }
    check_no_adapters(model)?;
    let (qkv_bias, o_bias, mlp_bias) = (config.qkv_bias(), config.o_bias(), config.mlp_bias());
    let mut c = Collector {
        dtype,
        tensors: Vec::new(),
    };
    c.push("model.embed_tokens.weight".into(), Weight::Matrix(embed));
    for (i, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let attn = &layer.self_attn;
        c.linear(format!("{p}.self_attn.q_proj"), &attn.q_proj, qkv_bias)?;
        c.linear(format!("{p}.self_attn.k_proj"), &attn.k_proj, qkv_bias)?;
        c.linear(format!("{p}.self_attn.v_proj"), &attn.v_proj, qkv_bias)?;
        c.linear(format!("{p}.self_attn.o_proj"), &attn.o_proj, o_bias)?;
        if let Some(norm) = &attn.q_norm {
            c.norm(format!("{p}.self_attn.q_norm"), norm);
        }
        if let Some(norm) = &attn.k_norm {
            c.norm(format!("{p}.self_attn.k_norm"), norm);
        }
        c.linear(format!("{p}.mlp.gate_proj"), &layer.mlp.gate_proj, mlp_bias)?;
        c.linear(format!("{p}.mlp.up_proj"), &layer.mlp.up_proj, mlp_bias)?;
        c.linear(format!("{p}.mlp.down_proj"), &layer.mlp.down_proj, mlp_bias)?;
        c.norm(format!("{p}.input_layernorm"), &layer.input_layernorm);
        c.norm(
            format!("{p}.post_attention_layernorm"),
            &layer.post_attention_layernorm,
        );
    }
    c.norm("model.norm".into(), &model.norm);
    if let Some(head) = &model.lm_head {
        c.linear("lm_head".into(), head, false)?;
    }
    Ok(c.tensors)
}

/// Writes `tensors` into `dir`: `model.safetensors` when they fit in `max_shard_bytes`,
/// otherwise `model-0000i-of-0000n.safetensors` (tensors in order, a shard closed before it
/// would pass the limit; a larger tensor gets a shard of its own) and
/// `model.safetensors.index.json`. Returns the file names written.
pub(super) fn write_safetensors<B: Backend>(
    tensors: &[NamedTensor<B>],
    dir: &Path,
    max_shard_bytes: u64,
) -> Result<Vec<String>, ExportError> {
    let mut shards: Vec<Vec<&NamedTensor<B>>> = vec![Vec::new()];
    let mut size = 0u64;
    for t in tensors {
        let len = t.byte_len() as u64;
        let current = shards.len() - 1;
        if !shards[current].is_empty() && size + len > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += len;
        let current = shards.len() - 1;
        shards[current].push(t);
    }
    let n = shards.len();
    let names: Vec<String> = if n == 1 {
        vec!["model.safetensors".into()]
    } else {
        (1..=n)
            .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
            .collect()
    };
    // transformers' `save_pretrained` writes this; some loaders check it.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    for (shard, name) in shards.iter().zip(&names) {
        let path = dir.join(name);
        let entries = shard.iter().map(|t| (t.name.as_str(), *t));
        safetensors::tensor::serialize_to_file(entries, Some(metadata.clone()), &path).map_err(
            |e| ExportError::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            },
        )?;
        super::sync_file(&path)?;
    }
    let mut written = names.clone();
    if n > 1 {
        let weight_map: BTreeMap<&str, &str> = shards
            .iter()
            .zip(&names)
            .flat_map(|(shard, name)| shard.iter().map(move |t| (t.name.as_str(), name.as_str())))
            .collect();
        let total: u64 = tensors.iter().map(|t| t.byte_len() as u64).sum();
        let index = serde_json::json!({
            "metadata": {"total_size": total},
            "weight_map": weight_map,
        });
        let name = "model.safetensors.index.json";
        super::write_json(&dir.join(name), &index)?;
        written.push(name.into());
    }
    Ok(written)
}
