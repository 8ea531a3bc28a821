//! Adam on candle tensors, with global-norm gradient clipping and a guard
//! against non-finite gradients. Written here rather than taken from
//! `candle_nn::AdamW` because a checkpoint must hold the moment estimates and
//! the step count to resume bit for bit, and candle keeps those private.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

/// Adam's state for a list of variables.
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// First moment estimates, one per variable.
    pub m: Vec<Tensor>,
    /// Second moment estimates, one per variable.
    pub v: Vec<Tensor>,
    /// Updates taken.
    pub t: u64,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Applied.
    Applied {
        /// The gradient's global norm before clipping.
        norm: f64,
    },
    /// Skipped: the gradient was not finite.
    Skipped,
}

/// Adam's decay rates of the moments and the denominator's guard.
pub(crate) const BETA1: f64 = 0.9;
pub(crate) const BETA2: f64 = 0.999;
pub(crate) const EPS: f64 = 1e-8;

impl Adam {
    /// Zero moments for `vars`.
    pub fn new(vars: &[Var], lr: f64) -> Result<Adam> {
        let zeros = || -> Result<Vec<Tensor>> { vars.iter().map(|v| v.zeros_like()).collect() };
        Ok(Adam {
            lr,
            m: zeros()?,
            v: zeros()?,
            t: 0,
        })
    }

    /// One step along `grads` (missing gradients count as zero), after
    /// scaling them to global norm at most `clip` (when given).
    pub fn step(&mut self, vars: &[Var], grads: &[Tensor], clip: Option<f64>) -> Result<Update> {
        let norm = grads
            .iter()
            .map(|g| g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>())
            .sum::<Result<f64>>()?
            .sqrt();
        let Some(scale) = clip_scale(norm, clip) else {
            return Ok(Update::Skipped);
        };
        self.t += 1;
        let t = self.t as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let g = g.affine(scale, 0.0)?;
            self.m[i] = ((&self.m[i] * BETA1)? + (&g * (1.0 - BETA1))?)?;
            self.v[i] = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let mhat = (&self.m[i] / c1)?;
            let denom = ((&self.v[i] / c2)?.sqrt()? + EPS)?;
            let delta = (mhat / denom)?.affine(self.lr, 0.0)?;
            var.set(&(var.as_tensor() - delta)?)?;
        }
        Ok(Update::Applied { norm })
    }
}

/// A learning rate `lr` falling linearly to zero over `decay` iterations,
/// after `done` of them (`decay` 0: constant).
pub fn decayed(lr: f64, decay: usize, done: usize) -> f64 {
    match decay {
        0 => lr,
        n => lr * (1.0 - done as f64 / n as f64).max(0.0),
    }
}

/// The factor on a gradient of global norm `norm` clipped to `clip`
/// (`clip / norm` past it, else 1); `None` where the norm is not finite
/// (the step is skipped).
pub fn clip_scale(norm: f64, clip: Option<f64>) -> Option<f64> {
    if !norm.is_finite() {
        return None;
    }
    Some(match clip {
        Some(c) if norm > c => c / norm,
        _ => 1.0,
    })
}

/// The gradients of `vars` in `store`, zeros where a variable had none.
pub fn grads_of(store: &GradStore, vars: &[Var]) -> Result<Vec<Tensor>> {
    vars.iter()
        .map(|v| match store.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.zeros_like(),
        })
        .collect()
}

/// Element-wise sums of two gradient lists.
pub fn add_grads(acc: &mut [Tensor], more: &[Tensor]) -> Result<()> {
    for (a, m) in acc.iter_mut().zip(more) {
        *a = (&*a + m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_decayed_rate_falls_linearly_to_zero() {
        assert_eq!(decayed(0.1, 0, 7), 0.1);
        assert_eq!(decayed(0.1, 4, 0), 0.1);
        assert!((decayed(0.1, 4, 1) - 0.075).abs() < 1e-15);
        assert_eq!(decayed(0.1, 4, 4), 0.0);
        assert_eq!(decayed(0.1, 4, 9), 0.0);
    }

    #[test]
    fn adam_minimises_a_quadratic_and_skips_non_finite_gradients() -> Result<()> {
        let x = Var::from_vec(vec![3.0f64, -2.0], 2, &Device::Cpu)?;
        let xs = std::slice::from_ref(&x);
        let mut adam = Adam::new(xs, 0.1)?;
        for _ in 0..500 {
            let loss = x.as_tensor().sqr()?.sum_all()?;
            let g = grads_of(&loss.backward()?, xs)?;
            adam.step(xs, &g, Some(1.0))?;
        }
        let v = x.as_tensor().to_vec1::<f64>()?;
        assert!(v.iter().all(|c| c.abs() < 1e-2), "{v:?}");
        let bad = Tensor::new(&[f64::NAN, 0.0], &Device::Cpu)?;
        let before = adam.t;
        assert_eq!(adam.step(xs, &[bad], None)?, Update::Skipped);
        assert_eq!(adam.t, before);
        assert_eq!(x.as_tensor().to_vec1::<f64>()?, v);
        Ok(())
    }
}
