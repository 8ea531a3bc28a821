//! Actor-critic training of a `trajopt` policy: SHAC and PPO with the
//! planner as the actor, a value network on the world's state as the
//! critic.
//!
//! Unlike apg's whole episodes ([`crate::planning`]), both run windows of
//! `horizon` steps that continue the environments' episodes from one
//! iteration to the next (an environment starts again when its episode
//! ends or its world diverges; the plans stay warm started across windows).
//!
//! - **SHAC**: the window's discounted rewards plus the discounted value of
//!   the state it ends in (the target network's, the window's last state
//!   unless the episode ended there), differentiated through every step and
//!   every plan into the learned params as apg does, the value's gradient
//!   by the state seeded at the window's end. The value network is then
//!   regressed onto the window's TD(lambda) returns and the target follows
//!   it softly.
//! - **PPO**: the planner's first controls are the mean of a Gaussian in
//!   each control's unconstrained variable (the planner's own: a bounded
//!   control's logit, an unbounded control itself), whose log standard
//!   deviations are learned with the params. The update re-plans every
//!   sampled state from the warm start it was first planned from, so at the
//!   rollout's params the ratio is exactly 1, and differentiates the clipped
//!   surrogate through each re-plan (`d first control / d params`, the
//!   implicit function theorem's or the truncated derivative). Advantages by
//!   GAE on the value network, which is regressed onto the returns.
//!
//! The critic reads the world's free DOFs (positions and velocities),
//! normalised by running statistics: a planner has no observation vector
//! of its own.

use crate::adam::Adam;
use crate::curve::Point;
use crate::net::Mlp;
use crate::norm::Normalizer;
use crate::planning::{first_rows, reverse_through_plans, PlanStats, PlanTrainer};
use crate::trainer::Algo;
use crate::value::{self, column};
use candle_core::{Device, Tensor, Var};
use joule_compiler::model::{Activation, Init};
use joule_runtime::optimize::Map;
use joule_runtime::plan::State as Start;
use joule_runtime::Event;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::f64::consts::{E, PI};
use std::time::Instant;

/// SHAC's and PPO's settings for a planner (apg, imitation and cloning
/// ignore them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcConfig {
    /// Steps per window (SHAC) or per rollout (PPO).
    pub horizon: usize,
    /// Discount.
    pub gamma: f64,
    /// TD(lambda) / GAE lambda.
    pub lambda: f64,
    /// Hidden layers of the value network (tanh).
    pub value_hidden: Vec<usize>,
    /// The value network's learning rate (Adam).
    pub value_lr: f64,
    /// PPO: passes over each rollout (each re-plans every sampled state).
    pub epochs: usize,
    /// PPO: minibatches per pass, one update each.
    pub minibatches: usize,
    /// PPO: the ratio kept in `1 -+ ratio_clip`.
    pub ratio_clip: f64,
    /// PPO: weight of the Gaussian's entropy bonus.
    pub entropy: f64,
    /// PPO: the Gaussian's initial standard deviation, in the controls'
    /// unconstrained variables.
    pub std: f64,
}

impl Default for AcConfig {
    fn default() -> AcConfig {
        AcConfig {
            horizon: 16,
            gamma: 0.99,
            lambda: 0.95,
            value_hidden: vec![64, 64],
            value_lr: 1e-3,
            epochs: 4,
            minibatches: 4,
            ratio_clip: 0.2,
            entropy: 0.0,
            std: 0.5,
        }
    }
}

/// The live part of an actor-critic run: the critic, the state statistics
/// and where each environment's episode stands.
pub(crate) struct Ac {
    /// The value network, its optimiser, and the target network that
    /// follows it softly (SHAC's windows read their values from it).
    net: Mlp,
    adam: Adam,
    target: Mlp,
    norm: Normalizer,
    /// Steps since each environment's reset.
    age: Vec<usize>,
    /// Each environment's return so far in its episode.
    ret: Vec<f64>,
    /// The world's controls' maps (PPO's Gaussian lives in their variables).
    maps: Vec<Map>,
}

/// A tensor in a JSON checkpoint: its values, row after row.
type Flat = Vec<f64>;

