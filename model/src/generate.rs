//! Greedy decoding, with the KV cache and (as a reference) without it.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::model::{ForwardError, Model};
use crate::sampler::argmax;

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token was produced (it is included in the output).
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated tokens only (not the prompt).
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
}

/// The argmax of the last row of `logits` (`[1, seq, vocab]`).
fn last_argmax<B: Backend>(logits: Tensor<B, 3>) -> u32 {
    let [_, s, v] = logits.dims();
    let row = logits.slice([0..1, s - 1..s, 0..v]).into_data();
    match row.to_vec::<f32>() {
        Ok(values) => argmax(&values),
        // Backends with another float element: convert through the generic path.
        Err(_) => argmax(&row.convert::<f32>().to_vec::<f32>().unwrap_or_default()),
    }
}

/// Greedy continuation of `prompt`: a prefill, then one cached step per token.
pub fn greedy<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    max_new_tokens: usize,
    eos: &[u32],
) -> Result<Generation, ForwardError> {
    let mut cache = model.new_cache();
    let mut tokens = Vec::with_capacity(max_new_tokens);
    let mut input = model.tokens(&[prompt])?;
    while tokens.len() < max_new_tokens {
        let next = last_argmax(model.forward(input, &mut cache)?);
        tokens.push(next);
        if eos.contains(&next) {
            return Ok(Generation {
                tokens,
                finish_reason: FinishReason::Stop,
            });
        }
        input = model.tokens(&[&[next]])?;
    }
    Ok(Generation {
        tokens,
        finish_reason: FinishReason::Length,
    })
}

/// Greedy continuation recomputing the whole sequence every step (the reference for the cache).
pub fn greedy_no_cache<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    max_new_tokens: usize,
    eos: &[u32],
) -> Result<Generation, ForwardError> {
    let mut seq = prompt.to_vec();
    let mut tokens = Vec::with_capacity(max_new_tokens);
    while tokens.len() < max_new_tokens {
        let mut cache = model.new_cache();
        let next = last_argmax(model.forward(model.tokens(&[&seq])?, &mut cache)?);
        tokens.push(next);
        seq.push(next);
        if eos.contains(&next) {
            return Ok(Generation {
                tokens,
                finish_reason: FinishReason::Stop,
            });
        }
    }
    Ok(Generation {
        tokens,
        finish_reason: FinishReason::Length,
    })
}
