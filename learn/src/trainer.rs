//! The training loop shared by the three algorithms, one iteration at a time,
//! and its checkpoints: everything that decides the next iteration (weights,
//! optimiser moments, normalisation, simulation state, episodes, the random
//! generator) is saved, so a resumed run is bitwise the run it continues.
//! APG and SHAC's window and value regression are here; PPO's rollout and
//! update are in [`crate::ppo`]; each iteration's row of the learning curve
//! is recorded by [`crate::curve`].

use crate::adam::{Adam, Update};
use crate::curve::{close_iteration, Measured, Point};
use crate::envs::{healthy_observations, healthy_steps, name_error, Envs, Fault};
use crate::fused::{Net, Real};
use crate::net::Mlp;
use crate::policy::{self, Policy, Std};
use crate::ppo::{self, Advantages};
use crate::value;
use crate::value::{column, soft_update, Critic};
use crate::window::{self, Explore};
use candle_core::{DType, Device, Result, Tensor, Var};
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which algorithm trains the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Analytic policy gradients through short windows of the rollout.
    Apg,
    /// Short-horizon actor-critic: APG with a learned value closing each window.
    Shac,
    /// Proximal policy optimisation (model-free baseline).
    Ppo,
}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The algorithm.
    pub algo: Algo,
    /// Name of the `reward` item.
    pub reward: String,
    /// Name of the `policy` item (`None`: the scene's only one).
    pub policy: Option<String>,
    /// Environments.
    pub batch: usize,
    /// Threads stepping them.
    pub threads: usize,
    /// Steps per window (APG, SHAC) or per rollout (PPO).
    pub horizon: usize,
    /// Episode length in steps (rounded up to whole windows).
    pub episode: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Learning rate of the policy (and of the value network).
    pub lr: f64,
    /// Discount.
    pub gamma: f64,
    /// TD(lambda) / GAE lambda.
    pub lambda: f64,
    /// Largest global gradient norm (larger gradients are scaled down).
    pub clip: f64,
    /// Standard deviation of the velocity jitter at every reset.
    pub noise: f64,
    /// Weight of the penalty on the squared pre-squash outputs of bounded
    /// controls (APG, SHAC): it keeps the policy off `tanh`'s flat tails,
    /// where a saturated policy has no gradient left to recover with.
    #[serde(default)]
    pub squash_penalty: f64,
    /// Iterations over which the learning rates fall linearly from `lr` to
    /// zero (SHAC's schedule, for every algorithm); 0 keeps them constant.
    #[serde(default)]
    pub lr_decay: usize,
    /// APG and SHAC: the initial standard deviation of a Gaussian around the
    /// policy's pre-squash outputs that the windows act with (SHAC's
    /// stochastic actor; reparameterised, its log standard deviation learned
    /// with the weights); 0 acts with the policy's outputs. The trained
    /// policy acts with its mean.
    #[serde(default)]
    pub explore: f64,
    /// PPO: passes over each rollout (Brax's `num_updates_per_batch`).
    #[serde(default = "four")]
    pub epochs: usize,
    /// PPO: minibatches each pass is split into, one optimiser step each.
    #[serde(default = "four")]
    pub minibatches: usize,
    /// PPO: the surrogate's clipping range, `r` kept in `1 -+ ratio_clip`
    /// (Brax's `clipping_epsilon`).
    #[serde(default = "ratio_clip")]
    pub ratio_clip: f64,
    /// PPO: weight of the Gaussian's entropy, a bonus in the objective
    /// (Brax's `entropy_cost`).
    #[serde(default)]
    pub entropy: f64,
    /// PPO: factor on the rewards in the advantages and value targets
    /// (Brax's `reward_scaling`); returns are reported unscaled.
    #[serde(default = "one")]
    pub reward_scale: f64,
    /// Hidden layers of the value network (SHAC, PPO); `None`: the policy's.
    #[serde(default)]
    pub value_hidden: Option<Vec<usize>>,
    /// PPO: the value network computes in f32 (about twice the arithmetic
    /// per second; PPO never differentiates it through the simulator).
    #[serde(default)]
    pub value_f32: bool,
    /// PPO: where the Gaussians' standard deviations come from.
    #[serde(default)]
    pub std: Std,
    /// PPO: rollouts of `horizon` steps collected with the same policy
    /// before each update (Brax's `batch_size x num_minibatches /
    /// num_envs`); the update's minibatches are drawn from all of them.
    #[serde(default = "one_unroll")]
    pub unrolls: usize,
    /// PPO: where the advantages come from (once per iteration, or per
    /// minibatch of trajectories as Brax's).
    #[serde(default)]
    pub advantages: Advantages,
}