/// An actor-critic run's state in a checkpoint (with the planner's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AcSaved {
    age: Vec<usize>,
    ret: Vec<f64>,
    /// Every environment's state, `[env]` (the world's free DOFs).
    pub(crate) x: Vec<Vec<f64>>,
    pub(crate) v: Vec<Vec<f64>>,
    /// Every environment's warm start.
    pub(crate) warm: Vec<Vec<f64>>,
    critic: Vec<Flat>,
    target: Vec<Flat>,
    critic_m: Vec<Flat>,
    critic_v: Vec<Flat>,
    critic_t: u64,
    norm_count: f64,
    norm_mean: Vec<f64>,
    norm_m2: Vec<f64>,
}

type Res<T> = Result<T, String>;

fn err(e: candle_core::Error) -> String {
    e.to_string()
}

impl Ac {
    /// A fresh critic for `inputs` state components (drawn from `rng`),
    /// `batch` environments at their start.
    pub(crate) fn new(
        inputs: usize,
        batch: usize,
        config: &AcConfig,
        maps: Vec<Map>,
        rng: &mut ChaCha8Rng,
    ) -> Res<Ac> {
        let mut sizes = vec![inputs];
        sizes.extend(&config.value_hidden);
        sizes.push(1);
        let net = Mlp::new(&sizes, Activation::Tanh, Init::Small, 1.0, rng).map_err(err)?;
        let target = Mlp::new(&sizes, Activation::Tanh, Init::Small, 1.0, rng).map_err(err)?;
        value::soft_update(&target, &net, 0.0).map_err(err)?;
        let adam = Adam::new(&net.vars(), config.value_lr).map_err(err)?;
        Ok(Ac {
            net,
            adam,
            target,
            norm: Normalizer::new(inputs),
            age: vec![0; batch],
            ret: vec![0.0; batch],
            maps,
        })
    }

    /// The checkpoint's part of this run (the states and warm starts given).
    pub(crate) fn save(
        &self,
        x: Vec<Vec<f64>>,
        v: Vec<Vec<f64>>,
        warm: Vec<Vec<f64>>,
    ) -> Res<AcSaved> {
        let flat = |ts: Vec<Tensor>| -> Res<Vec<Flat>> {
            ts.iter()
                .map(|t| t.flatten_all()?.to_vec1::<f64>())
                .collect::<candle_core::Result<_>>()
                .map_err(err)
        };
        let of = |m: &Mlp| m.vars().iter().map(|v| v.as_tensor().clone()).collect();
        Ok(AcSaved {
            age: self.age.clone(),
            ret: self.ret.clone(),
            x,
            v,
            warm,
            critic: flat(of(&self.net))?,
            target: flat(of(&self.target))?,
            critic_m: flat(self.adam.m.clone())?,
            critic_v: flat(self.adam.v.clone())?,
            critic_t: self.adam.t,
            norm_count: self.norm.count,
            norm_mean: self.norm.mean.clone(),
            norm_m2: self.norm.m2.clone(),
        })
    }

    /// Puts a checkpoint's critic, statistics and episodes back (the caller
    /// restores the states and warm starts).
    pub(crate) fn restore(&mut self, s: &AcSaved) -> Res<()> {
        let damaged = || "a damaged planner checkpoint: its critic does not fit".to_string();
        let b = self.age.len();
        let n = self.norm.mean.len();
        if s.age.len() != b
            || s.ret.len() != b
            || s.norm_mean.len() != n
            || s.norm_m2.len() != n
            || !s
                .ret
                .iter()
                .chain(&s.norm_mean)
                .chain(&s.norm_m2)
                .all(|x| x.is_finite())
        {
            return Err(damaged());
        }
        let load = |vars: &[Var], flats: &[Flat]| -> Res<Vec<Tensor>> {
            if vars.len() != flats.len() {
                return Err(damaged());
            }
            vars.iter()
                .zip(flats)
                .map(|(v, f)| {
                    let dims = v.as_tensor().dims().to_vec();
                    if f.len() != dims.iter().product::<usize>() || !f.iter().all(|x| x.is_finite())
                    {
                        return Err(damaged());
                    }
                    Tensor::from_vec(f.clone(), dims, &Device::Cpu).map_err(err)
                })
                .collect()
        };
        let vars = self.net.vars();
        for (var, t) in vars.iter().zip(load(&vars, &s.critic)?) {
            var.set(&t).map_err(err)?;
        }
        let tvars = self.target.vars();
        for (var, t) in tvars.iter().zip(load(&tvars, &s.target)?) {
            var.set(&t).map_err(err)?;
        }
        self.adam.m = load(&vars, &s.critic_m)?;
        self.adam.v = load(&vars, &s.critic_v)?;
        self.adam.t = s.critic_t;
        self.norm = Normalizer {
            count: s.norm_count,
            mean: s.norm_mean.clone(),
            m2: s.norm_m2.clone(),
        };
        self.age = s.age.clone();
        self.ret = s.ret.clone();
        Ok(())
    }

