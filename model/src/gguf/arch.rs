//! From GGUF metadata and tensor names to what the Hugging Face model code expects.
//!
//! Two things differ between a GGUF file and an HF checkpoint of the same model:
//!
//! 1. **Names.** llama.cpp renames tensors (`blk.3.attn_q.weight` for
//!    `model.layers.3.self_attn.q_proj.weight`) and config keys (`llama.embedding_length` for
//!    `hidden_size`). [`GgufModelConfig`] uses the HF `config.json` field names, and
//!    [`GgufModelConfig::map_tensor`] gives each GGUF tensor its HF name.
//! 2. **Row order of q/k projections, for `llama` only.** llama.cpp's `LLM_ARCH_LLAMA` applies
//!    RoPE to *adjacent* pairs (ggml "NORM" rope), while HF's Llama applies it to the two
//!    *halves* of each head (rotate-half). So `convert_hf_to_gguf.py` (`LlamaModel.permute`)
//!    reorders the rows of `q_proj` (with `n_head`) and `k_proj` (with `n_head_kv`), weights and
//!    biases, so that the pairs land adjacent. [`unpermute_qk_rows`] undoes that, so one
//!    rotate-half RoPE serves every architecture. `qwen2` and `qwen3` are converted by
//!    `Qwen2Model`, which does not permute (llama.cpp runs them with NEOX rope, which *is*
//!    rotate-half), so their rows are used as stored; [`TensorMapping::unpermute_heads`] is `None`.
//!
//! Because the permutation moves whole rows and ggml quantises each row independently (blocks
//! run along `dims[0]`), the raw bytes of a quantised tensor can be un-permuted row by row
//! without dequantising: pass the bytes with the row count.

use super::error::GgufError;
use super::reader::{GgufContent, GgufFile};

/// The model families the loader implements: the same enum as `config.json`'s, so a GGUF file
/// and an HF folder of one model build the same [`crate::config::Config`].
pub use crate::config::Architecture;

impl Architecture {
    /// Parses `general.architecture`.
    pub fn from_gguf_name(name: &str) -> Result<Architecture, GgufError> {
        match name {
            "qwen2" => Ok(Architecture::Qwen2),
            "qwen3" => Ok(Architecture::Qwen3),
            "llama" => Ok(Architecture::Llama),
            other => Err(GgufError::UnsupportedArchitecture(other.to_owned())),
        }
    }

    /// The GGUF name, which is also the prefix of its metadata keys (and HF's `model_type`).
    pub fn name(self) -> &'static str {
        self.model_type()
    }

    /// Whether llama.cpp's converter permuted the q/k projection rows of this architecture.
    pub fn permutes_qk(self) -> bool {
        matches!(self, Architecture::Llama)
    }
}

/// The kind of RoPE context extension a GGUF file declares (`<arch>.rope.scaling.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeScalingKind {
    /// Position interpolation: positions divided by `factor`.
    Linear,
    /// YaRN.
    Yarn,
    /// LongRoPE (Phi-3 style).
    LongRope,
}

/// RoPE scaling as declared in the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeScaling {
    /// Which method.
    pub kind: RopeScalingKind,
    /// `<arch>.rope.scaling.factor` (or the legacy `<arch>.rope.scale_linear`).
    pub factor: f64,
    /// `<arch>.rope.scaling.original_context_length`, when given.
    pub original_max_position_embeddings: Option<usize>,
    /// `<arch>.rope.scaling.attn_factor`, when given (YaRN attention temperature).
    pub attn_factor: Option<f64>,
}