fn one_unroll() -> usize {
    1
}

fn four() -> usize {
    4
}

fn ratio_clip() -> f64 {
    0.2
}

fn one() -> f64 {
    1.0
}

impl Config {
    /// The defaults for `algo` on a reward.
    pub fn new(algo: Algo, reward: &str) -> Config {
        Config {
            algo,
            reward: reward.into(),
            policy: None,
            batch: 64,
            threads: 1,
            horizon: 32,
            episode: 256,
            seed: 0,
            lr: if algo == Algo::Ppo { 3e-4 } else { 1e-2 },
            gamma: 0.99,
            lambda: 0.95,
            clip: if algo == Algo::Ppo { 0.5 } else { 1.0 },
            noise: 0.1,
            squash_penalty: 0.0,
            lr_decay: 0,
            explore: 0.0,
            epochs: four(),
            minibatches: four(),
            ratio_clip: ratio_clip(),
            entropy: 0.0,
            reward_scale: one(),
            value_hidden: None,
            value_f32: false,
            std: Std::Shared,
            unrolls: one_unroll(),
            advantages: Advantages::Rollout,
        }
    }

    /// The learning rate of the iteration after `done` iterations.
    pub fn lr_at(&self, done: usize) -> f64 {
        crate::adam::decayed(self.lr, self.lr_decay, done)
    }
}

/// What an algorithm's half of an iteration (a window or a rollout, and
/// the updates) hands back to [`Trainer::iterate`].
struct Outcome {
    /// The policy loss.
    loss: f64,
    /// Global norm of the policy gradient before clipping (NaN: skipped).
    grad_norm: f64,
    /// Non-finite gradients dropped and updates skipped.
    dropped: usize,
    /// The raw observations the policy acted on, one row per step and
    /// environment, which update its input normalisation.
    observations: Vec<Vec<f64>>,
    /// The mean standard deviation the actions were sampled with, where
    /// the trainer does not hold it (a [`Std::State`] policy's).
    action_std: Option<f64>,
}

/// A training run in progress.
pub struct Trainer<'s> {
    /// Its settings.
    pub config: Config,
    envs: Envs<'s>,
    /// The policy being trained.
    pub policy: Policy,
    adam: Adam,
    critic: Option<Critic>,
    log_std: Option<Var>,
    rng: ChaCha8Rng,
    /// The learning curve so far.
    pub curve: Vec<Point>,
}

/// Most passes over one iteration's rollouts (`epochs`).
pub const MAX_EPOCHS: usize = 1000;
/// Most steps in an episode.
pub const MAX_EPISODE: usize = 1_000_000_000;
/// Most bytes one iteration's rollouts may take (observations, inputs,
/// actions, values, rewards and flags per environment step).
pub const MAX_ROLLOUT_BYTES: u64 = 32 << 30;
/// Widest hidden layer of the value network, and most layers.
pub const MAX_WIDTH: usize = 1 << 16;
const MAX_LAYERS: usize = 64;

