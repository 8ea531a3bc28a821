//! The learning curve: one [`Point`] per iteration (mean return of the
//! episodes that ended, environment steps and wall-clock seconds so far,
//! gradient norm, loss, dropped gradients, simulator events, environments
//! reset for diverging), recorded by
//! `close_iteration` at the end of every iteration of every algorithm
//! (the trainer's and imitation's). Points serialise to JSON with NaN as
//! `null`; the CLI writes them as CSV.

use crate::envs::Envs;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// JSON has no NaN: not-a-number (no episode ended yet, a skipped update)
/// is written as `null` and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// One iteration's numbers (a row of the learning curve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Iterations done.
    pub iteration: usize,
    /// Environment steps simulated so far.
    pub env_steps: u64,
    /// Wall-clock seconds spent training so far.
    #[serde(with = "nan_as_null")]
    pub wall: f64,
    /// Of those, the seconds spent in the simulator (steps and adjoint
    /// steps); the rest is the learner's (networks, updates, bookkeeping).
    /// Absent from older checkpoints: 0.
    #[serde(default)]
    pub sim: f64,
    /// Mean return of the episodes that ended in this iteration (the last
    /// value carried when none ended).
    #[serde(with = "nan_as_null")]
    pub reward: f64,
    /// Episodes that ended in this iteration.
    pub episodes: usize,
    /// Global norm of the policy gradient before clipping (NaN: skipped).
    #[serde(with = "nan_as_null")]
    pub grad_norm: f64,
    /// The iteration's policy loss.
    #[serde(with = "nan_as_null")]
    pub loss: f64,
    /// Non-finite gradients dropped (per environment and step), and skipped updates.
    pub dropped: usize,
    /// Simulator events (divergence, non-convergence) in this iteration.
    pub events: usize,
    /// Environments masked and reset in this iteration because an output
    /// stopped being finite or the simulator reported them diverged (the
    /// divergence guard, [`crate::envs`]). Absent from older checkpoints: 0.
    #[serde(default)]
    pub resets: usize,
    /// Mean standard deviation of the Gaussian the policy acts with in
    /// training (PPO's, or APG's and SHAC's exploration) after the
    /// iteration's update; 0 where it acts with its outputs. Absent from
    /// older checkpoints: 0.
    #[serde(default)]
    pub action_std: f64,
}

/// What an iteration measured itself (the environments add the rest).
pub(crate) struct Measured {
    /// When it began.
    pub start: Instant,
    /// Environment steps it simulated.
    pub env_steps: u64,
    /// The policy gradient's norm before clipping (NaN: skipped).
    pub grad_norm: f64,
    /// Its loss.
    pub loss: f64,
    /// Non-finite gradients dropped and updates skipped.
    pub dropped: usize,
    /// The acting Gaussian's mean standard deviation (0: none).
    pub action_std: f64,
}

/// Closes an iteration: environments whose episode ended record their
/// return and start again, and the iteration's row joins the curve (the
/// mean return of the episodes that ended; the last value when none did).
pub(crate) fn close_iteration<'c>(
    curve: &'c mut Vec<Point>,
    envs: &mut Envs,
    rng: &mut ChaCha8Rng,
    m: Measured,
) -> &'c Point {
    envs.boundary(rng);
    let finished: Vec<f64> = envs.finished.drain(..).collect();
    let events = envs.sim.events.drain(..).count();
    let resets = std::mem::take(&mut envs.resets);
    let sim = std::mem::take(&mut envs.sim_seconds);
    let prev = curve.last();
    let reward = if finished.is_empty() {
        prev.map_or(f64::NAN, |p| p.reward)
    } else {
        finished.iter().sum::<f64>() / finished.len() as f64
    };
    let point = Point {
        iteration: prev.map_or(0, |p| p.iteration) + 1,
        env_steps: prev.map_or(0, |p| p.env_steps) + m.env_steps,
        wall: prev.map_or(0.0, |p| p.wall) + m.start.elapsed().as_secs_f64(),
        sim: prev.map_or(0.0, |p| p.sim) + sim,
        reward,
        episodes: finished.len(),
        grad_norm: m.grad_norm,
        loss: m.loss,
        dropped: m.dropped,
        events,
        resets,
        action_std: m.action_std,
    };
    curve.push(point);
    curve.last().expect("just pushed")
}
