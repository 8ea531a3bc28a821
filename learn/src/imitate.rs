//! Imitation from one demonstration by differentiable physics (ILD): the
//! policy drives a whole episode, the loss is the bidirectional Chamfer
//! distance between the agent's and the expert's trajectories of some outputs
//! (the agent's states near the expert's, and the expert's covered, without
//! assuming the two are aligned in time), and its gradient passes through
//! the simulator into the network. Each matched component is measured in
//! units of the expert's standard deviation over its trajectory.

use crate::adam::{Adam, Update};
use crate::envs::{name_error, Envs};
use crate::policy::Policy;
use crate::trainer::{close_iteration, Measured, Point};
use crate::window;
use candle_core::Result;
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Settings of an imitation run.
#[derive(Debug, Clone)]
pub struct Imitation {
    /// The outputs whose trajectories are matched (as one state vector:
    /// positions and velocities together also match the pace).
    pub outputs: Vec<String>,
    /// A reward to report (the expert's return is the goal), if any.
    pub reward: Option<String>,
    /// Steps per episode.
    pub steps: usize,
    /// Environments (each a differently jittered start).
    pub batch: usize,
    /// Threads.
    pub threads: usize,
    /// Learning rate.
    pub lr: f64,
    /// Largest gradient norm.
    pub clip: f64,
    /// Velocity jitter at reset.
    pub noise: f64,
    /// Seed.
    pub seed: u64,
}

/// An imitation run: environments and the optimiser of the policy.
pub struct Imitator<'s> {
    settings: Imitation,
    envs: Envs<'s>,
    adam: Adam,
    rng: ChaCha8Rng,
    /// Output rows matched.
    rows: Vec<usize>,
    /// Each matched component's unit: the expert's standard deviation over time.
    scale: Vec<f64>,
    /// The expert's trajectory, `[step][component * batch + env]`.
    expert: Vec<Vec<f64>>,
    /// The learning curve (`loss` is the Chamfer distance).
    pub curve: Vec<Point>,
}

impl<'s> Imitator<'s> {
    /// Sets up imitation of `expert` (`[step][component]`, the outputs'
    /// components one after the other) by `policy`.
    pub fn new(
        scene: &'s Scene,
        policy: &Policy,
        expert: &[Vec<f64>],
        settings: Imitation,
    ) -> Result<Imitator<'s>> {
        let msg = |e: String| candle_core::Error::Msg(e);
        let layout = scene.compiled.layout();
        let mut rows = vec![];
        for name in &settings.outputs {
            let o = layout
                .output(name)
                .ok_or_else(|| msg(format!("no output named `{name}`")))?;
            rows.extend(o.offset..o.offset + o.len);
        }
        if expert.is_empty() || expert.iter().any(|s| s.len() != rows.len()) {
            return Err(msg(format!(
                "the demonstration of `{}` must be [steps][{} components] with at least one step",
                settings.outputs.join(", "),
                rows.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let b = settings.batch;
        let envs = Envs::new(
            scene,
            b,
            settings.threads,
            settings.reward.as_deref(),
            settings.steps,
            settings.noise,
            &mut rng,
        )
        .map_err(name_error)?;
        // Components in units of the expert's own spread, so positions in
        // metres and spins in radians per second weigh alike.
        let n = expert.len() as f64;
        let scale: Vec<f64> = (0..rows.len())
            .map(|c| {
                let mean = expert.iter().map(|s| s[c]).sum::<f64>() / n;
                let sd = (expert.iter().map(|s| (s[c] - mean).powi(2)).sum::<f64>() / n).sqrt();
                if sd > 1e-12 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        let expert = expert
            .iter()
            .map(|s| {
                s.iter()
                    .zip(&scale)
                    .flat_map(|(&c, k)| std::iter::repeat_n(c / k, b))
                    .collect()
            })
            .collect();
        Ok(Imitator {
            adam: Adam::new(&policy.net.vars(), settings.lr)?,
            rows,
            scale,
            settings,
            envs,
            rng,
            expert,
            curve: vec![],
        })
    }

    /// One episode per environment, the Chamfer loss and one policy update.
    pub fn iterate(&mut self, policy: &mut Policy) -> Result<&Point> {
        let start = Instant::now();
        let (b, h) = (self.envs.batch(), self.settings.steps);
        let mut r = window::forward(&mut self.envs, policy, h)?;
        let agent: Vec<Vec<f64>> = r
            .outputs
            .iter()
            .map(|out| {
                self.rows
                    .iter()
                    .zip(&self.scale)
                    .flat_map(|(&row, k)| out[row].iter().map(move |x| x / k))
                    .collect()
            })
            .collect();
        let mut value = vec![0.0; b];
        let len = self.rows.len();
        let grad = joule_runtime::chamfer(&agent, &self.expert, len, b, b, &mut value);
        let loss = value.iter().sum::<f64>() / b as f64;
        let rows = self.envs.rows;
        let (matched, scale) = (&self.rows, &self.scale);
        let seeds = |t: usize| {
            let mut s = vec![vec![0.0; b]; rows];
            for (c, &row) in matched.iter().enumerate() {
                for e in 0..b {
                    s[row][e] = grad[t][c * b + e] / (scale[c] * b as f64);
                }
            }
            s
        };
        let (grads, dropped) = window::backward(&mut self.envs, policy, &mut r, seeds, None)?;
        let vars = policy.net.vars();
        let norm = match self.adam.step(&vars, &grads, Some(self.settings.clip))? {
            Update::Applied { norm } => norm,
            Update::Skipped => f64::NAN,
        };
        r.obs.truncate(h);
        policy.norm.update(&r.obs.concat());
        let measured = Measured {
            start,
            env_steps: (b * h) as u64,
            grad_norm: norm,
            loss,
            dropped,
        };
        Ok(close_iteration(
            &mut self.curve,
            &mut self.envs,
            &mut self.rng,
            measured,
        ))
    }
}