    /// The value of each state `[row][component]` (raw), by the target
    /// network (SHAC's windows) or the network itself (PPO).
    fn values(&self, states: &[Vec<f64>], target: bool) -> Res<Vec<f64>> {
        let net = if target { &self.target } else { &self.net };
        let x = self.norm.apply(states);
        let width = self.norm.mean.len();
        let t = Tensor::from_vec(x.concat(), (states.len(), width), &Device::Cpu).map_err(err)?;
        net.forward(&t)
            .and_then(|v| v.flatten_all()?.to_vec1::<f64>())
            .map_err(err)
    }

    /// `dV/d(state)` of the target network for each raw state (zero for
    /// components the normalisation clips).
    fn value_gradients(&self, states: &[Vec<f64>]) -> Res<Vec<Vec<f64>>> {
        let x = self.norm.apply(states);
        let width = self.norm.mean.len();
        let input = Var::from_vec(x.concat(), (states.len(), width), &Device::Cpu).map_err(err)?;
        let out = self
            .target
            .forward(input.as_tensor())
            .and_then(|v| v.sum_all())
            .map_err(err)?;
        let grads = out.backward().map_err(err)?;
        let g = grads
            .get(input.as_tensor())
            .map(|g| g.to_vec2::<f64>())
            .transpose()
            .map_err(err)?
            .unwrap_or_else(|| vec![vec![0.0; width]; states.len()]);
        let std = self.norm.std();
        Ok(g.iter()
            .zip(&x)
            .map(|(row, xn)| {
                row.iter()
                    .zip(xn)
                    .zip(&std)
                    .map(|((g, xn), s)| if xn.abs() < 10.0 { g / s } else { 0.0 })
                    .collect()
            })
            .collect())
    }

    /// Regresses the value network onto `targets` at the raw `states`
    /// (4 passes of 4 minibatches) and moves the target network a fifth of
    /// the way to it (only SHAC reads the target).
    fn fit(&mut self, states: &[Vec<f64>], targets: &[f64], rng: &mut ChaCha8Rng) -> Res<()> {
        if states.is_empty() {
            return Ok(());
        }
        let inputs = self.norm.apply(states);
        value::fit(
            &self.net,
            &mut self.adam,
            &inputs,
            targets,
            4,
            4,
            Some(1.0),
            rng,
        )
        .map_err(err)?;
        value::soft_update(&self.target, &self.net, 0.2).map_err(err)
    }
}

/// One environment's state as the critic reads it: positions then velocities.
fn joined((x, v): &Start) -> Vec<f64> {
    x.iter().chain(v).copied().collect()
}

/// A SHAC window's rollout and reverse pass.
struct Window {
    objective: f64,
    grad: Vec<f64>,
    /// `[step][env]`: the states before each step, and after the last.
    states: Vec<Vec<Start>>,
    /// `[step][env]`.
    rewards: Vec<Vec<f64>>,
    /// `[step][env]`: the target's value of the state after each step.
    after: Vec<Vec<f64>>,
    /// Environments whose episode ends with the window.
    ends: Vec<bool>,
    /// Environments whose world diverged.
    dead: Vec<bool>,
    live: Vec<usize>,
    stats: PlanStats,
    events: usize,
}

/// PPO's rollout, `[step][env]` unless said.
struct Rollout {
    /// The states before each step, and after the last.
    states: Vec<Vec<Start>>,
    /// The warm starts each step's plans started from.
    warms: Vec<Vec<Vec<f64>>>,
    /// The draws applied, `[step][env][control]` (unconstrained variables).
    zs: Vec<Vec<Vec<f64>>>,
    /// Their log probabilities.
    logp: Vec<Vec<f64>>,
    rewards: Vec<Vec<f64>>,
    stats: PlanStats,
    events: usize,
}

