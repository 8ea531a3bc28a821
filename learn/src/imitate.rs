//! Imitation from one demonstration by differentiable physics (ILD): the
//! policy drives a whole episode, the loss is the bidirectional Chamfer
//! distance between the agent's and the expert's trajectories of some outputs
//! (the agent's states near the expert's, and the expert's covered, without
//! assuming the two are aligned in time), and its gradient passes through
//! the simulator into the network. Each matched component is measured in
//! units of the expert's standard deviation over its trajectory.

use crate::adam::{Adam, Update};
use crate::curve::{close_iteration, Measured, Point};
use crate::envs::{name_error, Envs, Fault};
use crate::policy::Policy;
use crate::window;
use candle_core::Result;
use joule_runtime::Scene;
use rand::{Rng, SeedableRng};
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
    /// Steps differentiated at once: `None` for whole episodes (the Chamfer
    /// distance), else windows of this many steps started from the
    /// demonstration's states (see [`Imitator::iterate`]).
    pub window: Option<usize>,
    /// With windows: iterations between evaluations of the policy's return
    /// over a whole episode from the scene's start.
    pub eval_every: usize,
    /// Environments (each a differently jittered start).
    pub batch: usize,
    /// Threads.
    pub threads: usize,
    /// Learning rate.
    pub lr: f64,
    /// Iterations over which the learning rate falls linearly to zero (0:
    /// constant).
    pub lr_decay: usize,
    /// Largest gradient norm.
    pub clip: f64,
    /// Velocity jitter at reset.
    pub noise: f64,
    /// Seed.
    pub seed: u64,
}

/// One demonstration (environment 0 of a `joule run --out` recording).
pub struct Demo {
    /// The matched outputs after every step, `[step][component]` (the
    /// outputs' components one after the other).
    pub outputs: Vec<Vec<f64>>,
    /// The free DOFs' positions and velocities at the start and after every
    /// step (`joule run --state`), or empty.
    pub states: Vec<(Vec<f64>, Vec<f64>)>,
}

/// An imitation run: environments and the optimiser of the policy.
pub struct Imitator<'s> {
    scene: &'s Scene,
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
    /// The expert's states (see [`Demo::states`]).
    states: Vec<(Vec<f64>, Vec<f64>)>,
    /// The learning curve (`loss` is the Chamfer distance).
    pub curve: Vec<Point>,
}