/// The model hyper-parameters a GGUF file describes, named as in HF `config.json` so the model
/// code can build its config from either source the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufModelConfig {
    /// `general.architecture`.
    pub architecture: Architecture,
    /// Length of `tokenizer.ggml.tokens` (checked against the embedding's row count).
    pub vocab_size: usize,
    /// `<arch>.embedding_length`.
    pub hidden_size: usize,
    /// `<arch>.feed_forward_length`.
    pub intermediate_size: usize,
    /// `<arch>.block_count`.
    pub num_hidden_layers: usize,
    /// `<arch>.attention.head_count`.
    pub num_attention_heads: usize,
    /// `<arch>.attention.head_count_kv`; llama.cpp takes `head_count` when absent (no GQA).
    pub num_key_value_heads: usize,
    /// `<arch>.attention.key_length` (Qwen3 sets it explicitly); llama.cpp takes
    /// `hidden_size / num_attention_heads` when absent.
    pub head_dim: usize,
    /// `<arch>.context_length`.
    pub max_position_embeddings: usize,
    /// `<arch>.attention.layer_norm_rms_epsilon` (stored as f32; widened exactly).
    pub rms_norm_eps: f64,
    /// `<arch>.rope.freq_base`; llama.cpp's default of 10000 when absent.
    pub rope_theta: f64,
    /// RoPE scaling, `None` when absent or declared `none`.
    pub rope_scaling: Option<RopeScaling>,
    /// True when the file has no `output.weight`: the output projection reuses the embedding.
    pub tie_word_embeddings: bool,
    /// True when layer 0 has `attn_q.bias` (Qwen2 does; Llama and Qwen3 normally do not).
    pub attention_bias: bool,
    /// True when layer 0 has `attn_q_norm.weight` (Qwen3's per-head q/k RMSNorm).
    pub qk_norm: bool,
}