/// What a window or rollout measured, for the curve.
struct Outcome {
    loss: f64,
    grad_norm: f64,
    dropped: usize,
    stats: PlanStats,
    events: usize,
    resets: usize,
    finished: Vec<f64>,
    action_std: f64,
}

impl<'s> PlanTrainer<'s> {
    /// Every environment's state.
    fn starts(&self) -> Vec<Start> {
        (0..self.state.config.batch)
            .map(|e| (self.sim.positions(e), self.sim.velocities(e)))
            .collect()
    }

    /// Environments whose world diverged since event `from`, or whose
    /// reward or state stopped being finite.
    fn dead(&self, from: usize, rewards: &[Vec<f64>]) -> Vec<bool> {
        let batch = self.state.config.batch;
        let mut dead: Vec<bool> = (0..batch)
            .map(|e| {
                !rewards.iter().all(|r| r[e].is_finite())
                    || !self
                        .sim
                        .positions(e)
                        .iter()
                        .chain(&self.sim.velocities(e))
                        .all(|x| x.is_finite())
            })
            .collect();
        for ev in &self.sim.events[from..] {
            if let Event::Diverged { env, .. } = ev {
                dead[*env] = true;
            }
        }
        dead
    }

    /// Closes a window: episodes that ended record their return, and they
    /// and the environments that died start again.
    fn boundary(&mut self, dead: &[bool], rewards: &[Vec<f64>]) -> (Vec<f64>, usize) {
        let episode = self.state.config.episode;
        let noise = self.state.config.noise;
        let ac = self.ac.as_mut().expect("an actor-critic run");
        let mut finished = vec![];
        let mut resets = 0;
        for e in 0..dead.len() {
            ac.age[e] += rewards.len();
            ac.ret[e] += rewards.iter().map(|r| r[e]).sum::<f64>();
            let ended = ac.age[e] >= episode;
            if dead[e] {
                resets += 1;
            } else if ended {
                finished.push(ac.ret[e]);
            }
            if dead[e] || ended {
                ac.age[e] = 0;
                ac.ret[e] = 0.0;
                self.sim.reset_env(e, noise, &mut self.state.rng);
                self.planner.reset(e);
            }
        }
        (finished, resets)
    }

    /// Whether an environment's episode ends with this window.
    fn ends(&self, e: usize, steps: usize) -> bool {
        let ac = self.ac.as_ref().expect("an actor-critic run");
        ac.age[e] + steps >= self.state.config.episode
    }

    /// One SHAC window from where the environments stand, at the current
    /// learned params, with nothing learned: its objective (the mean over
    /// the environments that did not diverge of the window's discounted
    /// rewards plus the target value's discounted value of the state it
    /// ends in, unless the episode ends with it, divided by the window's
    /// steps: minus SHAC's loss) and the objective's derivatives by the
    /// learned params (in the policy's `learn` order). The environments
    /// advance, and start again where their episode ended.
    pub fn window(&mut self) -> Result<(f64, Vec<f64>), String> {
        if self.state.config.algo != Algo::Shac {
            return Err("a window is SHAC's: train with `Algo::Shac`".into());
        }
        let w = self.shac_window()?;
        self.boundary(&w.dead, &w.rewards);
        Ok((w.objective, w.grad))
    }

