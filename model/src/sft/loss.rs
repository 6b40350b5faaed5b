//! The causal-LM loss over learned tokens only: examples padded on the right to the longest in the
//! micro-batch (with causal attention a padded tail never reaches a real position), the output
//! projection applied only at positions whose next token is learned (the vocabulary projection of
//! prompt positions would be wasted work), and the negative log-likelihood summed.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::example::TokenizedExample;
use crate::model::{ForwardError, Model};

/// Sum over the learned tokens of `examples` of `-log p(token | tokens before it)`, as a
/// one-element tensor (differentiable on an autodiff backend), and the number of such tokens.
pub fn nll_sum<B: Backend>(
    model: &Model<B>,
    examples: &[&TokenizedExample],
) -> Result<(Tensor<B, 1>, usize), ForwardError> {
    let longest = examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .ok_or(ForwardError::Empty)?;
    let mut padded: Vec<Vec<u32>> = Vec::with_capacity(examples.len());
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (r, e) in examples.iter().enumerate() {
        let mut ids = e.ids.clone();
        // Any valid id: the padded tail is never attended to by real positions nor scored.
        ids.resize(longest, 0);
        padded.push(ids);
        for t in 1..e.ids.len() {
            if e.loss_mask[t] {
                rows.push((r * longest + t - 1) as i64);
                targets.push(e.ids[t] as i64);
            }
        }
    }
    let n = rows.len();
    let device = model.embed_tokens.weight.device();
    if n == 0 {
        return Ok((Tensor::zeros([1], &device), 0));
    }
    let refs: Vec<&[u32]> = padded.iter().map(Vec::as_slice).collect();
    let tokens = model.tokens(&refs)?;
    let mut cache = model.new_cache();
    // [batch, seq, hidden]
    let hidden = model.forward_hidden(tokens, &mut cache)?;
    let [b, s, h] = hidden.dims();
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [n]), &device);
    // [n, hidden]: the positions that predict a learned token.
    let picked = hidden.reshape([b * s, h]).select(0, rows);
    let logits = model.head(picked.reshape([1, n, h]));
    let vocab = logits.dims()[2];
    let logp = log_softmax(logits.reshape([n, vocab]), 1);
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let nll = logp.gather(1, targets).sum().neg();
    Ok((nll, n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::fixture_model;
    use burn::backend::Flex;

    /// The loss of one example equals the hand-computed sum over its learned positions, and
    /// padding it beside a longer example changes nothing.
    #[test]
    fn nll_matches_the_logits_and_ignores_padding() {
        let model = fixture_model::<Flex>("qwen2_gqa4_untied");
        let short = TokenizedExample {
            ids: vec![3, 7, 11, 5, 9],
            loss_mask: vec![false, false, true, false, true],
        };
        let long = TokenizedExample {
            ids: vec![4, 8, 15, 16, 23, 42, 2, 1],
            loss_mask: vec![false, true, true, true, true, true, true, true],
        };
        let logits = model.logits(&short.ids).unwrap();
        let logp = log_softmax(logits, 1).into_data().to_vec::<f32>().unwrap();
        let vocab = model.vocab_size();
        let expect = -(logp[vocab + 11] as f64) - (logp[3 * vocab + 9] as f64);

        let (alone, n) = nll_sum(&model, &[&short]).unwrap();
        assert_eq!(n, 2);
        let alone = alone.into_scalar() as f64;
        assert!((alone - expect).abs() < 1e-4, "{alone} vs {expect}");

        let (both, n) = nll_sum(&model, &[&long, &short]).unwrap();
        assert_eq!(n, 9);
        let (long_alone, _) = nll_sum(&model, &[&long]).unwrap();
        let sum = long_alone.into_scalar() as f64 + alone;
        assert!((both.into_scalar() as f64 - sum).abs() < 1e-3);
    }
}