impl GgufModelConfig {
    /// Reads the hyper-parameters of a `qwen2`, `qwen3` or `llama` GGUF file and checks them
    /// against each other and against the tensor directory.
    pub fn from_gguf(content: &GgufContent) -> Result<GgufModelConfig, GgufError> {
        let md = &content.metadata;
        let architecture = Architecture::from_gguf_name(md.get_str("general.architecture")?)?;
        let key = |k: &str| format!("{}.{k}", architecture.name());
        let opt_usize = |k: &str| -> Result<Option<usize>, GgufError> {
            let k = key(k);
            match md.get(&k) {
                None => Ok(None),
                Some(_) => md.get_usize(&k).map(Some),
            }
        };
        let opt_f64 = |k: &str| -> Result<Option<f64>, GgufError> {
            let k = key(k);
            match md.get(&k) {
                None => Ok(None),
                Some(_) => md.get_f64(&k).map(Some),
            }
        };
        let invalid = |msg: String| GgufError::InvalidModel(msg);

        let hidden_size = md.get_usize(&key("embedding_length"))?;
        let intermediate_size = md.get_usize(&key("feed_forward_length"))?;
        let num_hidden_layers = md.get_usize(&key("block_count"))?;
        let max_position_embeddings = md.get_usize(&key("context_length"))?;
        let num_attention_heads = md.get_usize(&key("attention.head_count"))?;
        let num_key_value_heads =
            opt_usize("attention.head_count_kv")?.unwrap_or(num_attention_heads);
        let rms_norm_eps = md.get_f64(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_theta = opt_f64("rope.freq_base")?.unwrap_or(10_000.0);

        if hidden_size == 0
            || num_attention_heads == 0
            || num_key_value_heads == 0
            || num_hidden_layers == 0
        {
            return Err(invalid(format!(
                "hidden size {hidden_size}, {num_hidden_layers} layers, {num_attention_heads} heads and \
                 {num_key_value_heads} kv heads must all be non-zero"
            )));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(invalid(format!(
                "{num_attention_heads} attention heads are not a multiple of {num_key_value_heads} kv heads"
            )));
        }
        let head_dim = match opt_usize("attention.key_length")? {
            Some(d) => d,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(invalid(format!(
                    "hidden size {hidden_size} is not a multiple of {num_attention_heads} heads and no key_length is given"
                )))
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(invalid(format!(
                "head dimension {head_dim} must be even and non-zero for RoPE"
            )));
        }
        if let Some(v) = opt_usize("attention.value_length")? {
            if v != head_dim {
                return Err(invalid(format!(
                    "value_length {v} differs from key_length {head_dim}"
                )));
            }
        }
        if let Some(r) = opt_usize("rope.dimension_count")? {
            if r != head_dim {
                return Err(invalid(format!(
                    "rope.dimension_count {r} differs from the head dimension {head_dim} (partial rotary is not supported)"
                )));
            }
        }
        if !(rms_norm_eps > 0.0 && rms_norm_eps.is_finite()) {
            return Err(invalid(format!(
                "layer_norm_rms_epsilon {rms_norm_eps} must be positive"
            )));
        }
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(invalid(format!(
                "rope.freq_base {rope_theta} must be positive"
            )));
        }
        if content.tensor_info("rope_freqs.weight").is_some() {
            // Llama-3.1-style per-frequency factors; ignoring them would silently change outputs.
            return Err(invalid(
                "rope_freqs.weight (Llama 3 rope frequency factors) is not supported".to_owned(),
            ));
        }
        let rope_scaling = read_rope_scaling(content, architecture)?;

        let tokens = md.get_string_array("tokenizer.ggml.tokens")?;
        let vocab_size = tokens.len();
        if let Some(v) = opt_usize("vocab_size")? {
            if v != vocab_size {
                return Err(invalid(format!(
                    "{} says {v} but the token list has {vocab_size}",
                    key("vocab_size")
                )));
            }
        }
        let embd =
            content
                .tensor_info("token_embd.weight")
                .ok_or_else(|| GgufError::MissingTensor {
                    name: "token_embd.weight".to_owned(),
                })?;
        if embd.dims != [hidden_size as u64, vocab_size as u64] {
            return Err(invalid(format!(
                "token_embd.weight has ggml dims {:?}, expected [{hidden_size}, {vocab_size}] (hidden, vocab)",
                embd.dims
            )));
        }
        let tie_word_embeddings = content.tensor_info("output.weight").is_none();
        let attention_bias = content.tensor_info("blk.0.attn_q.bias").is_some();
        let qk_norm = content.tensor_info("blk.0.attn_q_norm.weight").is_some();

        Ok(GgufModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings,
            attention_bias,
            qk_norm,
        })
    }

    /// The HF name of the GGUF tensor `gguf_name`, and whether its rows must be un-permuted.
    /// Names outside the architecture (or layers past `num_hidden_layers`) are an error, so a
    /// loader that maps every tensor accounts for all of them.
    pub fn map_tensor(&self, gguf_name: &str) -> Result<TensorMapping, GgufError> {
        let unexpected = || GgufError::UnexpectedTensor {
            name: gguf_name.to_owned(),
            arch: self.architecture.to_string(),
        };
        let (stem, kind) = gguf_name
            .strip_suffix(".weight")
            .map(|s| (s, "weight"))
            .or_else(|| gguf_name.strip_suffix(".bias").map(|s| (s, "bias")))
            .ok_or_else(unexpected)?;
        let global = match stem {
            "token_embd" => Some("model.embed_tokens"),
            "output_norm" => Some("model.norm"),
            "output" => Some("lm_head"),
            _ => None,
        };
        if let Some(hf) = global {
            if kind != "weight" {
                return Err(unexpected());
            }
            return Ok(TensorMapping {
                hf_name: format!("{hf}.weight"),
                unpermute_heads: None,
            });
        }
        let rest = stem.strip_prefix("blk.").ok_or_else(unexpected)?;
        let (layer, part) = rest.split_once('.').ok_or_else(unexpected)?;
        // Plain decimal only: `parse` would also accept "+3", which no writer produces.
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unexpected());
        }
        let layer: usize = layer.parse().map_err(|_| unexpected())?;
        if layer >= self.num_hidden_layers {
            return Err(unexpected());
        }
        let (hf_part, has_bias, heads) = match part {
            "attn_norm" => ("input_layernorm", false, None),
            "attn_q" => ("self_attn.q_proj", true, Some(self.num_attention_heads)),
            "attn_k" => ("self_attn.k_proj", true, Some(self.num_key_value_heads)),
            "attn_v" => ("self_attn.v_proj", true, None),
            "attn_output" => ("self_attn.o_proj", false, None),
            "attn_q_norm" if self.architecture == Architecture::Qwen3 => {
                ("self_attn.q_norm", false, None)
            }
            "attn_k_norm" if self.architecture == Architecture::Qwen3 => {
                ("self_attn.k_norm", false, None)
            }
            "ffn_norm" => ("post_attention_layernorm", false, None),
            "ffn_gate" => ("mlp.gate_proj", false, None),
            "ffn_up" => ("mlp.up_proj", false, None),
            "ffn_down" => ("mlp.down_proj", false, None),
            _ => return Err(unexpected()),
        };
        if kind == "bias" && !has_bias {
            return Err(unexpected());
        }
        Ok(TensorMapping {
            hf_name: format!("model.layers.{layer}.{hf_part}.{kind}"),
            unpermute_heads: heads.filter(|_| self.architecture.permutes_qk()),
        })
    }
}