    /// [`PlanTrainer::window`]'s rollout and reverse pass, with what the
    /// critic's regression needs.
    fn shac_window(&mut self) -> Res<Window> {
        let cfg = self.state.config.clone();
        let (batch, h, gamma) = (cfg.batch, cfg.ac.horizon, cfg.ac.gamma);
        let values: Vec<f64> = self.learned().iter().map(|l| l.1).collect();
        self.planner.set_learned(&values);
        let nc = self.scene.model().controls.len();
        let dofs = self.scene.dofs();
        let p = values.len();
        let row = self.rows[0];
        let mut tape = self.sim.tape();
        let from = self.sim.events.len();
        let mut stats = PlanStats::default();
        let mut states = Vec::with_capacity(h + 1);
        let mut rewards = Vec::with_capacity(h);
        let mut plans = Vec::with_capacity(h);
        for _ in 0..h {
            states.push(self.starts());
            let made = self.planner.act(&mut self.sim).map_err(|e| e.0)?;
            made.iter().for_each(|plan| stats.add(plan));
            self.sim.step_taped(&mut tape);
            rewards.push(self.sim.outputs()[row].clone());
            plans.push(
                made.into_iter()
                    .map(|pl| first_rows(pl, nc))
                    .collect::<Vec<_>>(),
            );
        }
        states.push(self.starts());
        let events = self.sim.events.len() - from;
        let dead = self.dead(from, &rewards);
        let ends: Vec<bool> = (0..batch).map(|e| self.ends(e, h)).collect();
        let live: Vec<usize> = (0..batch).filter(|&e| !dead[e]).collect();
        let ac = self.ac.as_ref().expect("an actor-critic run");
        // A diverged environment's state reads as zeros (its values are not used).
        let readable = |st: &Start| {
            if st.0.iter().chain(&st.1).all(|x| x.is_finite()) {
                joined(st)
            } else {
                vec![0.0; 2 * dofs]
            }
        };
        let flat: Vec<Vec<f64>> = states[1..].iter().flatten().map(readable).collect();
        // `after[t][e]`: the target's value of the state after step t.
        let after: Vec<Vec<f64>> = ac
            .values(&flat, true)?
            .chunks(batch)
            .map(<[f64]>::to_vec)
            .collect();
        let end: Vec<Vec<f64>> = states[h].iter().map(readable).collect();
        let slope = ac.value_gradients(&end)?;
        let discount_h = gamma.powi(h as i32);
        // The objective and its seeds: the value closes windows whose episode goes on.
        let mut objective = 0.0;
        let (mut sx, mut sv) = (vec![vec![0.0; batch]; dofs], vec![vec![0.0; batch]; dofs]);
        for &e in &live {
            objective += (0..h)
                .map(|t| gamma.powi(t as i32) * rewards[t][e])
                .sum::<f64>();
            if !ends[e] {
                objective += discount_h * after[h - 1][e];
                for d in 0..dofs {
                    sx[d][e] = discount_h * slope[e][d];
                    sv[d][e] = discount_h * slope[e][dofs + d];
                }
            }
        }
        self.sim.seed_state(&mut tape, &sx, &sv).map_err(|e| e.0)?;
        let all_rows = self.scene.compiled.layout().output_rows();
        let mut grad = vec![0.0; p];
        for t in (0..h).rev() {
            let mut seed = vec![vec![0.0; batch]; all_rows];
            for &e in &live {
                seed[row][e] = gamma.powi(t as i32);
            }
            self.sim.seed_outputs(&mut tape, &seed).map_err(|e| e.0)?;
            reverse_through_plans(&mut self.sim, &mut tape, &plans[t], &dead, &mut grad)?;
        }
        let scale = 1.0 / (live.len().max(1) * h) as f64;
        Ok(Window {
            objective: objective * scale,
            grad: grad.iter().map(|g| g * scale).collect(),
            states,
            rewards,
            after,
            ends,
            dead,
            live,
            stats,
            events,
        })
    }

    /// One SHAC iteration: a window, the gradient step on the learned
    /// params, the critic's regression onto the window's TD(lambda) returns
    /// and the state statistics' update (after the window, so that a
    /// window's objective is a function of the params alone).
    fn shac(&mut self) -> Res<Outcome> {
        let w = self.shac_window()?;
        let (grad_norm, skipped) = self.ascend(&w.grad);
        let (h, gamma, lambda) = {
            let c = &self.state.config.ac;
            (c.horizon, c.gamma, c.lambda)
        };
        let (mut inputs, mut targets) = (vec![], vec![]);
        for &e in &w.live {
            let mut terminal = vec![false; h];
            terminal[h - 1] = w.ends[e];
            let g = value::lambda_returns(
                &column(&w.rewards, e),
                &column(&w.after, e),
                &terminal,
                gamma,
                lambda,
            );
            for (states, g) in w.states.iter().zip(g) {
                inputs.push(joined(&states[e]));
                targets.push(g);
            }
        }
        let ac = self.ac.as_mut().expect("an actor-critic run");
        ac.norm.update(&inputs);
        ac.fit(&inputs, &targets, &mut self.state.rng)?;
        let (finished, resets) = self.boundary(&w.dead, &w.rewards);
        Ok(Outcome {
            loss: -w.objective,
            grad_norm,
            dropped: w.dead.len() - w.live.len() + usize::from(skipped),
            stats: w.stats,
            events: w.events,
            resets,
            finished,
            action_std: 0.0,
        })
    }

