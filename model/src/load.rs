//! Build a [`Model`] from a Hugging Face checkpoint folder (`config.json` + safetensors),
//! walking the checkpoint's own tensor names (`model.layers.{i}.self_attn.q_proj.weight`, ...).

use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::attention::{Attention, AttentionSettings};
use crate::config::{Architecture, Config};
use crate::layer::DecoderLayer;
use crate::linear::hf_linear;
use crate::mlp::Mlp;
use crate::model::Model;
use crate::norm::RmsNorm;
use crate::rope::Rope;
use crate::weights::{LoadError, TensorSource, WeightStore};

/// Load `dir/config.json` and its weights onto `device`.
pub fn load_checkpoint<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Config, Model<B>), LoadError> {
    let config = Config::from_file(&dir.join("config.json"))?;
    let model = load_weights(dir, &config, device)?;
    Ok((config, model))
}

/// Load the weights of `dir` for an already-read (possibly adjusted, e.g. the attention
/// implementation) `config`.
pub fn load_weights<B: Backend>(
    dir: &Path,
    config: &Config,
    device: &B::Device,
) -> Result<Model<B>, LoadError> {
    let mut store = WeightStore::open(dir)?;
    let model = build_model(config, &mut store, device)?;
    store.finish()?;
    tracing::debug!(dir = %dir.display(), layers = config.num_hidden_layers, "loaded checkpoint");
    Ok(model)
}

struct Reader<'a, B: Backend, S: TensorSource> {
    store: &'a mut S,
    device: &'a B::Device,
}

impl<B: Backend, S: TensorSource> Reader<'_, B, S> {
    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, LoadError> {
        let values = self.store.take(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// `{prefix}.weight` `[out, in]` and, if `bias`, `{prefix}.bias` `[out]`.
    fn linear(
        &mut self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear<B>, LoadError> {
        let w = self.tensor(&format!("{prefix}.weight"), [out, inp])?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), [out])?)
        } else {
            None
        };
        Ok(hf_linear(w, b))
    }

    fn norm(&mut self, prefix: &str, dim: usize, eps: f64) -> Result<RmsNorm<B>, LoadError> {
        Ok(RmsNorm::new(
            self.tensor(&format!("{prefix}.weight"), [dim])?,
            eps,
        ))
    }
}

/// Build the model from `store`, taking every tensor the config implies. The caller checks
/// with [`TensorSource::finish`] that nothing is left over.
pub fn build_model<B: Backend, S: TensorSource>(
    config: &Config,
    store: &mut S,
    device: &B::Device,
) -> Result<Model<B>, LoadError> {
    config.validate()?;
    let arch = config.architecture()?;
    let (hidden, inter, vocab) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let (h, kvh, d) = (
        config.num_attention_heads,
        config.num_kv_heads(),
        config.head_dim(),
    );
    let eps = config.rms_norm_eps();
    let (qkv_bias, o_bias, mlp_bias) = (config.qkv_bias(), config.o_bias(), config.mlp_bias());
    let logn_train_len = if config.use_logn_attn {
        config.seq_length
    } else {
        None
    };
    let mut r = Reader::<B, S> { store, device };

    let embed = r.tensor("model.embed_tokens.weight", [vocab, hidden])?;
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let (q_norm, k_norm) = if arch == Architecture::Qwen3 {
            (
                Some(r.norm(&format!("{p}.self_attn.q_norm"), d, eps)?),
                Some(r.norm(&format!("{p}.self_attn.k_norm"), d, eps)?),
            )
        } else {
            (None, None)
        };
        let self_attn = Attention {
            q_proj: r.linear(&format!("{p}.self_attn.q_proj"), h * d, hidden, qkv_bias)?,
            k_proj: r.linear(&format!("{p}.self_attn.k_proj"), kvh * d, hidden, qkv_bias)?,
            v_proj: r.linear(&format!("{p}.self_attn.v_proj"), kvh * d, hidden, qkv_bias)?,
            o_proj: r.linear(&format!("{p}.self_attn.o_proj"), hidden, h * d, o_bias)?,
            q_norm,
            k_norm,
            q_lora: None,
            k_lora: None,
            v_lora: None,
            o_lora: None,
            settings: AttentionSettings {
                num_heads: h,
                num_kv_heads: kvh,
                head_dim: d,
                window: config.layer_window(i),
                logn_train_len,
                implementation: config.attention_implementation,
            },
        };
        let mlp = Mlp {
            gate_proj: r.linear(&format!("{p}.mlp.gate_proj"), inter, hidden, mlp_bias)?,
            up_proj: r.linear(&format!("{p}.mlp.up_proj"), inter, hidden, mlp_bias)?,
            down_proj: r.linear(&format!("{p}.mlp.down_proj"), hidden, inter, mlp_bias)?,
            gate_lora: None,
            up_lora: None,
            down_lora: None,
        };
        layers.push(DecoderLayer {
            self_attn,
            mlp,
            input_layernorm: r.norm(&format!("{p}.input_layernorm"), hidden, eps)?,
            post_attention_layernorm: r.norm(
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            )?,
        });
    }
    let norm = r.norm("model.norm", hidden, eps)?;
    let lm_head = if config.tie_word_embeddings {
        // Some tied checkpoints still store the head; accept it only if it is the embedding.
        if r.store.contains("lm_head.weight") {
            let file = r.store.file_of("lm_head.weight");
            let head = r.store.take("lm_head.weight", &[vocab, hidden])?;
            let emb = embed
                .to_data()
                .to_vec::<f32>()
                .map_err(|_| LoadError::TiedMismatch { file: file.clone() })?;
            if head != emb {
                return Err(LoadError::TiedMismatch { file });
            }
        }
        None
    } else {
        Some(r.linear("lm_head", vocab, hidden, false)?)
    };
    Ok(Model {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers,
        norm,
        lm_head,
        rope: Rope {
            dim: d,
            theta: config.rope_theta(),
            scaling: config.rope_scaling()?,
            max_position_embeddings: config.max_position_embeddings(),
        },
    })
}
