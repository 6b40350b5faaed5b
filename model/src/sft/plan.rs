//! Which examples go into which optimizer step: a seeded held-out split, a seeded shuffle per
//! epoch, steps of about `batch_tokens` tokens, and within a step micro-batches of at most
//! `micro_batch_tokens` padded tokens (gradient accumulation), grouped by length so padding to
//! the longest in a micro-batch wastes little. Everything here is a pure function of the lengths
//! and the seed, so a resumed run replays the same steps.

use crate::sampler::Rng;

/// Train and held-out example indices: `round(n * fraction)` examples held out (none when
/// `fraction` is 0, at least one otherwise, never all).
pub fn split_heldout(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ 0x5EED_5EED_5EED_5EED).shuffle(&mut order);
    let held = if fraction <= 0.0 || n < 2 {
        0
    } else {
        ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
    };
    let mut heldout = order[..held].to_vec();
    let mut train = order[held..].to_vec();
    heldout.sort_unstable();
    train.sort_unstable();
    (train, heldout)
}

/// One optimizer step: its micro-batches (example indices) and how many tokens it learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub epoch: usize,
    pub micro_batches: Vec<Vec<usize>>,
    pub trained_tokens: usize,
}

/// Token budgets of a step and of one forward/backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Tokens (unpadded) per optimizer step.
    pub batch_tokens: usize,
    /// Padded tokens (`examples x longest`) per forward/backward pass.
    pub micro_batch_tokens: usize,
}

/// The steps of `epoch` over `train` (indices into `lengths`/`trained`). Every step has at least
/// one example, and so does every micro-batch, whatever the budgets.
pub fn plan_epoch(
    lengths: &[usize],
    trained: &[usize],
    train: &[usize],
    epoch: usize,
    seed: u64,
    budgets: Budgets,
) -> Vec<StepPlan> {
    let mut order = train.to_vec();
    Rng::new(
        seed.wrapping_add(epoch as u64)
            .wrapping_mul(0x2545_F491_4F6C_DD1D),
    )
    .shuffle(&mut order);
    let mut steps = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for i in order {
        if !current.is_empty() && tokens + lengths[i] > budgets.batch_tokens {
            steps.push(std::mem::take(&mut current));
            tokens = 0;
        }
        tokens += lengths[i];
        current.push(i);
    }
    if !current.is_empty() {
        steps.push(current);
    }
    steps
        .into_iter()
        .map(|step| StepPlan {
            epoch,
            trained_tokens: step.iter().map(|&i| trained[i]).sum(),
            micro_batches: micro_batches(lengths, step, budgets.micro_batch_tokens),
        })
        .collect()
}

/// Longest first; a micro-batch grows while `count x longest` fits the budget.
pub fn micro_batches(lengths: &[usize], mut step: Vec<usize>, budget: usize) -> Vec<Vec<usize>> {
    step.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in step {
        // Sorted longest first: the first member is the longest.
        let longest = current.first().map_or(lengths[i], |&f| lengths[f]);
        if !current.is_empty() && (current.len() + 1) * longest > budget {
            out.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heldout_split_is_seeded_disjoint_and_complete() {
        let (train, held) = split_heldout(100, 0.1, 7);
        assert_eq!(held.len(), 10);
        assert_eq!(train.len(), 90);
        let mut all: Vec<usize> = train.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_heldout(100, 0.1, 7), (train, held.clone()));
        assert_ne!(split_heldout(100, 0.1, 8).1, held);
        assert_eq!(split_heldout(5, 0.0, 7).1.len(), 0);
        assert_eq!(split_heldout(5, 0.01, 7).1.len(), 1);
        assert_eq!(split_heldout(2, 0.9, 7).1.len(), 1);
        assert_eq!(split_heldout(1, 0.5, 7).1.len(), 0);
    }

    #[test]
    fn steps_respect_the_budgets_and_cover_each_example_once() {
        let lengths: Vec<usize> = (0..50).map(|i| 10 + (i * 37) % 90).collect();
        let trained: Vec<usize> = lengths.iter().map(|l| l / 2).collect();
        let train: Vec<usize> = (0..50).collect();
        let budgets = Budgets {
            batch_tokens: 400,
            micro_batch_tokens: 200,
        };
        let steps = plan_epoch(&lengths, &trained, &train, 3, 1, budgets);
        let mut seen = Vec::new();
        for step in &steps {
            assert_eq!(step.epoch, 3);
            let members: Vec<usize> = step.micro_batches.concat();
            let tokens: usize = members.iter().map(|&i| lengths[i]).sum();
            assert!(tokens <= 400 || members.len() == 1);
            assert_eq!(
                step.trained_tokens,
                members.iter().map(|&i| trained[i]).sum::<usize>()
            );
            for mb in &step.micro_batches {
                let longest = mb.iter().map(|&i| lengths[i]).max().unwrap();
                assert!(mb.len() * longest <= 200 || mb.len() == 1);
            }
            seen.extend(members);
        }
        seen.sort_unstable();
        assert_eq!(seen, train);
        assert_eq!(plan_epoch(&lengths, &trained, &train, 3, 1, budgets), steps);
        assert_ne!(plan_epoch(&lengths, &trained, &train, 4, 1, budgets), steps);
    }

    #[test]
    fn an_example_over_the_budgets_gets_a_step_of_its_own() {
        let steps = plan_epoch(
            &[500, 10],
            &[1, 1],
            &[0, 1],
            0,
            0,
            Budgets {
                batch_tokens: 100,
                micro_batch_tokens: 100,
            },
        );
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().all(|s| s.micro_batches.len() == 1));
    }
}