    /// PPO's Gaussian standard deviations (one per control).
    fn stds(&self) -> Vec<f64> {
        self.state.z[self.maps.len()..]
            .iter()
            .map(|l| l.exp())
            .collect()
    }

    /// PPO's rollout of `horizon` steps: each environment applies a draw
    /// of the Gaussian around its plan's first controls.
    fn ppo_rollout(&mut self) -> Res<Rollout> {
        let (batch, h) = (self.state.config.batch, self.state.config.ac.horizon);
        let values: Vec<f64> = self.learned().iter().map(|l| l.1).collect();
        self.planner.set_learned(&values);
        let row = self.rows[0];
        let maps = self.ac.as_ref().expect("an actor-critic run").maps.clone();
        let nc = maps.len();
        let std = self.stds();
        let from = self.sim.events.len();
        let mut r = Rollout {
            states: vec![],
            warms: vec![],
            zs: vec![],
            logp: vec![],
            rewards: vec![],
            stats: PlanStats::default(),
            events: 0,
        };
        for _ in 0..h {
            r.states.push(self.starts());
            r.warms.push(self.planner.warm_starts().to_vec());
            let made = self.planner.act(&mut self.sim).map_err(|e| e.0)?;
            made.iter().for_each(|plan| r.stats.add(plan));
            let mut controls = vec![vec![0.0; batch]; nc];
            let mut z_t = vec![vec![0.0; nc]; batch];
            let mut l_t = vec![0.0; batch];
            for (e, plan) in made.iter().enumerate() {
                for c in 0..nc {
                    let mu = maps[c].inverse(plan.first()[c]);
                    let eps: f64 = StandardNormal.sample(&mut self.state.rng);
                    let z = mu + std[c] * eps;
                    z_t[e][c] = z;
                    l_t[e] += log_normal(z, mu, std[c]);
                    controls[c][e] = maps[c].value(z).0;
                }
            }
            self.sim.set_controls(&controls).map_err(|e| e.0)?;
            self.sim.step();
            r.rewards.push(self.sim.outputs()[row].clone());
            r.zs.push(z_t);
            r.logp.push(l_t);
        }
        r.states.push(self.starts());
        r.events = self.sim.events.len() - from;
        Ok(r)
    }

    /// The samples `(step, env)` re-planned at the current params from the
    /// warm starts they were first planned from: for each, the log
    /// probability of its draw, and that log probability's derivatives by
    /// the learned params and the log standard deviations.
    fn replanned(&mut self, r: &Rollout, samples: &[(usize, usize)]) -> Res<Vec<(f64, Vec<f64>)>> {
        let values: Vec<f64> = self.learned().iter().map(|l| l.1).collect();
        self.planner.set_learned(&values);
        let maps = self.ac.as_ref().expect("an actor-critic run").maps.clone();
        let (p, nc, std) = (self.maps.len(), maps.len(), self.stds());
        let states: Vec<Start> = samples
            .iter()
            .map(|&(t, e)| r.states[t][e].clone())
            .collect();
        let warm: Vec<Vec<f64>> = samples
            .iter()
            .map(|&(t, e)| r.warms[t][e].clone())
            .collect();
        self.planner.set_warm_starts(warm).map_err(|e| e.0)?;
        let plans = self.planner.plan_world(&states).map_err(|e| e.0)?;
        Ok(samples
            .iter()
            .zip(&plans)
            .map(|(&(t, e), plan)| {
                let z = &r.zs[t][e];
                let (mut lp, mut d) = (0.0, vec![0.0; p + nc]);
                for c in 0..nc {
                    let mu = maps[c].inverse(plan.first()[c]);
                    lp += log_normal(z[c], mu, std[c]);
                    let s2 = std[c] * std[c];
                    // d mu / d params: the control's derivative over the map's slope.
                    let slope = maps[c].value(mu).1;
                    for (d, dp) in d.iter_mut().zip(&plan.d_params[c][..p]) {
                        let dmu = dp / slope;
                        if dmu.is_finite() {
                            *d += (z[c] - mu) / s2 * dmu;
                        }
                    }
                    d[p + c] = (z[c] - mu).powi(2) / s2 - 1.0;
                }
                (lp, d)
            })
            .collect())
    }

