//! AdamW (Loshchilov & Hutter, decoupled weight decay) with clipping by the global gradient norm
//! (the norm over all parameters at once, as `clip_grad_norm_` does, rather than burn's
//! per-parameter clipping), warmup + cosine learning rate, and moments that can be saved and
//! restored, so a resumed run continues exactly where it stopped.
//!
//! Parameters are addressed by their position in the module's visiting order, which is the same
//! for every model built from the same checkpoint and settings; that is what makes the saved
//! state independent of burn's random parameter ids.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};

/// Hyper-parameters of the optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; `None` or a non-positive value: no clipping.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        }
    }
}

/// Linear warmup over `warmup` steps to `peak`, then cosine decay to zero at `total` steps.
/// `step` counts from 0.
pub fn learning_rate(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// First and second moments of one parameter, flattened.
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    pub m: Tensor<B, 1>,
    pub v: Tensor<B, 1>,
}

/// The optimizer's state: moments by parameter position and the number of updates made.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    pub settings: AdamWSettings,
    pub moments: BTreeMap<usize, Moments<B>>,
    pub updates: u64,
}

impl<B: Backend> AdamW<B> {
    pub fn new(settings: AdamWSettings) -> Self {
        Self {
            settings,
            moments: BTreeMap::new(),
            updates: 0,
        }
    }
}

/// Global L2 norm of the gradients in `grads` of `module`'s parameters.
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let s: f64 = g.square().sum().into_scalar().elem();
                self.total += s;
            }
        }
    }
    let mut visitor = SumSquares { grads, total: 0.0 };
    module.visit(&mut visitor);
    visitor.total.sqrt()
}

struct Update<'a, B: AutodiffBackend> {
    state: &'a mut AdamW<B::InnerBackend>,
    grads: &'a mut GradientsParams,
    lr: f64,
    grad_scale: f64,
    position: usize,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let position = self.position;
        self.position += 1;
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return param;
        };
        let s = self.state.settings;
        let t = self.state.updates as i32;
        let shape = grad.shape();
        let n = shape.num_elements();
        let g = grad.reshape([n]).mul_scalar(self.grad_scale);
        let moments = self
            .state
            .moments
            .entry(position)
            .or_insert_with(|| Moments {
                m: g.zeros_like(),
                v: g.zeros_like(),
            });
        let m = moments.m.clone().mul_scalar(s.beta1) + g.clone().mul_scalar(1.0 - s.beta1);
        let v = moments.v.clone().mul_scalar(s.beta2) + g.square().mul_scalar(1.0 - s.beta2);
        moments.m = m.clone();
        moments.v = v.clone();
        let m_hat = m.div_scalar(1.0 - s.beta1.powi(t));
        let v_hat = v.div_scalar(1.0 - s.beta2.powi(t));
        let step = m_hat
            .div(v_hat.sqrt().add_scalar(s.eps))
            .mul_scalar(self.lr);
        let (lr, wd) = (self.lr, s.weight_decay);
        param.map(|p| {
            let value = p.inner().reshape([n]);
            let value = if wd > 0.0 {
                value.mul_scalar(1.0 - lr * wd)
            } else {
                value
            };
            Tensor::from_inner((value - step).reshape(shape)).require_grad()
        })
    }
}

/// One AdamW update of `module` with `grads` at learning rate `lr`; returns the module and the
/// global gradient norm before clipping.
pub fn step<B: AutodiffBackend, M: AutodiffModule<B>>(
    state: &mut AdamW<B::InnerBackend>,
    module: M,
    mut grads: GradientsParams,
    lr: f64,
) -> (M, f64) {
    let norm = global_grad_norm(&module, &grads);
    let grad_scale = match state.settings.max_grad_norm {
        Some(max) if max > 0.0 && norm > max => max / (norm + 1e-6),
        _ => 1.0,
    };
    state.updates += 1;
    let mut update = Update::<B> {
        state,
        grads: &mut grads,
        lr,
        grad_scale,
        position: 0,
    };
    (module.map(&mut update), norm)
}

/// Flat `f32` values of the module's trainable parameters by position (what a checkpoint keeps).
pub fn trainable_values<B: Backend, M: burn::module::Module<B>>(
    module: &M,
) -> BTreeMap<usize, (Vec<usize>, Vec<f32>)> {
    struct Collect {
        position: usize,
        out: BTreeMap<usize, (Vec<usize>, Vec<f32>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let position = self.position;
            self.position += 1;
            let value = param.val();
            if value.is_require_grad() {
                let shape = value.dims().to_vec();
                let data = value.into_data().convert::<f32>();
                if let Ok(values) = data.to_vec::<f32>() {
                    self.out.insert(position, (shape, values));
                }
            }
        }
    }
    let mut visitor = Collect {
        position: 0,
        out: BTreeMap::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// A saved value that does not fit the module it is restored into.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("saved parameter {position} has shape {saved:?}, the model's has {model:?}")]
pub struct ShapeMismatch {
    pub position: usize,
    pub saved: Vec<usize>,
    pub model: Vec<usize>,
}

/// Replaces the values of the parameters at the saved positions (keeping them trainable).
pub fn restore_values<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: M,
    values: &BTreeMap<usize, (Vec<usize>, Vec<f32>)>,
) -> Result<M, ShapeMismatch> {
    struct Restore<'a> {
        values: &'a BTreeMap<usize, (Vec<usize>, Vec<f32>)>,
        position: usize,
        error: Option<ShapeMismatch>,
        restored: usize,
    }
    impl<B: AutodiffBackend> ModuleMapper<B> for Restore<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let position = self.position;
            self.position += 1;
            let Some((shape, values)) = self.values.get(&position) else {
                return param;
            };
            let dims = param.val().dims().to_vec();
            if &dims != shape {
                self.error.get_or_insert(ShapeMismatch {
                    position,
                    saved: shape.clone(),
                    model: dims,
                });
                return param;
            }
            self.restored += 1;
            param.map(|p| {
                let device = p.device();
                let data = TensorData::new(values.clone(), shape.clone());
                Tensor::<B, D>::from_data(data, &device).require_grad()
            })
        }
    }
    let mut mapper = Restore {
        values,
        position: 0,
        error: None,
        restored: 0,
    };
    let module = module.map(&mut mapper);
    match mapper.error {
        Some(e) => Err(e),
        None => Ok(module),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        assert!((learning_rate(1.0, 0, 4, 20) - 0.25).abs() < 1e-12);
        assert!((learning_rate(1.0, 3, 4, 20) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 4, 4, 20) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 12, 4, 20) - 0.5).abs() < 1e-12);
        assert!(learning_rate(1.0, 20, 4, 20).abs() < 1e-12);
        assert!((learning_rate(2.0, 0, 0, 1) - 2.0).abs() < 1e-12);
    }
}