impl Config {
    /// The bounds on one iteration's work and memory, checked before a run
    /// starts or resumes (`outputs`: the scene's output rows, `controls`
    /// its controls): at most [`MAX_EPOCHS`] passes, episodes of at most
    /// [`MAX_EPISODE`] steps, rollouts of at most [`MAX_ROLLOUT_BYTES`], a
    /// value network of at most 64 layers of [`MAX_WIDTH`].
    pub fn check_bounds(&self, outputs: usize, controls: usize) -> std::result::Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "a learning rate of {}: it must be finite and positive",
                self.lr
            ));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(format!(
                "a gradient clip of {}: it must be finite and positive",
                self.clip
            ));
        }
        if self.epochs > MAX_EPOCHS {
            return Err(format!(
                "{} epochs: at most {MAX_EPOCHS} passes over a rollout (Brax uses 4 to 8)",
                self.epochs
            ));
        }
        if self.episode > MAX_EPISODE {
            return Err(format!(
                "an episode of {} steps: at most {MAX_EPISODE}",
                self.episode
            ));
        }
        let per_step = (2 * outputs + controls + 8) as u64 * 8;
        let bytes = per_step.saturating_mul(self.rollout_steps());
        if bytes > MAX_ROLLOUT_BYTES {
            return Err(format!(
                "one iteration's rollouts ({} rollouts of {} steps of {} environments) would take {:.1} GiB, more than {} GiB: fewer environments, a shorter horizon or fewer rollouts",
                self.unrolls,
                self.horizon,
                self.batch,
                bytes as f64 / f64::from(1u32 << 30),
                MAX_ROLLOUT_BYTES >> 30
            ));
        }
        if let Some(widths) = &self.value_hidden {
            if widths.len() > MAX_LAYERS || widths.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
                return Err(format!(
                    "value network widths {widths:?}: 1 to {MAX_LAYERS} layers of 1 to {MAX_WIDTH}"
                ));
            }
        }
        Ok(())
    }

    /// Environment steps of `unrolls` rollouts of `horizon` steps of `batch`
    /// environments, saturating: at most one iteration's.
    fn rollout_steps(&self) -> u64 {
        [self.batch, self.horizon, self.unrolls]
            .iter()
            .fold(1u64, |p, &n| p.saturating_mul(n as u64))
    }
}