    /// One PPO iteration: a rollout, GAE advantages on the value network,
    /// `epochs` passes of minibatches each re-planned at the current params
    /// (the clipped surrogate and the entropy bonus ascended through the
    /// re-plans), the value network's regression and the state
    /// statistics' update.
    fn ppo(&mut self) -> Res<Outcome> {
        let cfg = self.state.config.clone();
        let a = &cfg.ac;
        let (batch, h) = (cfg.batch, a.horizon);
        let r = self.ppo_rollout()?;
        let dead = self.dead(self.sim.events.len() - r.events, &r.rewards);
        let ends: Vec<bool> = (0..batch).map(|e| self.ends(e, h)).collect();
        let live: Vec<usize> = (0..batch).filter(|&e| !dead[e]).collect();
        let ac = self.ac.as_mut().expect("an actor-critic run");
        // Advantages and value targets of the live environments.
        let (mut samples, mut adv, mut inputs, mut targets) = (vec![], vec![], vec![], vec![]);
        for &e in &live {
            let st: Vec<Vec<f64>> = (0..=h).map(|t| joined(&r.states[t][e])).collect();
            let v = ac.values(&st, false)?;
            let mut terminal = vec![false; h];
            terminal[h - 1] = ends[e];
            let (ad, ret) = value::gae(&column(&r.rewards, e), &v, &terminal, a.gamma, a.lambda);
            for t in 0..h {
                samples.push((t, e));
                adv.push(ad[t]);
                inputs.push(st[t].clone());
                targets.push(ret[t]);
            }
        }
        let n = adv.len().max(1) as f64;
        let mean = adv.iter().sum::<f64>() / n;
        let sd = (adv.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        adv.iter_mut().for_each(|x| *x = (*x - mean) / (sd + 1e-8));
        let after_rollout = self.planner.warm_starts().to_vec();
        let (p, nc) = (self.maps.len(), self.stds().len());
        let (mut loss, mut grad_norm, mut skipped) = (f64::NAN, f64::NAN, 0);
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let size = samples.len().div_ceil(a.minibatches).max(1);
        for _ in 0..a.epochs {
            order.shuffle(&mut self.state.rng);
            for chunk in order.chunks(size) {
                let picked: Vec<(usize, usize)> = chunk.iter().map(|&i| samples[i]).collect();
                let re = self.replanned(&r, &picked)?;
                let m = chunk.len() as f64;
                let mut grad = vec![0.0; p + nc];
                let mut objective = 0.0;
                for (&i, (lp, d)) in chunk.iter().zip(&re) {
                    let (t, e) = samples[i];
                    let ratio = (lp - r.logp[t][e]).exp();
                    let kept = ratio.clamp(1.0 - a.ratio_clip, 1.0 + a.ratio_clip);
                    objective += (ratio * adv[i]).min(kept * adv[i]) / m;
                    // Where the clipped term is the smaller, it has no gradient.
                    if ratio * adv[i] <= kept * adv[i] {
                        // d(ratio A) = ratio A d(log p).
                        let w = ratio * adv[i] / m;
                        grad.iter_mut().zip(d).for_each(|(g, d)| *g += w * d);
                    }
                }
                // The entropy bonus: sum_c (log std_c + ln(2 pi e) / 2).
                let logs = &self.state.z[p..];
                objective += a.entropy
                    * logs
                        .iter()
                        .map(|l| l + 0.5 * (2.0 * PI * E).ln())
                        .sum::<f64>();
                grad[p..].iter_mut().for_each(|g| *g += a.entropy);
                let (norm, skip) = self.ascend(&grad);
                grad_norm = norm;
                skipped += usize::from(skip);
                loss = -objective;
            }
        }
        self.planner
            .set_warm_starts(after_rollout)
            .map_err(|e| e.0)?;
        let ac = self.ac.as_mut().expect("an actor-critic run");
        ac.norm.update(&inputs);
        ac.fit(&inputs, &targets, &mut self.state.rng)?;
        let (finished, resets) = self.boundary(&dead, &r.rewards);
        let std = self.stds();
        Ok(Outcome {
            loss,
            grad_norm,
            dropped: batch - live.len() + skipped,
            stats: r.stats,
            events: r.events,
            resets,
            finished,
            action_std: std.iter().sum::<f64>() / nc.max(1) as f64,
        })
    }

    /// One SHAC window or PPO rollout and its updates, recorded on the curve.
    pub(crate) fn iterate_ac(&mut self) -> Res<()> {
        let start = Instant::now();
        let o = match self.state.config.algo {
            Algo::Shac => self.shac()?,
            Algo::Ppo => self.ppo()?,
            Algo::Apg => return Err("apg trains on whole episodes, not windows".into()),
        };
        let c = &self.state.config;
        let last = self.state.curve.last();
        let seconds = start.elapsed().as_secs_f64();
        let reward = if o.finished.is_empty() {
            last.map_or(f64::NAN, |l| l.reward)
        } else {
            o.finished.iter().sum::<f64>() / o.finished.len() as f64
        };
        let point = Point {
            iteration: self.state.curve.len() + 1,
            env_steps: last.map_or(0, |l| l.env_steps) + (c.batch * c.ac.horizon) as u64,
            wall: last.map_or(0.0, |l| l.wall) + seconds,
            sim: last.map_or(0.0, |l| l.sim) + seconds,
            reward,
            episodes: o.finished.len(),
            grad_norm: o.grad_norm,
            loss: o.loss,
            dropped: o.dropped,
            events: o.events,
            resets: o.resets,
            action_std: o.action_std,
        };
        self.state.curve.push(point);
        self.state.stats.push(o.stats);
        self.sim.events.clear(); // counted above
        Ok(())
    }
}

/// `log N(z; mu, std^2)`.
fn log_normal(z: f64, mu: f64, std: f64) -> f64 {
    let r = (z - mu) / std;
    -0.5 * r * r - std.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planning::PlanConfig;
    use joule_runtime::Scene;

    /// The swing arm of tests/plan (plans that converge to round-off).
    fn swing() -> Scene {
        Scene::compile(include_str!("../../tests/plan/swing.joule")).expect("the swing compiles")
    }

    fn ppo_trainer(scene: &Scene) -> PlanTrainer<'_> {
        let mut config = PlanConfig::new("lift");
        config.algo = Algo::Ppo;
        config.batch = 2;
        config.episode = 8;
        config.noise = 0.5;
        config.ac.horizon = 4;
        config.ac.std = 0.1;
        let mut tr = PlanTrainer::new(scene, config).expect("a trainer");
        tr.set_learned(&[1.4, 0.02, 0.1]);
        tr
    }