impl GgufModelConfig {
    /// Reads GGUF tensor `gguf_name` as the HF model wants it: HF name, HF shape (outermost
    /// first), f32 values in row-major order, q/k rows un-permuted for `llama`. This is the
    /// whole per-tensor loading step for an f32 model; a loader that keeps weights quantised
    /// uses [`GgufModelConfig::map_tensor`] and [`unpermute_qk_rows`] on the raw rows instead.
    pub fn load_tensor(&self, file: &GgufFile, gguf_name: &str) -> Result<HfTensor, GgufError> {
        let mapping = self.map_tensor(gguf_name)?;
        let view = file.tensor(gguf_name)?;
        let mut values = view.to_f32()?;
        if let Some(n_head) = mapping.unpermute_heads {
            values = unpermute_qk_rows(&values, view.info.n_rows as usize, n_head)?;
        }
        Ok(HfTensor {
            name: mapping.hf_name,
            shape: view.info.shape(),
            values,
        })
    }
}

/// A tensor in HF naming and layout, dequantised to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HfTensor {
    /// The HF parameter name.
    pub name: String,
    /// The HF shape, outermost first (`[out, in]` for a linear weight).
    pub shape: Vec<usize>,
    /// The values, row-major over `shape`.
    pub values: Vec<f32>,
}

/// Where a GGUF tensor goes in the HF model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapping {
    /// The HF parameter name (`model.layers.0.self_attn.q_proj.weight`).
    pub hf_name: String,
    /// `Some(n_head)` when the rows were permuted by llama.cpp's converter and must be passed
    /// through [`unpermute_qk_rows`] with this head count (`num_attention_heads` for q,
    /// `num_key_value_heads` for k).
    pub unpermute_heads: Option<usize>,
}

fn read_rope_scaling(
    content: &GgufContent,
    arch: Architecture,
) -> Result<Option<RopeScaling>, GgufError> {
    let md = &content.metadata;
    let key = |k: &str| format!("{}.rope.{k}", arch.name());
    let opt_f64 = |k: &str| md.get(&key(k)).map(|_| md.get_f64(&key(k))).transpose();
    let original = match md.get(&key("scaling.original_context_length")) {
        None => None,
        Some(_) => Some(md.get_usize(&key("scaling.original_context_length"))?),
    };
    let attn_factor = opt_f64("scaling.attn_factor")?;
    let kind = match md.get(&key("scaling.type")) {
        None => None,
        Some(_) => match md.get_str(&key("scaling.type"))? {
            "none" => None,
            "linear" => Some(RopeScalingKind::Linear),
            "yarn" => Some(RopeScalingKind::Yarn),
            "longrope" => Some(RopeScalingKind::LongRope),
            other => {
                return Err(GgufError::InvalidModel(format!(
                    "unknown {} {other:?}",
                    key("scaling.type")
                )));
            }
        },
    };
    let scaling = match (kind, opt_f64("scaling.factor")?, opt_f64("scale_linear")?) {
        (Some(kind), Some(factor), _) => Some(RopeScaling {
            kind,
            factor,
            original_max_position_embeddings: original,
            attn_factor,
        }),
        (Some(kind), None, _) => {
            return Err(GgufError::InvalidModel(format!(
                "{kind:?} rope scaling without {}",
                key("scaling.factor")
            )));
        }
        // Older files only carry `rope.scale_linear`; 1.0 means no scaling.
        (None, _, Some(f)) if f != 1.0 && md.get(&key("scaling.type")).is_none() => {
            Some(RopeScaling {
                kind: RopeScalingKind::Linear,
                factor: f,
                original_max_position_embeddings: original,
                attn_factor,
            })
        }
        _ => None,
    };
    if let Some(s) = &scaling {
        if !(s.factor > 0.0 && s.factor.is_finite()) {
            return Err(GgufError::InvalidModel(format!(
                "rope scaling factor {} must be positive",
                s.factor
            )));
        }
    }
    Ok(scaling)
}

