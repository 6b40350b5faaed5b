//! Choosing the next token from a row of logits: OpenAI-style presence/frequency penalties,
//! then greedy argmax (temperature 0) or temperature, top-k, top-p and a seeded draw.
//!
//! The order is vLLM's: penalties -> temperature -> top-k -> top-p -> sample. Penalties count
//! generated tokens only (not the prompt), as vLLM and the OpenAI API do, and apply to greedy
//! decoding too (self-instruct's instance generation is greedy with presence_penalty 1.5).

use std::collections::HashMap;

/// How to pick tokens. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens whose probabilities sum to `top_p` (1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Subtracted once from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated.
    pub frequency_penalty: f32,
    /// Seed of this request's random stream.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

/// Invalid sampling parameters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplingError {
    #[error("temperature must be finite and >= 0, got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("{name} must be finite, got {value}")]
    Penalty { name: &'static str, value: f32 },
}

impl SamplingParams {
    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        for (name, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !value.is_finite() {
                return Err(SamplingError::Penalty { name, value });
            }
        }
        Ok(())
    }
}

/// SplitMix64: small, fast, and the same stream on every platform and crate version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Per-sequence sampling state: the params, the random stream and the counts of generated tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = Rng::new(params.seed);
        Self {
            params,
            rng,
            counts: HashMap::new(),
        }
    }

    /// Pick the next token from `logits` (`[vocab]`, modified in place) and record it.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        let p = &self.params;
        for (&tok, &n) in &self.counts {
            if let Some(l) = logits.get_mut(tok as usize) {
                *l -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
        let token = if p.temperature == 0.0 {
            argmax(logits)
        } else {
            self.draw(logits)
        };
        *self.counts.entry(token).or_insert(0) += 1;
        token
    }

    fn draw(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        // Candidates sorted by logit, descending (stable: lower id first on ties).
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        if p.top_k > 0 {
            order.truncate(p.top_k.max(1));
        }
        let max = logits[order[0] as usize] as f64;
        let weights: Vec<f64> = order
            .iter()
            .map(|&t| ((logits[t as usize] as f64 - max) / p.temperature as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        // Nucleus: keep tokens while the mass before them is below top_p.
        let mut keep = order.len();
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, w) in weights.iter().enumerate() {
                if cum >= p.top_p as f64 * total {
                    keep = i.max(1);
                    break;
                }
                cum += w;
            }
        }
        let kept_total: f64 = weights[..keep].iter().sum();
        let mut u = self.rng.next_f64() * kept_total;
        for (i, w) in weights[..keep].iter().enumerate() {
            if u < *w {
                return order[i];
            }
            u -= w;
        }
        order[keep - 1]
    }
}

/// Index of the largest value; the first one on ties, like `torch.argmax`.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            ..Default::default()
        }
    }

    #[test]
    fn greedy_is_argmax_first_on_ties() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn presence_and_frequency_penalties() {
        // After generating token 0 twice: presence 1 and frequency 0.5 subtract 1 + 2 * 0.5 = 2.
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 1.0,
            frequency_penalty: 0.5,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [3.0, 0.0]), 0);
        assert_eq!(s.sample(&mut [3.0, 0.0]), 0); // 3 - 1.5 = 1.5 > 0
        let mut logits = [3.0, 1.5];
        // 3 - 2 = 1 < 1.5
        assert_eq!(s.sample(&mut logits), 1);
        assert_eq!(logits, [1.0, 1.5]);
    }

    #[test]
    fn same_seed_same_stream() {
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1.0)
            });
            (0..32)
                .map(|_| s.sample(&mut [0.1, 0.2, 0.3, 0.4, 0.0]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            ..params(5.0)
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 0.5]), 1);
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // probs ~ [0.64, 0.24, 0.09, 0.03]: top_p 0.5 keeps only the first, 0.8 the first two.
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.5,
            ..params(1.0)
        });
        assert!((0..50).all(|_| s.sample(&mut logits.clone()) == 0));
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.8,
            seed: 3,
            ..params(1.0)
        });
        let seen: std::collections::BTreeSet<u32> =
            (0..200).map(|_| s.sample(&mut logits.clone())).collect();
        assert_eq!(seen, [0, 1].into_iter().collect());
    }

    #[test]
    fn temperature_follows_softmax() {
        // Two tokens with logit gap ln 3 at temperature 1: P(0) = 0.75.
        let mut s = Sampler::new(SamplingParams {
            seed: 11,
            ..params(1.0)
        });
        let n = 20_000;
        let zeros = (0..n)
            .filter(|_| s.sample(&mut [3f32.ln(), 0.0]) == 0)
            .count();
        let frac = zeros as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.015, "{frac}");
    }

    #[test]
    fn invalid_params() {
        assert_eq!(
            params(-1.0).validate(),
            Err(SamplingError::Temperature(-1.0))
        );
        assert_eq!(
            SamplingParams {
                top_p: 0.0,
                ..params(1.0)
            }
            .validate(),
            Err(SamplingError::TopP(0.0))
        );
        assert!(params(0.7).validate().is_ok());
    }
}