    /// Re-planned at the rollout's params from the warm starts they were
    /// planned from, the samples have the log probabilities they were drawn
    /// with (PPO's ratio is 1 before the update), and the log probability's
    /// derivatives by the learned params and the log standard deviations
    /// agree with central differences of re-plans.
    #[test]
    fn ppo_replans_reproduce_the_rollout_and_differentiate() {
        let scene = swing();
        let mut tr = ppo_trainer(&scene);
        let r = tr.ppo_rollout().expect("a rollout");
        assert_eq!(r.stats.not_converged, 0, "{:?}", r.stats);
        let samples: Vec<(usize, usize)> = (0..4).flat_map(|t| [(t, 0), (t, 1)]).collect();
        let re = tr.replanned(&r, &samples).expect("re-plans");
        for (&(t, e), (lp, _)) in samples.iter().zip(&re) {
            assert!(
                (lp - r.logp[t][e]).abs() < 1e-12,
                "{lp} vs {}",
                r.logp[t][e]
            );
        }
        let z0 = tr.state.z.clone();
        let delta = 1e-6;
        for j in 0..z0.len() {
            let mut at = |d: f64| {
                tr.state.z = z0.clone();
                tr.state.z[j] += d;
                tr.replanned(&r, &samples).expect("re-plans")
            };
            let (plus, minus) = (at(delta), at(-delta));
            // The analytic derivative is by the learned value (params) or
            // the log standard deviation: chain the unconstrained variable.
            let slope = if j < tr.maps.len() {
                tr.maps[j].value(z0[j]).1
            } else {
                1.0
            };
            let mut largest = 0.0f64;
            for k in 0..samples.len() {
                let numeric = (plus[k].0 - minus[k].0) / (2.0 * delta);
                largest = largest.max(numeric.abs());
                let analytic = re[k].1[j] * slope;
                assert!(
                    (analytic - numeric).abs() <= 1e-5 * (1.0 + numeric.abs()),
                    "variable {j}, sample {k}: {analytic} vs {numeric}"
                );
            }
            assert!(largest > 1e-2, "variable {j} moves the log probabilities");
        }
    }
}