fn check_permutation(len: usize, n_rows: usize, n_head: usize) -> Result<usize, GgufError> {
    let ok = n_rows > 0
        && n_head > 0
        && n_rows.is_multiple_of(n_head)
        && (n_rows / n_head).is_multiple_of(2)
        && len.is_multiple_of(n_rows);
    if !ok {
        return Err(GgufError::InvalidModel(format!(
            "cannot (un)permute {len} items as {n_rows} rows of {n_head} heads with an even head dimension"
        )));
    }
    Ok(len / n_rows)
}

/// Undoes llama.cpp's q/k row permutation (`LlamaModel.permute` in convert_hf_to_gguf.py).
///
/// `data` holds `n_rows` equal rows (f32 values after dequantisation, or the raw bytes of a
/// quantised tensor, whose rows are quantised independently). Within each head of
/// `head_dim = n_rows / n_head` rows, stored row `2j + i` goes back to row `i * head_dim/2 + j`
/// (i in {0, 1}): the file interleaves the two rotary halves, HF keeps them apart.
pub fn unpermute_qk_rows<T: Copy>(
    data: &[T],
    n_rows: usize,
    n_head: usize,
) -> Result<Vec<T>, GgufError> {
    let row_len = check_permutation(data.len(), n_rows, n_head)?;
    let head_dim = n_rows / n_head;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                let src = (h * head_dim + 2 * j + i) * row_len;
                out.extend_from_slice(&data[src..src + row_len]);
            }
        }
    }
    Ok(out)
}

/// llama.cpp's q/k row permutation itself (the inverse of [`unpermute_qk_rows`]), for writing
/// GGUF files and for tests.
pub fn permute_qk_rows<T: Copy>(
    data: &[T],
    n_rows: usize,
    n_head: usize,
) -> Result<Vec<T>, GgufError> {
    let row_len = check_permutation(data.len(), n_rows, n_head)?;
    let head_dim = n_rows / n_head;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for j in 0..half {
            for i in 0..2 {
                let src = (h * head_dim + i * half + j) * row_len;
                out.extend_from_slice(&data[src..src + row_len]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_round_trips() {
        let data: Vec<u32> = (0..(3 * 8 * 5)).collect();
        let p = permute_qk_rows(&data, 24, 3).expect("valid shape");
        assert_ne!(p, data);
        assert_eq!(unpermute_qk_rows(&p, 24, 3).expect("valid shape"), data);
        // head 0, head_dim 8: stored rows are 0,4,1,5,2,6,3,7
        let rows: Vec<u32> = p.chunks(5).take(8).map(|r| r[0] / 5).collect();
        assert_eq!(rows, [0, 4, 1, 5, 2, 6, 3, 7]);
    }

    #[test]
    fn permutation_rejects_bad_shapes() {
        let data = [0u8; 30];
        assert!(unpermute_qk_rows(&data, 6, 4).is_err()); // 6 rows, 4 heads
        assert!(unpermute_qk_rows(&data, 6, 2).is_err()); // head_dim 3 is odd
        assert!(unpermute_qk_rows(&data, 4, 2).is_err()); // 30 not a multiple of 4 rows
        assert!(unpermute_qk_rows(&data, 0, 0).is_err());
    }
}