impl<'s> Trainer<'s> {
    /// A new run: fresh networks and environments from `config.seed`; an
    /// error for settings outside [`Config::check_bounds`].
    pub fn new(scene: &'s Scene, config: Config) -> Result<Trainer<'s>> {
        let msg = |e: String| candle_core::Error::Msg(e);
        config
            .check_bounds(
                scene.compiled.layout().output_rows(),
                scene.model().controls.len(),
            )
            .map_err(msg)?;
        let mut config = config;
        config.horizon = config.horizon.max(1);
        config.episode = config.episode.div_ceil(config.horizon).max(1) * config.horizon;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let spec = policy::spec(scene, config.policy.as_deref()).map_err(msg)?;
        let policy = Policy::with_std(scene, spec, config.std, &mut rng)?;
        let envs = Envs::new(
            scene,
            config.batch,
            config.threads,
            Some(&config.reward),
            config.episode,
            config.noise,
            &mut rng,
        )
        .map_err(name_error)?;
        let critic = match config.algo {
            Algo::Apg => None,
            Algo::Shac | Algo::Ppo => {
                let mut sizes = vec![policy.inputs()];
                sizes.extend(config.value_hidden.as_ref().unwrap_or(&spec.hidden));
                sizes.push(1);
                let net = Mlp::new(&sizes, spec.activation, spec.init, 1.0, &mut rng)?;
                let net = match config.algo {
                    Algo::Ppo if config.value_f32 => net.in_f32()?,
                    _ => net,
                };
                let target = match config.algo {
                    Algo::Shac => {
                        let target = Mlp::new(&sizes, spec.activation, spec.init, 1.0, &mut rng)?;
                        soft_update(&target, &net, 0.0)?;
                        Some(target)
                    }
                    _ => None,
                };
                let adam = Adam::new(&net.vars(), config.lr)?;
                Some(Critic { net, target, adam })
            }
        };
        let log_std = match config.algo {
            Algo::Ppo if config.std == Std::Shared => Some(-0.5),
            Algo::Ppo => None,
            Algo::Apg | Algo::Shac if config.explore > 0.0 => Some(config.explore.ln()),
            Algo::Apg | Algo::Shac => None,
        }
        .map(|l| {
            let n = policy.controls.len();
            Var::from_vec(vec![l; n], n, &Device::Cpu)
        })
        .transpose()?;
        let mut vars = policy.net.vars();
        vars.extend(log_std.iter().cloned());
        let adam = Adam::new(&vars, config.lr)?;
        Ok(Trainer {
            config,
            envs,
            policy,
            adam,
            critic,
            log_std,
            rng,
            curve: vec![],
        })
    }

    /// Plants a fault in one environment (a test hook of the divergence
    /// guard, see [`crate::envs::Fault`]).
    pub fn plant(&mut self, fault: Fault) {
        self.envs.fault = Some(fault);
    }

    /// Rollouts per iteration: PPO's `unrolls`, one window otherwise.
    fn unrolls(&self) -> usize {
        match self.config.algo {
            Algo::Ppo => self.config.unrolls.max(1),
            Algo::Apg | Algo::Shac => 1,
        }
    }

    /// Environment steps simulated so far.
    pub fn env_steps(&self) -> u64 {
        self.curve.last().map_or(0, |p| p.env_steps)
    }

    /// One iteration: a window (or rollout), the updates, the resets.
    pub fn iterate(&mut self) -> Result<&Point> {
        let start = Instant::now();
        let lr = self.config.lr_at(self.curve.len());
        self.adam.lr = lr;
        if let Some(k) = &mut self.critic {
            k.adam.lr = lr;
        }
        let outcome = match self.config.algo {
            Algo::Apg | Algo::Shac => self.differentiable()?,
            Algo::Ppo => self.ppo()?,
        };
        self.policy.norm.update(&outcome.observations);
        let action_std = match (&self.log_std, outcome.action_std) {
            (Some(l), _) => l.as_tensor().exp()?.mean_all()?.to_scalar::<f64>()?,
            (None, Some(s)) => s,
            (None, None) => 0.0,
        };
        let measured = Measured {
            start,
            env_steps: (self.config.batch * self.config.horizon * self.unrolls()) as u64,
            grad_norm: outcome.grad_norm,
            loss: outcome.loss,
            dropped: outcome.dropped,
            action_std,
        };
        Ok(close_iteration(
            &mut self.curve,
            &mut self.envs,
            &mut self.rng,
            measured,
        ))
    }

    /// APG or SHAC: one differentiable window, the policy update and (SHAC)
    /// the value network's regression onto TD(lambda) targets.
    fn differentiable(&mut self) -> Result<Outcome> {
        let c = self.config.clone();
        let value = self.critic.as_ref().and_then(|k| k.target.as_ref());
        let explore = self.log_std.as_ref().map(|log_std| Explore {
            log_std,
            rng: &mut self.rng,
        });
        let w = window::run(
            &mut self.envs,
            &self.policy,
            c.horizon,
            c.gamma,
            value,
            c.squash_penalty,
            explore,
        )?;
        let mut vars = self.policy.net.vars();
        vars.extend(self.log_std.iter().cloned());
        let update = self.adam.step(&vars, &w.grads, Some(c.clip))?;
        let (norm, skipped) = match update {
            Update::Applied { norm } => (norm, 0),
            Update::Skipped => (f64::NAN, 1),
        };
        if let Some(Critic {
            net,
            target: Some(target),
            adam,
        }) = &mut self.critic
        {
            let b = self.envs.batch();
            // Values of the states after every step, by the target network.
            let mut values = vec![vec![0.0; b]; c.horizon];
            for (t, row) in values.iter_mut().enumerate() {
                let v = target.forward(&self.policy.input(&w.obs[t + 1])?)?;
                *row = v.flatten_all()?.to_vec1::<f64>()?;
            }
            let (mut inputs, mut targets) = (vec![], vec![]);
            for e in 0..b {
                // A diverged environment's window ends where it diverged.
                let n = healthy_steps(&w.diverged, e);
                if n == 0 {
                    continue;
                }
                let g = value::lambda_returns(
                    &column(&w.reward[..n], e),
                    &column(&values[..n], e),
                    &column(&w.terminal[..n], e),
                    c.gamma,
                    c.lambda,
                );
                for (t, g) in g.into_iter().enumerate() {
                    if w.weight[t][e] > 0.0 && g.is_finite() {
                        inputs.push(w.obs[t][e].clone());
                        targets.push(g);
                    }
                }
            }
            let inputs = self.policy.norm.apply(&inputs);
            value::fit(
                net,
                adam,
                &inputs,
                &targets,
                4,
                4,
                Some(c.clip),
                &mut self.rng,
            )?;
            soft_update(target, net, 0.2)?;
        }
        Ok(Outcome {
            loss: w.loss,
            grad_norm: norm,
            dropped: w.dropped + skipped,
            observations: healthy_observations(&w.obs, &w.diverged),
            action_std: None,
        })
    }

    /// PPO: a stochastic rollout, advantages by GAE, clipped-objective epochs
    /// (see [`ppo`]), on the networks borrowed into [`fused`] buffers for
    /// the iteration (the value network in f32 with `value_f32`).
    fn ppo(&mut self) -> Result<Outcome> {
        if self.config.value_f32 {
            self.ppo_in::<f32>()
        } else {
            self.ppo_in::<f64>()
        }
    }

    fn ppo_in<V: Real>(&mut self) -> Result<Outcome> {
        let unrolls = self.unrolls();
        let critic = self.critic.as_mut().expect("PPO has a value network");
        // The shared log standard deviations are the optimiser's last variable.
        let shared = self.log_std.clone();
        let last = self.adam.m.len() - 1;
        let (log_std, log_std_moments) = match &shared {
            Some(l) => (
                l.as_tensor().to_vec1::<f64>()?,
                (
                    self.adam.m[last].to_vec1::<f64>()?,
                    self.adam.v[last].to_vec1::<f64>()?,
                ),
            ),
            None => (vec![], (vec![], vec![])),
        };
        let mut nets = ppo::Nets {
            policy: Net::of(&self.policy.net, &self.adam)?,
            value: Net::<V>::of(&critic.net, &critic.adam)?,
            log_std,
            log_std_moments,
        };
        let (mut rollouts, mut std_sum) = (vec![], 0.0);
        for u in 0..unrolls {
            if u > 0 {
                // Between rollouts, as after the iteration: ended episodes start again.
                self.envs.boundary(&mut self.rng);
            }
            let (rollout, std) = ppo::rollout(
                &mut self.envs,
                &self.policy,
                &mut nets,
                self.config.horizon,
                self.config.advantages == Advantages::Rollout,
                &mut self.rng,
            )?;
            rollouts.push(rollout);
            std_sum += std;
        }
        let mut observations: Vec<Vec<f64>> = rollouts
            .iter()
            .flat_map(|r| healthy_observations(&r.observations, &r.diverged))
            .collect();
        if self.config.advantages == Advantages::Minibatch {
            // Brax's order: the statistics first, then the update reads through them.
            self.policy.norm.update(&std::mem::take(&mut observations));
        }
        let stats = ppo::update(
            &rollouts,
            &self.policy,
            &mut nets,
            &mut self.adam,
            &mut critic.adam,
            &self.config,
            &mut self.rng,
        )?;
        nets.policy.store(&self.policy.net, &mut self.adam)?;
        nets.value.store(&critic.net, &mut critic.adam)?;
        if let Some(l) = shared {
            let dev = &candle_core::Device::Cpu;
            let n = nets.log_std.len();
            l.set(&Tensor::from_vec(nets.log_std, n, dev)?)?;
            let (m, v) = nets.log_std_moments;
            self.adam.m[last] = Tensor::from_vec(m, n, dev)?;
            self.adam.v[last] = Tensor::from_vec(v, n, dev)?;
        }
        Ok(Outcome {
            loss: stats.loss,
            grad_norm: stats.grad_norm,
            dropped: stats.skipped,
            observations,
            action_std: Some(std_sum / rollouts.len() as f64),
        })
    }
}

/// Everything a checkpoint holds besides tensors.
#[derive(Serialize, Deserialize)]
struct State {
    config: Config,
    curve: Vec<Point>,
    rng: ChaCha8Rng,
    adam_t: Vec<u64>,
    finished: Vec<f64>,
}

impl<'s> Trainer<'s> {
    /// The run's complete state as a safetensors file (JSON state in its
    /// metadata); an error if the policy's weights are not finite.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let dev = &Device::Cpu;
        let mut t: Vec<(String, Tensor)> = self.policy.named()?;
        crate::net::check_finite(&t)?;
        let mut adam_t = vec![self.adam.t];
        let moments = |t: &mut Vec<(String, Tensor)>, name: &str, a: &Adam| {
            for (i, (m, v)) in a.m.iter().zip(&a.v).enumerate() {
                t.push((format!("{name}.m.{i}"), m.clone()));
                t.push((format!("{name}.v.{i}"), v.clone()));
            }
        };
        moments(&mut t, "adam", &self.adam);
        if let Some(k) = &self.critic {
            t.extend(k.net.named("critic"));
            if let Some(target) = &k.target {
                t.extend(target.named("target"));
            }
            moments(&mut t, "critic_adam", &k.adam);
            adam_t.push(k.adam.t);
        }
        if let Some(s) = &self.log_std {
            t.push(("log_std".into(), s.as_tensor().clone()));
        }
        let (b, n) = (self.envs.batch(), self.envs.sim.positions(0).len());
        let state = |f: &dyn Fn(usize) -> Vec<f64>| -> Result<Tensor> {
            Tensor::from_vec((0..b).flat_map(f).collect::<Vec<f64>>(), (b, n), dev)
        };
        t.push(("sim.x".into(), state(&|e| self.envs.sim.positions(e))?));
        t.push(("sim.v".into(), state(&|e| self.envs.sim.velocities(e))?));
        let per_env = |v: Vec<f64>| Tensor::from_vec(v, b, dev);
        t.push((
            "env.age".into(),
            per_env(self.envs.age.iter().map(|&a| a as f64).collect())?,
        ));
        t.push(("env.ret".into(), per_env(self.envs.ret.clone())?));
        t.push((
            "env.alive".into(),
            per_env(
                self.envs
                    .alive
                    .iter()
                    .map(|&a| f64::from(u8::from(a)))
                    .collect(),
            )?,
        ));
        let nc = self.envs.controls.len();
        t.push((
            "env.controls".into(),
            Tensor::from_vec(self.envs.controls.concat(), (nc, b), dev)?,
        ));
        let st = State {
            config: self.config.clone(),
            curve: self.curve.clone(),
            rng: self.rng.clone(),
            adam_t,
            finished: self.envs.finished.clone(),
        };
        let mut meta = self.policy.metadata();
        meta.insert(
            "joule.trainer".into(),
            serde_json::to_string(&st).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        );
        safetensors::serialize(t, Some(meta)).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    /// Continues a run from [`Trainer::checkpoint`]'s bytes on the same scene.
    pub fn resume(scene: &'s Scene, bytes: &[u8]) -> Result<Trainer<'s>> {
        let msg = |e: String| candle_core::Error::Msg(e);
        let (tensors, meta) = policy::read_safetensors(bytes)?;
        let st: State = serde_json::from_str(meta.get("joule.trainer").ok_or_else(|| {
            msg("not a training checkpoint (no `joule.trainer` metadata)".into())
        })?)
        .map_err(|e| msg(format!("a damaged checkpoint: {e}")))?;
        let get = |n: &str| -> Result<Tensor> {
            tensors
                .get(n)
                .cloned()
                .ok_or_else(|| msg(format!("the checkpoint has no tensor `{n}`")))?
                .to_dtype(DType::F64)
        };
        check_state(scene, &st, &|n| tensors.get(n).map(|t| t.dims().to_vec())).map_err(msg)?;
        let mut tr = Trainer::new(scene, st.config.clone())?;
        tr.policy.load(&tensors, &meta)?;
        let restore = |name: &str, a: &mut Adam, t: u64| -> Result<()> {
            for i in 0..a.m.len() {
                // The moments keep their variables' type (f32 for an f32 network).
                let dtype = a.m[i].dtype();
                a.m[i] = get(&format!("{name}.m.{i}"))?.to_dtype(dtype)?;
                a.v[i] = get(&format!("{name}.v.{i}"))?.to_dtype(dtype)?;
            }
            a.t = t;
            Ok(())
        };
        restore("adam", &mut tr.adam, st.adam_t[0])?;
        if let Some(k) = &mut tr.critic {
            k.net.load("critic", &|n| tensors.get(n).cloned())?;
            if let Some(target) = &k.target {
                target.load("target", &|n| tensors.get(n).cloned())?;
            }
            restore(
                "critic_adam",
                &mut k.adam,
                *st.adam_t
                    .get(1)
                    .ok_or_else(|| msg("missing critic optimiser".into()))?,
            )?;
        }
        if let Some(s) = &tr.log_std {
            s.set(&get("log_std")?)?;
        }
        let (x, v) = (
            get("sim.x")?.to_vec2::<f64>()?,
            get("sim.v")?.to_vec2::<f64>()?,
        );
        let b = tr.envs.batch();
        if x.len() != b || x.first().map(Vec::len) != Some(scene.dofs()) {
            return Err(msg(format!(
                "the checkpoint's state is not [{b} environments][{} DOFs]: was the scene changed?",
                scene.dofs()
            )));
        }
        for e in 0..b {
            tr.envs.sim.restore_state(e, &x[e], &v[e]);
        }
        tr.envs.age = get("env.age")?
            .to_vec1::<f64>()?
            .into_iter()
            .map(|a| a as usize)
            .collect();
        tr.envs.ret = get("env.ret")?.to_vec1::<f64>()?;
        tr.envs.alive = get("env.alive")?
            .to_vec1::<f64>()?
            .into_iter()
            .map(|a| a > 0.5)
            .collect();
        tr.envs.controls = get("env.controls")?.to_vec2::<f64>()?;
        tr.envs.finished = st.finished;
        tr.rng = st.rng;
        tr.curve = st.curve;
        Ok(tr)
    }
}

/// Checks a checkpoint's settings and state shapes against the scene and
/// each other before anything is allocated for them: the batch and the
/// horizon positive and matching the saved environments (`sim.x`, `sim.v`:
/// `[batch][dofs]`; `env.*`: `[batch]`), the rates, the noise and the
/// exploration finite.
/// `dims` gives a saved tensor's shape.
fn check_state(
    scene: &Scene,
    st: &State,
    dims: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> std::result::Result<(), String> {
    let c = &st.config;
    let damaged = |why: String| Err(format!("a damaged checkpoint: {why}"));
    if c.batch == 0 || c.horizon == 0 || c.episode < c.horizon || c.threads == 0 {
        return damaged(format!(
            "batch {}, horizon {}, episode {}, threads {} (each at least 1, the episode at least a horizon)",
            c.batch, c.horizon, c.episode, c.threads
        ));
    }
    if st.adam_t.is_empty() {
        return damaged("no optimiser step count".into());
    }
    if st.adam_t.iter().any(|&t| t > i32::MAX as u64) {
        return damaged(format!(
            "optimiser step counts {:?} (at most {})",
            st.adam_t,
            i32::MAX
        ));
    }
    // The curve's rows count iterations from 1 and at most one iteration's
    // environment steps each (the next row adds to the last).
    let per_iteration = c.rollout_steps();
    for (k, p) in st.curve.iter().enumerate() {
        let most = (k as u64 + 1).saturating_mul(per_iteration);
        let times = [p.wall, p.sim];
        if p.iteration != k + 1
            || p.env_steps > most
            || times.iter().any(|t| !(t.is_finite() && *t >= 0.0))
        {
            return damaged(format!(
                "row {} of the learning curve says iteration {}, {} environment steps (at most {most}), {} s",
                k + 1,
                p.iteration,
                p.env_steps,
                p.wall
            ));
        }
    }
    let rates = [
        c.lr,
        c.gamma,
        c.lambda,
        c.clip,
        c.noise,
        c.explore,
        c.ratio_clip,
        c.entropy,
        c.reward_scale,
    ];
    if rates.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return damaged(format!("non-finite or negative settings {rates:?}"));
    }
    if c.epochs == 0 || c.minibatches == 0 || c.unrolls == 0 {
        return damaged(format!(
            "{} epochs of {} minibatches of {} rollouts (each at least 1)",
            c.epochs, c.minibatches, c.unrolls
        ));
    }
    let (b, n) = (c.batch, scene.dofs());
    for (name, want) in [
        ("sim.x", vec![b, n]),
        ("sim.v", vec![b, n]),
        ("env.age", vec![b]),
        ("env.ret", vec![b]),
        ("env.alive", vec![b]),
    ] {
        match dims(name) {
            None => return damaged(format!("no tensor `{name}`")),
            Some(d) if d != want => {
                return Err(format!(
                    "tensor `{name}` is {d:?}, not {want:?} ([batch {b}] of {n} DOFs): a damaged checkpoint, or another scene"
                ))
            }
            Some(_) => {}
        }
    }
    match dims("env.controls") {
        Some(d) if d.len() == 2 && d[1] == b => Ok(()),
        d => damaged(format!(
            "tensor `env.controls` is {d:?}, not [controls, {b}]"
        )),
    }
}