impl<'s> Imitator<'s> {
    /// Sets up imitation of `demo` by `policy`.
    pub fn new(
        scene: &'s Scene,
        policy: &Policy,
        demo: Demo,
        settings: Imitation,
    ) -> Result<Imitator<'s>> {
        let expert = &demo.outputs;
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
        if settings.window.is_some() {
            if demo.states.len() != expert.len() + 1 {
                return Err(msg(
                    "windows start from the demonstration's states: record it with \
                     `joule run --out demo.npz --state`"
                        .into(),
                ));
            }
            if settings.reward.is_none() {
                return Err(msg(
                    "windows report the policy's return: name a reward".into()
                ));
            }
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
            scene,
            states: demo.states,
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

    /// Plants a fault in one environment (a test hook of the divergence
    /// guard, see [`crate::envs::Fault`]).
    pub fn plant(&mut self, fault: Fault) {
        self.envs.fault = Some(fault);
    }

    /// One policy update. Whole episodes (no `window`): one episode per
    /// environment and the Chamfer distance between its trajectory and the
    /// expert's. With a window of `H` steps (multiple shooting): every
    /// environment starts from the expert's state at a random step `t0` and
    /// runs `H` steps; the loss is the squared distance of each state to the
    /// expert's at the same step, differentiated through those `H` steps
    /// only — through contact, gradients of whole episodes explode or vanish,
    /// and starting on the expert's path keeps its phase. The return is then
    /// measured every `eval_every` iterations by a whole episode from the
    /// scene's start (not counted in the environment steps).
    pub fn iterate(&mut self, policy: &mut Policy) -> Result<&Point> {
        match self.settings.window {
            Some(h) => self.shoot(policy, h.clamp(1, self.expert.len())),
            None => self.episode(policy),
        }
    }

    /// The matched outputs of every step, in units of the expert's spread,
    /// `[step][component * batch + env]`.
    fn matched(&self, outputs: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
        outputs
            .iter()
            .map(|out| {
                self.rows
                    .iter()
                    .zip(&self.scale)
                    .flat_map(|(&row, k)| out[row].iter().map(move |x| x / k))
                    .collect()
            })
            .collect()
    }

    /// A closure giving the output seeds `[row][env]` of step `t` from the
    /// loss's gradient with respect to the scaled components,
    /// `grad[t][component * b + env]`, divided by `per`. Borrows only the
    /// matched rows and their scales, so the reverse pass can hold the environments.
    fn seeds<'a>(
        rows: &'a [usize],
        scale: &'a [f64],
        (out_rows, b): (usize, usize),
        grad: &'a [Vec<f64>],
        per: f64,
    ) -> impl Fn(usize) -> Vec<Vec<f64>> + 'a {
        move |t| {
            let mut s = vec![vec![0.0; b]; out_rows];
            for (c, &row) in rows.iter().enumerate() {
                for e in 0..b {
                    s[row][e] = grad[t][c * b + e] / (scale[c] * per);
                }
            }
            s
        }
    }

    /// Puts the return of the policy over one whole episode from the scene's
    /// start into the curve's last point.
    fn record_return(&mut self, policy: &Policy) -> Result<()> {
        let ret = episode_return(self.scene, &self.envs, policy, self.settings.steps)?;
        let p = self.curve.last_mut().expect("an iteration closed");
        p.reward = ret;
        p.episodes = 1;
        Ok(())
    }

    /// A window of `h` steps from the expert's states (multiple shooting).
    fn shoot(&mut self, policy: &mut Policy, h: usize) -> Result<&Point> {
        let start = Instant::now();
        let (b, len) = (self.envs.batch(), self.rows.len());
        let last = self.expert.len() - h;
        let t0: Vec<usize> = (0..b).map(|_| self.rng.random_range(0..=last)).collect();
        for (e, &t) in t0.iter().enumerate() {
            let (x, v) = &self.states[t];
            self.envs.start_at(e, x, v, t);
        }
        let mut r = window::forward(&mut self.envs, policy, h, None)?;
        let agent = self.matched(&r.outputs);
        // (1/(b h)) sum_e sum_t w_te |a_te - x*_(t0_e + t)|^2 and its gradient.
        let norm = 1.0 / (b * h) as f64;
        let mut loss = 0.0;
        let mut grad = vec![vec![0.0; len * b]; h];
        for (t, g) in grad.iter_mut().enumerate() {
            for (e, &t0) in t0.iter().enumerate() {
                let w = norm * r.weight[t][e];
                if w == 0.0 {
                    // Ended or diverged: its state may not be finite.
                    continue;
                }
                let target = &self.expert[t0 + t];
                for c in 0..len {
                    let d = agent[t][c * b + e] - target[c * b + e];
                    loss += w * d * d;
                    g[c * b + e] = 2.0 * w * d;
                }
            }
        }
        let shape = (self.envs.rows, b);
        let seeds = Self::seeds(&self.rows, &self.scale, shape, &grad, 1.0);
        let (grads, dropped) = window::backward(&mut self.envs, policy, &mut r, seeds, None, 0.0)?;
        // The windows are not episodes: nothing to close at the boundary.
        for e in 0..b {
            self.envs
                .start_at(e, &self.states[0].0, &self.states[0].1, 0);
        }
        let iteration = self.curve.len();
        self.update(policy, r, grads, dropped, start, loss, (b * h) as u64)?;
        if iteration.is_multiple_of(self.settings.eval_every.max(1)) {
            self.record_return(policy)?;
        }
        Ok(self.curve.last().expect("just closed"))
    }

    /// With windows: measures the final policy's return (as every
    /// `eval_every` iterations) into the curve's last point, unless that
    /// iteration measured it already.
    pub fn evaluate_last(&mut self, policy: &Policy) -> Result<()> {
        let n = self.curve.len();
        if self.settings.window.is_none()
            || n == 0
            || (n - 1).is_multiple_of(self.settings.eval_every.max(1))
        {
            return Ok(());
        }
        self.record_return(policy)
    }

    /// One episode per environment and the Chamfer distance.
    fn episode(&mut self, policy: &mut Policy) -> Result<&Point> {
        let start = Instant::now();
        let (b, h) = (self.envs.batch(), self.settings.steps);
        let mut r = window::forward(&mut self.envs, policy, h, None)?;
        let agent = self.matched(&r.outputs);
        let mut value = vec![0.0; b];
        let len = self.rows.len();
        let mut grad = joule_runtime::chamfer(&agent, &self.expert, len, b, b, &mut value);
        // A diverged environment's trajectory is left out of the distance.
        let kept: Vec<usize> = (0..b).filter(|&e| !self.envs.diverged[e]).collect();
        for g in &mut grad {
            for (i, x) in g.iter_mut().enumerate() {
                if self.envs.diverged[i % b] {
                    *x = 0.0;
                }
            }
        }
        let loss = kept.iter().map(|&e| value[e]).sum::<f64>() / kept.len().max(1) as f64;
        let shape = (self.envs.rows, b);
        let seeds = Self::seeds(
            &self.rows,
            &self.scale,
            shape,
            &grad,
            kept.len().max(1) as f64,
        );
        let (grads, dropped) = window::backward(&mut self.envs, policy, &mut r, seeds, None, 0.0)?;
        self.update(policy, r, grads, dropped, start, loss, (b * h) as u64)
    }

    /// Applies the gradient and closes the iteration.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        policy: &mut Policy,
        r: window::Rollout,
        grads: Vec<candle_core::Tensor>,
        dropped: usize,
        start: Instant,
        loss: f64,
        env_steps: u64,
    ) -> Result<&Point> {
        let vars = policy.net.vars();
        let s = &self.settings;
        self.adam.lr = crate::adam::decayed(s.lr, s.lr_decay, self.curve.len());
        let norm = match self.adam.step(&vars, &grads, Some(self.settings.clip))? {
            Update::Applied { norm } => norm,
            Update::Skipped => f64::NAN,
        };
        policy
            .norm
            .update(&crate::envs::healthy_observations(&r.obs, &r.diverged));
        let measured = Measured {
            start,
            env_steps,
            grad_norm: norm,
            loss,
            dropped,
            action_std: 0.0,
        };
        Ok(close_iteration(
            &mut self.curve,
            &mut self.envs,
            &mut self.rng,
            measured,
        ))
    }
}

/// `policy`'s return over one episode of `steps` from the scene's start (no
/// jitter), with `envs`'s reward and `done` items (its reward must be set);
/// it ends early where an episode ends or the reward stops being finite.
pub(crate) fn episode_return(
    scene: &Scene,
    envs: &Envs,
    policy: &Policy,
    steps: usize,
) -> Result<f64> {
    let mut sim = scene.batch_threads(1, 1);
    let mut controls = scene.default_controls(1);
    let row = envs.reward_row.expect("an evaluation names its reward");
    let mut out = sim.outputs();
    let mut ret = 0.0;
    for _ in 0..steps {
        policy.act(&out, &mut controls)?;
        sim.set_controls(&controls).map_err(name_error)?;
        sim.step();
        out = sim.outputs();
        let r = out[row][0];
        if !r.is_finite() {
            break;
        }
        ret += r;
        if envs.done(&out, 0) {
            break;
        }
    }
    Ok(ret)
}
