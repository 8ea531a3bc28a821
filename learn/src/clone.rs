//! Behaviour cloning from one demonstration: the policy network regressed
//! onto the controls the demonstration applied, at the observations it
//! acted on. The observations are read through the policy's own inputs at
//! the demonstration's recorded states (`joule run --out demo.npz
//! --state`), so no simulation runs while it learns; the learned policy's
//! return is measured by whole episodes from the scene's start. It is the
//! baseline that imitation through the simulator ([`crate::imitate`]) and a
//! planner's cost learned from one demonstration ([`crate::planning`]) are
//! compared with: it sees only the expert's states, never its own
//! mistakes.

use crate::adam::{grads_of, Adam, Update};
use crate::envs::{name_error, Envs};
use crate::policy::{control_unit, Policy};
use crate::{curve::Point, imitate};
use candle_core::{Device, Result, Tensor};
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Settings of a behaviour-cloning run.
#[derive(Debug, Clone)]
pub struct Cloning {
    /// A reward to report (the expert's return is the goal), if any.
    pub reward: Option<String>,
    /// Steps per evaluation episode.
    pub steps: usize,
    /// Iterations between evaluations of the return (and the last one).
    pub eval_every: usize,
    /// Learning rate (Adam).
    pub lr: f64,
    /// Iterations over which the learning rate falls linearly to zero (0:
    /// constant).
    pub lr_decay: usize,
}

/// A behaviour-cloning run: the demonstration as a data set, and the
/// optimiser of the policy.
pub struct Cloner<'s> {
    scene: &'s Scene,
    settings: Cloning,
    /// The raw observations the expert acted on, `[step][input]`.
    obs: Vec<Vec<f64>>,
    /// The controls it applied, `[step, control]` in the policy's order.
    targets: Tensor,
    /// Each control's unit in the loss: half its range, 1 where unbounded.
    units: Tensor,
    adam: Adam,
    /// One environment from the scene's start, for the return.
    envs: Option<Envs<'s>>,
    /// The learning curve (`loss`: the mean squared control error in
    /// units of the controls' half ranges; no environment steps).
    pub curve: Vec<Point>,
}

impl<'s> Cloner<'s> {
    /// The data set of `policy` from a demonstration: `states[t]` the state
    /// before step `t` (`joule run --state`; one for each step at least),
    /// `controls[t]` every control of the scene it applied then.
    /// The policy's observation statistics are set from the expert's
    /// observations.
    pub fn new(
        scene: &'s Scene,
        policy: &mut Policy,
        states: &[(Vec<f64>, Vec<f64>)],
        controls: &[Vec<f64>],
        settings: Cloning,
    ) -> Result<Cloner<'s>> {
        let msg = |e: String| candle_core::Error::Msg(e);
        let n = scene.model().controls.len();
        if controls.is_empty() || controls.iter().any(|c| c.len() != n) {
            return Err(msg(format!(
                "the demonstration's controls must be [steps][{n} controls] with at least one step"
            )));
        }
        if states.len() < controls.len() {
            return Err(msg(format!(
                "cloning reads the policy's observations at the demonstration's states: \
                 {} states for {} steps (record it with `joule run --out demo.npz --state`)",
                states.len(),
                controls.len()
            )));
        }
        let mut sim = scene.batch_threads(1, 1);
        let mut obs = Vec::with_capacity(controls.len());
        for (x, v) in &states[..controls.len()] {
            sim.set_state(0, x, v);
            obs.push(policy.observe(&sim.outputs()).remove(0));
        }
        if obs.iter().flatten().any(|o| !o.is_finite()) {
            return Err(msg(
                "an observation at the demonstration's states is not finite".into(),
            ));
        }
        policy.norm.update(&obs);
        let k = policy.controls.len();
        let dev = &Device::Cpu;
        let flat: Vec<f64> = controls
            .iter()
            .flat_map(|c| policy.controls.iter().map(move |&i| c[i]))
            .collect();
        let targets = Tensor::from_vec(flat, (controls.len(), k), dev)?;
        let units: Vec<f64> = policy.bounds().iter().map(|&b| control_unit(b)).collect();
        let units = Tensor::from_vec(units, (1, k), dev)?;
        let envs = match &settings.reward {
            None => None,
            Some(r) => {
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                Some(
                    Envs::new(scene, 1, 1, Some(r), settings.steps, 0.0, &mut rng)
                        .map_err(name_error)?,
                )
            }
        };
        let adam = Adam::new(&policy.net.vars(), settings.lr)?;
        Ok(Cloner {
            scene,
            settings,
            obs,
            targets,
            units,
            adam,
            envs,
            curve: vec![],
        })
    }

    /// The loss at the policy's current weights (differentiable): the mean
    /// over steps and controls of the squared error in half ranges.
    fn loss(&self, policy: &Policy) -> Result<Tensor> {
        let u = policy.forward(&policy.input(&self.obs)?)?;
        (u - &self.targets)?
            .broadcast_div(&self.units)?
            .sqr()?
            .mean_all()
    }

    /// One Adam step on the whole data set, and the return of a whole
    /// episode from the scene's start every `eval_every` iterations.
    pub fn iterate(&mut self, policy: &mut Policy) -> Result<&Point> {
        let start = Instant::now();
        let loss = self.loss(policy)?;
        let vars = policy.net.vars();
        let grads = grads_of(&loss.backward()?, &vars)?;
        let s = &self.settings;
        self.adam.lr = crate::adam::decayed(s.lr, s.lr_decay, self.curve.len());
        let norm = match self.adam.step(&vars, &grads, None)? {
            Update::Applied { norm } => norm,
            Update::Skipped => f64::NAN,
        };
        let i = self.curve.len();
        let prev = self.curve.last();
        let (reward, episodes) = match &self.envs {
            Some(envs) if i.is_multiple_of(self.settings.eval_every.max(1)) => (
                imitate::episode_return(self.scene, envs, policy, self.settings.steps)?,
                1,
            ),
            _ => (prev.map_or(f64::NAN, |p| p.reward), 0),
        };
        let point = Point {
            iteration: i + 1,
            env_steps: 0,
            wall: prev.map_or(0.0, |p| p.wall) + start.elapsed().as_secs_f64(),
            sim: 0.0,
            reward,
            episodes,
            grad_norm: norm,
            loss: loss.to_scalar::<f64>()?,
            dropped: usize::from(norm.is_nan()),
            events: 0,
            resets: 0,
            action_std: 0.0,
        };
        self.curve.push(point);
        Ok(self.curve.last().expect("just pushed"))
    }

    /// The last iteration's return, where it was not evaluated.
    pub fn evaluate_last(&mut self, policy: &Policy) -> Result<()> {
        let (Some(envs), Some(p)) = (&self.envs, self.curve.last()) else {
            return Ok(());
        };
        if p.episodes == 0 {
            let ret = imitate::episode_return(self.scene, envs, policy, self.settings.steps)?;
            let p = self.curve.last_mut().expect("an iteration");
            p.reward = ret;
            p.episodes = 1;
        }
        Ok(())
    }

    /// The loss at the policy's current weights, undifferentiated.
    pub fn error(&self, policy: &Policy) -> Result<f64> {
        self.loss(policy)?.to_scalar::<f64>()
    }
}
