//! Proximal policy optimisation, the model-free baseline: the same policy
//! network's pre-squash outputs as the means of Gaussians (a learned
//! standard deviation per control, or Brax's state-dependent one, see
//! [`Std`]), sampled and then squashed into the controls' ranges (Brax's
//! tanh-normal: every action is inside its range), generalised advantage
//! estimation, and the clipped surrogate objective optimised over
//! minibatch epochs. No gradient passes through the simulator.
//!
//! An iteration is `unrolls` rollouts (actions sampled around the
//! policy's, with their log-densities and the value network's values),
//! then an `update` (advantages by GAE on the rewards times
//! `reward_scale`, normalised, and `epochs` passes over the rollouts in
//! `minibatches` shuffled minibatches, each one step of the policy's and
//! the value network's optimisers), on the graph-free networks of
//! [`crate::fused`]. The losses are [`clipped_surrogate`], [`log_prob`]
//! (of the pre-squash sample: the squash's Jacobian cancels in the ratio)
//! and the entropy bonus [`squashed_entropy`], each with its gradient in
//! closed form; the settings are [`Config`]'s, Brax's PPO's by another
//! name (docs/learning.md maps them).

use crate::adam::{clip_scale, Adam};
use crate::envs::{healthy_steps, Envs};
use crate::fused::{adam_step, Net, Real};
use crate::policy::{Policy, Std, MIN_STD};
use crate::trainer::Config;
use crate::value::{self, column};
use candle_core::{Device, Result, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Where PPO's advantages come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Advantages {
    /// Once per iteration, from the values the value network gave during
    /// the rollouts, normalised over the whole iteration; the minibatches
    /// are shuffled steps.
    #[default]
    Rollout,
    /// Brax's: the minibatches are shuffled whole trajectories (one
    /// environment's rollout), and each minibatch computes its advantages
    /// and value targets with the value network as it is at that
    /// minibatch, normalised over the minibatch; the observation
    /// statistics are updated with the iteration's observations before
    /// the update, which reads every input through them.
    Minibatch,
}

/// A stochastic rollout of every environment, step-major: row `t * envs + e`
/// is environment `e`'s step `t`.
pub(crate) struct Rollout {
    /// Raw observations at the start of every step, `[H][env][input]`
    /// (zeros where the environment was masked).
    pub observations: Vec<Vec<Vec<f64>>>,
    /// The policy's (normalised) inputs, `[H * env][input]`.
    pub inputs: Vec<f64>,
    /// The sampled actions before the squash into the controls' ranges,
    /// `[H * env][control]`.
    pub actions: Vec<f64>,
    /// Their log-densities under the policy that sampled them, `[H * env]`.
    pub log_probs: Vec<f64>,
    /// The value network's values at the start of every step and after the
    /// last, `[H + 1][env]`, where the rollout was asked for them (empty
    /// otherwise: [`Advantages::Minibatch`] rates its trajectories with the
    /// value network as it is at each minibatch).
    pub values: Vec<Vec<f64>>,
    /// Rewards, `[H][env]` (0 where masked).
    pub rewards: Vec<Vec<f64>>,
    /// Whether the episode ended at the step, `[H][env]`.
    pub terminal: Vec<Vec<bool>>,
    /// Whether the step's reward counted, `[H][env]`.
    pub weight: Vec<Vec<f64>>,
    /// Whether the environment was masked at the step (it diverged), `[H][env]`.
    pub diverged: Vec<Vec<bool>>,
    /// Raw observations after the last step, `[env][input]` (zeros where
    /// masked): what the values that close the trajectories rate.
    pub last: Vec<Vec<f64>>,
}

/// The networks an iteration works on: the policy's and the value
/// network's (in `V`) borrowed from their candle homes, and the shared log
/// standard deviations with their Adam moments (empty for a
/// [`Std::State`] policy, whose network gives them).
pub(crate) struct Nets<V> {
    /// The policy's network (pre-squash means, and raw scales with [`Std::State`]).
    pub policy: Net<f64>,
    /// The value network.
    pub value: Net<V>,
    /// Shared log standard deviations, one per control ([`Std::Shared`]).
    pub log_std: Vec<f64>,
    /// Their Adam moments.
    pub log_std_moments: (Vec<f64>, Vec<f64>),
}

/// The Gaussians of a minibatch: pre-squash means and log standard
/// deviations, `[rows][control]` each, from the policy network's outputs.
struct Gaussians {
    /// Controls.
    k: usize,
    mean: Vec<f64>,
    log_std: Vec<f64>,
    /// `d log_std / d s` for a [`Std::State`] network's raw scales `s`.
    d_scale: Vec<f64>,
}

impl Gaussians {
    /// The Gaussians of `k` controls from network outputs `out` (with
    /// `shared` log standard deviations for a [`Std::Shared`] policy).
    fn of(std: Std, k: usize, out: &[f64], shared: &[f64]) -> Gaussians {
        match std {
            Std::Shared => Gaussians {
                k,
                mean: out.to_vec(),
                log_std: out.chunks(k).flat_map(|_| shared.iter().copied()).collect(),
                d_scale: vec![],
            },
            Std::State => {
                let n = out.len() / 2;
                let mut g = Gaussians {
                    k,
                    mean: Vec::with_capacity(n),
                    log_std: Vec::with_capacity(n),
                    d_scale: Vec::with_capacity(n),
                };
                for row in out.chunks(2 * k) {
                    g.mean.extend_from_slice(&row[..k]);
                    for &s in &row[k..] {
                        // softplus(s) = max(s, 0) + ln(1 + exp(-|s|)); its derivative sigmoid(s).
                        let std = s.max(0.0) + (-s.abs()).exp().ln_1p() + MIN_STD;
                        g.log_std.push(std.ln());
                        g.d_scale.push(1.0 / (1.0 + (-s).exp()) / std);
                    }
                }
                g
            }
        }
    }

    /// A term's gradient `t` carried to the network's outputs, and to the
    /// shared log standard deviations (summed over the rows; empty for
    /// [`Std::State`]).
    fn backward(&self, t: &Term) -> (Vec<f64>, Vec<f64>) {
        let k = self.k;
        if self.d_scale.is_empty() {
            let shared = (0..k)
                .map(|j| t.d_log_std.iter().skip(j).step_by(k).sum())
                .collect();
            return (t.d_mean.clone(), shared);
        }
        let mut d_out = Vec::with_capacity(2 * t.d_mean.len());
        for i in 0..t.d_mean.len() / k {
            let row = i * k..(i + 1) * k;
            d_out.extend_from_slice(&t.d_mean[row.clone()]);
            d_out.extend(row.map(|c| t.d_log_std[c] * self.d_scale[c]));
        }
        (d_out, vec![])
    }
}

/// `horizon` steps of every environment acting with the policy's Gaussians:
/// pre-squash outputs sampled around the network's means, then squashed
/// into the controls' ranges (Brax's tanh-normal); with `values`, the value
/// network rates the states. Also returns the mean standard deviation the actions were
/// sampled with.
pub(crate) fn rollout<V: Real>(
    envs: &mut Envs,
    policy: &Policy,
    nets: &mut Nets<V>,
    horizon: usize,
    values: bool,
    rng: &mut ChaCha8Rng,
) -> Result<(Rollout, f64)> {
    let (b, k) = (envs.batch(), policy.controls.len());
    let mut outputs = envs.sim.outputs();
    let mut r = Rollout {
        observations: vec![],
        inputs: vec![],
        actions: vec![],
        log_probs: vec![],
        values: vec![],
        rewards: vec![],
        terminal: vec![],
        weight: vec![],
        diverged: vec![],
        last: vec![],
    };
    let mut std_sum = 0.0;
    for _ in 0..horizon {
        let mut o = policy.observe(&outputs);
        envs.mask(&mut o);
        let x = policy.normalized(&o);
        let g = Gaussians::of(policy.std, k, nets.policy.forward(&x, b), &nets.log_std);
        let a: Vec<f64> = (0..b * k)
            .map(|i| {
                let eps: f64 = StandardNormal.sample(rng);
                g.mean[i] + g.log_std[i].exp() * eps
            })
            .collect();
        std_sum += g.log_std.iter().map(|l| l.exp()).sum::<f64>();
        for ((m, l), a) in g.mean.chunks(k).zip(g.log_std.chunks(k)).zip(a.chunks(k)) {
            r.log_probs.push(log_prob(m, l, a));
        }
        if values {
            r.values.push(value_of(&mut nets.value, &x, b));
        }
        let at = Tensor::from_vec(a.clone(), (b, k), &Device::Cpu)?;
        policy.write_controls(&policy.squash(&at)?.0, &mut envs.controls)?;
        envs.apply_controls();
        envs.timed(|sim| sim.step());
        let out = envs.after_step();
        r.observations.push(o);
        r.inputs.extend(x);
        r.actions.extend(a);
        r.rewards.push(out.reward);
        r.terminal.push(out.terminal);
        r.weight.push(out.weight);
        r.diverged.push(out.diverged);
        outputs = out.outputs;
    }
    let mut o = policy.observe(&outputs);
    envs.mask(&mut o);
    if values {
        r.values
            .push(value_of(&mut nets.value, &policy.normalized(&o), b));
    }
    r.last = o;
    Ok((r, std_sum / (horizon * b * k).max(1) as f64))
}

/// The value network's values of `rows` inputs.
fn value_of<V: Real>(value: &mut Net<V>, x: &[f64], rows: usize) -> Vec<f64> {
    value.forward(x, rows).iter().map(|v| v.f64()).collect()
}

/// What an [`update`] measured.
pub(crate) struct Stats {
    /// The clipped surrogate loss of the last minibatch.
    pub loss: f64,
    /// Global norm before clipping of the last policy gradient applied (0
    /// when none was).
    pub grad_norm: f64,
    /// Policy updates skipped (non-finite gradients).
    pub skipped: usize,
}

/// The update after an iteration's rollouts: the clipped objective plus
/// half the value network's squared error, minus `entropy` times the
/// squashed Gaussian's entropy, over `epochs` passes of `minibatches`
/// shuffled minibatches, each followed by a step of `adam` (the policy and
/// the log standard deviations) and of `critic` (the value network's
/// optimiser), whose step counts advance here. The advantages (GAE) are
/// [`Config::advantages`]'s; they and the value targets are in units of the
/// rewards times `reward_scale`, and never count a diverged environment's
/// steps.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update<V: Real>(
    rollouts: &[Rollout],
    policy: &Policy,
    nets: &mut Nets<V>,
    adam: &mut Adam,
    critic: &mut Adam,
    c: &Config,
    rng: &mut ChaCha8Rng,
) -> Result<Stats> {
    let mut opt = Optimisers {
        policy,
        adam,
        critic,
        c,
        stats: Stats {
            loss: 0.0,
            grad_norm: 0.0,
            skipped: 0,
        },
    };
    match c.advantages {
        Advantages::Rollout => update_steps(rollouts, nets, &mut opt, rng),
        Advantages::Minibatch => update_trajectories(rollouts, nets, &mut opt, rng),
    }
    Ok(opt.stats)
}

/// One environment's advantages and value targets over a rollout: GAE on
/// its rewards times `reward_scale` with `values` (`[H + 1]`, the last
/// closing the rollout); a diverged environment's rollout ends where it
/// diverged, bootstrapped from the value of its last finite state, and its
/// later steps get none.
fn trajectory_gae(r: &Rollout, env: usize, values: &[f64], c: &Config) -> (Vec<f64>, Vec<f64>) {
    let n = healthy_steps(&r.diverged, env);
    let scaled: Vec<f64> = column(&r.rewards[..n], env)
        .iter()
        .map(|x| x * c.reward_scale)
        .collect();
    value::gae(
        &scaled,
        &values[..=n],
        &column(&r.terminal[..n], env),
        c.gamma,
        c.lambda,
    )
}

/// `(x - mean) / std` over `x`'s entries (standard deviation + 1e-8).
fn normalise(x: &mut [f64]) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let std = (x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt() + 1e-8;
    x.iter_mut().for_each(|a| *a = (*a - mean) / std);
}

/// [`Advantages::Rollout`]: advantages once, from the rollouts' values,
/// normalised over the steps whose reward counted; minibatches of shuffled
/// steps.
fn update_steps<V: Real>(
    rollouts: &[Rollout],
    nets: &mut Nets<V>,
    opt: &mut Optimisers,
    rng: &mut ChaCha8Rng,
) {
    let c = opt.c;
    // Advantages per rollout and environment, flattened like the rows
    // (rollout-major, then step-major).
    let mut adv = vec![];
    let mut ret = vec![];
    let mut counted = vec![];
    for r in rollouts {
        let b = r.values[0].len();
        let (mut a_r, mut r_r) = (vec![0.0; c.horizon * b], vec![0.0; c.horizon * b]);
        for e in 0..b {
            let (a, g) = trajectory_gae(r, e, &column(&r.values, e), c);
            for t in 0..a.len() {
                a_r[t * b + e] = a[t];
                r_r[t * b + e] = g[t];
            }
        }
        counted.extend((0..c.horizon * b).map(|i| r.weight[i / b][i % b] > 0.0));
        adv.extend(a_r);
        ret.extend(r_r);
    }
    let mut order: Vec<usize> = (0..adv.len())
        .filter(|&i| counted[i] && adv[i].is_finite())
        .collect();
    let mut normalised: Vec<f64> = order.iter().map(|&i| adv[i]).collect();
    normalise(&mut normalised);
    for (&i, a) in order.iter().zip(normalised) {
        adv[i] = a;
    }
    let inputs: Vec<f64> = rollouts
        .iter()
        .flat_map(|r| r.inputs.iter().copied())
        .collect();
    let actions: Vec<f64> = rollouts
        .iter()
        .flat_map(|r| r.actions.iter().copied())
        .collect();
    let log_probs: Vec<f64> = rollouts
        .iter()
        .flat_map(|r| r.log_probs.iter().copied())
        .collect();
    let (k, width) = (opt.policy.controls.len(), opt.policy.inputs());
    let (mut xb, mut ab) = (vec![], vec![]);
    for _ in 0..c.epochs {
        order.shuffle(rng);
        for chunk in order.chunks(order.len().div_ceil(c.minibatches).max(1)) {
            let rows = chunk.len();
            xb.clear();
            ab.clear();
            for &i in chunk {
                xb.extend_from_slice(&inputs[i * width..(i + 1) * width]);
                ab.extend_from_slice(&actions[i * k..(i + 1) * k]);
            }
            let old: Vec<f64> = chunk.iter().map(|&i| log_probs[i]).collect();
            let advs: Vec<f64> = chunk.iter().map(|&i| adv[i]).collect();
            opt.policy_step(nets, rng, &xb, &ab, &old, &advs);
            // Half the mean squared error of the values: d/dv = (v - target) / rows.
            let v = nets.value.forward(&xb, rows);
            let dv: Vec<V> = v
                .iter()
                .zip(chunk)
                .map(|(v, &i)| V::of((v.f64() - ret[i]) / rows as f64))
                .collect();
            opt.value_step(&mut nets.value, &dv);
        }
    }
}

/// [`Advantages::Minibatch`]: minibatches of shuffled trajectories (one
/// environment's rollout each), every one computing its advantages and
/// value targets with the value network as it is then, from inputs read
/// through the current observation statistics, and normalising its own
/// advantages.
fn update_trajectories<V: Real>(
    rollouts: &[Rollout],
    nets: &mut Nets<V>,
    opt: &mut Optimisers,
    rng: &mut ChaCha8Rng,
) {
    let (c, policy) = (opt.c, opt.policy);
    let (h, k, width) = (c.horizon, policy.controls.len(), policy.inputs());
    let b = rollouts.first().map_or(0, |r| r.last.len());
    // Every trajectory's inputs, its H steps' and the state after them: `[H + 1][input]`.
    let inputs: Vec<Vec<f64>> = rollouts
        .iter()
        .flat_map(|r| {
            (0..b).map(move |e| {
                let rows: Vec<Vec<f64>> = (r.observations.iter().map(|o| o[e].clone()))
                    .chain([r.last[e].clone()])
                    .collect();
                policy.normalized(&rows)
            })
        })
        .collect();
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let (mut xb, mut ab, mut old, mut adv) = (vec![], vec![], vec![], vec![]);
    for _ in 0..c.epochs {
        order.shuffle(rng);
        for chunk in order.chunks(order.len().div_ceil(c.minibatches).max(1)) {
            let all: Vec<f64> = chunk
                .iter()
                .flat_map(|&j| inputs[j].iter().copied())
                .collect();
            let v: Vec<f64> = value_of(&mut nets.value, &all, chunk.len() * (h + 1));
            // The rows that count: (row of `all`, value target).
            let mut rows = vec![];
            xb.clear();
            ab.clear();
            old.clear();
            adv.clear();
            for (m, &j) in chunk.iter().enumerate() {
                let (r, e) = (&rollouts[j / b], j % b);
                let values = &v[m * (h + 1)..(m + 1) * (h + 1)];
                let (a, g) = trajectory_gae(r, e, values, c);
                for t in (0..a.len()).filter(|&t| r.weight[t][e] > 0.0 && a[t].is_finite()) {
                    let row = m * (h + 1) + t;
                    rows.push((row, g[t]));
                    xb.extend_from_slice(&all[row * width..(row + 1) * width]);
                    let i = t * b + e;
                    ab.extend_from_slice(&r.actions[i * k..(i + 1) * k]);
                    old.push(r.log_probs[i]);
                    adv.push(a[t]);
                }
            }
            if rows.is_empty() {
                continue;
            }
            normalise(&mut adv);
            opt.policy_step(nets, rng, &xb, &ab, &old, &adv);
            // Half the mean squared error of the counted values, through the
            // value network's last forward (this minibatch's, every row).
            let mut dv = vec![V::zero(); v.len()];
            let n = rows.len() as f64;
            for &(row, target) in &rows {
                dv[row] = V::of((v[row] - target) / n);
            }
            opt.value_step(&mut nets.value, &dv);
        }
    }
}

/// What every minibatch step of an [`update`] uses and measures.
struct Optimisers<'a> {
    policy: &'a Policy,
    adam: &'a mut Adam,
    critic: &'a mut Adam,
    c: &'a Config,
    stats: Stats,
}

impl Optimisers<'_> {
    /// The policy's step on one minibatch: the clipped surrogate of the
    /// pre-squash actions `a` (log-densities `old` under the behaviour
    /// policy) at inputs `x` with normalised advantages `adv`, minus the
    /// entropy bonus; its gradient through the network and the shared log
    /// standard deviations, clipped, and a step of `adam` (skipped, and
    /// counted, where it is not finite).
    fn policy_step<V: Real>(
        &mut self,
        nets: &mut Nets<V>,
        rng: &mut ChaCha8Rng,
        x: &[f64],
        a: &[f64],
        old: &[f64],
        adv: &[f64],
    ) {
        let (c, k, rows) = (self.c, self.policy.controls.len(), old.len());
        let out = nets.policy.forward(x, rows);
        let g = Gaussians::of(self.policy.std, k, out, &nets.log_std);
        let mut t = clipped_surrogate(&g.mean, &g.log_std, a, old, adv, c.ratio_clip);
        self.stats.loss = t.value;
        if c.entropy > 0.0 {
            let eps: Vec<f64> = (0..rows * k).map(|_| StandardNormal.sample(rng)).collect();
            let h = squashed_entropy(self.policy.bounds(), &g.mean, &g.log_std, &eps);
            t.add(&h, -c.entropy);
        }
        let (d_out, d_shared) = g.backward(&t);
        nets.policy.backward(&d_out);
        let norm2 = nets.policy.grad_norm2() + d_shared.iter().map(|d| d * d).sum::<f64>();
        match clip_scale(norm2.sqrt(), Some(c.clip)) {
            Some(scale) => {
                self.adam.t += 1;
                nets.policy.adam(self.adam.lr, self.adam.t, scale);
                let (m, v) = &mut nets.log_std_moments;
                adam_step(
                    &mut nets.log_std,
                    &d_shared,
                    (m, v),
                    self.adam.lr,
                    self.adam.t,
                    scale,
                );
                self.stats.grad_norm = norm2.sqrt();
            }
            None => self.stats.skipped += 1,
        }
    }

    /// The value network's step: the gradient `dv` of its loss with
    /// respect to the outputs of its last forward, back through it,
    /// clipped, and a step of `critic` where finite.
    fn value_step<V: Real>(&mut self, value: &mut Net<V>, dv: &[V]) {
        value.backward(dv);
        if let Some(scale) = clip_scale(value.grad_norm2().sqrt(), Some(self.c.clip)) {
            self.critic.t += 1;
            value.adam(self.critic.lr, self.critic.t, scale);
        }
    }
}

/// A loss term over a minibatch and its gradient with respect to the
/// policy's pre-squash means (`[rows][control]`) and log standard
/// deviations.
pub struct Term {
    /// The term's value.
    pub value: f64,
    /// Its gradient with respect to the means.
    pub d_mean: Vec<f64>,
    /// Its gradient with respect to the log standard deviations.
    pub d_log_std: Vec<f64>,
}

impl Term {
    /// `self += factor * other`.
    pub fn add(&mut self, other: &Term, factor: f64) {
        self.value += factor * other.value;
        for (a, b) in self.d_mean.iter_mut().zip(&other.d_mean) {
            *a += factor * b;
        }
        for (a, b) in self.d_log_std.iter_mut().zip(&other.d_log_std) {
            *a += factor * b;
        }
    }
}

/// PPO's clipped surrogate `-mean(min(r A, clamp(r, 1 - eps, 1 + eps) A))`,
/// `r = exp(logp - logp_old)`, of actions `a` with log-densities `old`
/// under the behaviour policy and advantages `adv`, now under Gaussians of
/// means `mean` and log standard deviations `log_std` (all `[rows][control]`);
/// the gradient flows through `r A` where it is the smaller (inside the
/// trust region, or outside it on the side that lowers the objective) and
/// not where the clamp holds it.
pub fn clipped_surrogate(
    mean: &[f64],
    log_std: &[f64],
    a: &[f64],
    old: &[f64],
    adv: &[f64],
    eps: f64,
) -> Term {
    let rows = old.len();
    let k = mean.len() / rows.max(1);
    let mut t = Term {
        value: 0.0,
        d_mean: vec![0.0; rows * k],
        d_log_std: vec![0.0; rows * k],
    };
    let per_row = 1.0 / rows.max(1) as f64;
    for i in 0..rows {
        let row = i * k..(i + 1) * k;
        let (m, l, x) = (&mean[row.clone()], &log_std[row.clone()], &a[row.clone()]);
        let r = (log_prob(m, l, x) - old[i]).exp();
        let (unclipped, clipped) = (r * adv[i], r.clamp(1.0 - eps, 1.0 + eps) * adv[i]);
        t.value -= per_row * unclipped.min(clipped);
        if unclipped <= clipped {
            // d(-r A / rows)/d logp, then d logp / d mean = z / std,
            // d logp / d log_std = z^2 - 1.
            let g = -per_row * unclipped;
            for (j, c) in row.enumerate() {
                let inv_std = (-l[j]).exp();
                let z = (x[j] - m[j]) * inv_std;
                t.d_mean[c] = g * z * inv_std;
                t.d_log_std[c] = g * (z * z - 1.0);
            }
        }
    }
    t
}

/// The entropy of the squashed Gaussians (Brax's tanh-normal) of
/// pre-squash means `mean` and log standard deviations `log_std` (both
/// `[rows][control]`), averaged over the rows: the Gaussians' entropy
/// `sum(log_std) + k/2 ln(2 pi e)` plus `ln |du/dy|` of the squash into
/// `bounds` at one reparameterised sample per row (`y = mean + exp(log_std)
/// eps`, so the estimate is differentiable in both). Unlike the Gaussian's
/// alone it does not grow without bound with the standard deviation: past
/// the controls' range, wider noise only saturates the squash.
pub fn squashed_entropy(
    bounds: &[Option<(f64, f64)>],
    mean: &[f64],
    log_std: &[f64],
    eps: &[f64],
) -> Term {
    let k = bounds.len();
    let rows = mean.len() / k.max(1);
    let per_row = 1.0 / rows.max(1) as f64;
    let tau = 2.0 * std::f64::consts::PI * std::f64::consts::E;
    let mut t = Term {
        value: per_row * log_std.iter().sum::<f64>() + 0.5 * k as f64 * tau.ln(),
        d_mean: vec![0.0; rows * k],
        d_log_std: vec![per_row; rows * k],
    };
    for (j, b) in bounds.iter().enumerate() {
        let Some((lo, hi)) = b else { continue };
        let log_half = ((hi - lo) / 2.0).ln();
        for i in 0..rows {
            let c = i * k + j;
            let std = log_std[c].exp();
            let y = mean[c] + std * eps[c];
            // ln(1 - tanh(y)^2) = 2 (ln 2 - y - softplus(-2 y)), finite far in
            // tanh's tails; its derivative is -2 tanh(y).
            let z = -2.0 * y;
            let softplus = z.max(0.0) + (-z.abs()).exp().ln_1p();
            t.value += per_row * (log_half + 2.0 * (std::f64::consts::LN_2 - y - softplus));
            let dy = -2.0 * y.tanh() * per_row;
            t.d_mean[c] = dy;
            t.d_log_std[c] += dy * std * eps[c];
        }
    }
    t
}

/// Log-density of actions `a` under independent Gaussians with means `mean`
/// and log standard deviations `log_std`, summed over the components.
pub fn log_prob(mean: &[f64], log_std: &[f64], a: &[f64]) -> f64 {
    let quad: f64 = mean
        .iter()
        .zip(log_std)
        .zip(a)
        .map(|((m, l), a)| ((a - m) * (-l).exp()).powi(2))
        .sum();
    -0.5 * quad
        - log_std.iter().sum::<f64>()
        - 0.5 * log_std.len() as f64 * (2.0 * std::f64::consts::PI).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_loss_matches_numbers_computed_by_hand() {
        // One control, mean 0, std 1: logp - old = -a^2/2 - ln sqrt(2 pi) - old,
        // so `old` sets the ratios. Ratios e^0.5 = 1.6487 (clipped to 1.2 for
        // A = 2 > 0), e^-0.5 = 0.6065 (clipped to 0.8 for A = -1 < 0:
        // min(-0.6065, -0.8) = -0.8), and 1 (A = 3).
        let base = log_prob(&[0.0], &[0.0], &[0.0]);
        let old = [base - 0.5, base + 0.5, base];
        let t = clipped_surrogate(
            &[0.0; 3],
            &[0.0; 3],
            &[0.0; 3],
            &old,
            &[2.0, -1.0, 3.0],
            0.2,
        );
        let want = -(1.2 * 2.0 + -0.8 + 3.0) / 3.0;
        assert!((t.value - want).abs() < 1e-12, "{} vs {want}", t.value);
        // Inside the trust region the objective is the plain ratio times A.
        let old = [base - 0.1, base + 0.1];
        let t = clipped_surrogate(&[0.0; 2], &[0.0; 2], &[0.0; 2], &old, &[1.0, -2.0], 0.2);
        let want = -(0.1f64.exp() - 2.0 * (-0.1f64).exp()) / 2.0;
        assert!((t.value - want).abs() < 1e-12, "{} vs {want}", t.value);
    }

    /// Central differences of `f`'s value in every entry of `at` against
    /// the gradient `grad`; returns the largest difference quotient.
    fn check(f: &dyn Fn(&[f64]) -> f64, at: &[f64], grad: &[f64], what: &str) -> f64 {
        let h = 1e-6;
        let mut largest: f64 = 0.0;
        for i in 0..at.len() {
            let (mut up, mut down) = (at.to_vec(), at.to_vec());
            up[i] += h;
            down[i] -= h;
            let d = (f(&up) - f(&down)) / (2.0 * h);
            largest = largest.max(d.abs());
            assert!((grad[i] - d).abs() < 1e-7, "{what} {i}: {} vs {d}", grad[i]);
        }
        largest
    }

    /// A term's closed-form gradient in every mean and log standard
    /// deviation against central differences of its value.
    fn check_gradient(term: &dyn Fn(&[f64], &[f64]) -> Term, mean: &[f64], log_std: &[f64]) {
        let t = term(mean, log_std);
        let a = check(&|m| term(m, log_std).value, mean, &t.d_mean, "mean");
        let b = check(&|l| term(mean, l).value, log_std, &t.d_log_std, "log std");
        assert!(a.max(b) > 1e-2, "a term with no gradient");
    }

    /// Means, per-row log standard deviations, actions sampled around
    /// them and their log-densities, advantages.
    type Batch = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

    /// Six rows of two controls.
    fn batch() -> Batch {
        let (rows, k) = (6, 2);
        let mean: Vec<f64> = (0..rows * k)
            .map(|i| ((i * 5 % 7) as f64 - 3.0) / 4.0)
            .collect();
        let log_std: Vec<f64> = (0..rows * k).map(|i| -0.5 + 0.1 * (i % 5) as f64).collect();
        let a: Vec<f64> = (0..rows * k)
            .map(|i| mean[i] + ((i * 3 % 5) as f64 - 2.0) / 3.0)
            .collect();
        let old = (0..rows)
            .map(|i| {
                let r = i * k..(i + 1) * k;
                log_prob(&mean[r.clone()], &log_std[r.clone()], &a[r])
            })
            .collect();
        let adv = (0..rows)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
            .collect();
        (mean, log_std, a, old, adv)
    }

    /// The surrogate's gradient, with the rollout's actions and
    /// log-densities held as numbers, is its central differences' at and
    /// away from the behaviour policy (ratios inside and outside the trust
    /// region on both sides of the advantages' sign).
    #[test]
    fn the_surrogates_gradient_is_its_central_differences() {
        let (mean, log_std, a, old, adv) = batch();
        let term = |m: &[f64], l: &[f64]| clipped_surrogate(m, l, &a, &old, &adv, 0.3);
        check_gradient(&term, &mean, &log_std);
        let moved: Vec<f64> = mean
            .iter()
            .enumerate()
            .map(|(i, m)| m + 0.3 * (i % 3) as f64 - 0.2)
            .collect();
        let moved_std: Vec<f64> = log_std.iter().map(|l| l + 0.1).collect();
        let t = term(&moved, &moved_std);
        assert!(
            t.d_mean.chunks(2).any(|r| r.iter().all(|&d| d == 0.0)),
            "some ratio is held by the clamp"
        );
        check_gradient(&term, &moved, &moved_std);
    }

    /// The squashed entropy's gradient is its central differences' with the
    /// same noise, bounded and unbounded controls mixed.
    #[test]
    fn the_squashed_entropys_gradient_is_its_central_differences() {
        let bounds = [Some((-1.0, 1.0)), None, Some((0.0, 3.0))];
        let mean = [0.3, -0.8, 1.5, 0.1, -0.2, 0.6];
        let eps = [0.4, -1.1, 0.2, 0.9, 0.0, -0.5];
        let term = |m: &[f64], l: &[f64]| squashed_entropy(&bounds, m, l, &eps);
        check_gradient(&term, &mean, &[-0.4, 0.2, 0.1, -0.4, 0.2, 0.1]);
        check_gradient(&term, &mean, &[0.5, -1.0, -0.3, 0.0, 0.7, -0.2]);
    }

    /// The loss's gradient with respect to the network's outputs: for a
    /// shared standard deviation the rows' gradients summed, for a
    /// state-dependent one carried through `softplus + 0.001` to the raw
    /// scales; both against central differences of the whole loss
    /// (surrogate minus an entropy bonus).
    #[test]
    fn the_gradient_reaches_the_networks_outputs() {
        let (mean, _, a, old, adv) = batch();
        let bounds = [Some((-1.0, 1.0)), None];
        let eps: Vec<f64> = (0..12).map(|i| ((i * 4 % 9) as f64 - 4.0) / 3.0).collect();
        let loss = |g: &Gaussians| {
            let mut t = clipped_surrogate(&g.mean, &g.log_std, &a, &old, &adv, 0.3);
            t.add(&squashed_entropy(&bounds, &g.mean, &g.log_std, &eps), -0.05);
            t
        };
        let shared = [-0.3, 0.2];
        let g = Gaussians::of(Std::Shared, 2, &mean, &shared);
        let (d_out, d_shared) = g.backward(&loss(&g));
        let at = |out: &[f64], s: &[f64]| loss(&Gaussians::of(Std::Shared, 2, out, s)).value;
        check(&|o| at(o, &shared), &mean, &d_out, "output");
        check(&|s| at(&mean, s), &shared, &d_shared, "shared log std");
        // Raw scales beside the means: [mean0, mean1, s0, s1] per row.
        let out: Vec<f64> = mean
            .chunks(2)
            .enumerate()
            .flat_map(|(i, m)| [m[0], m[1], 0.4 * i as f64 - 1.0, 0.3 - 0.2 * i as f64])
            .collect();
        let g = Gaussians::of(Std::State, 2, &out, &[]);
        let (d_out, d_shared) = g.backward(&loss(&g));
        assert!(d_shared.is_empty());
        let largest = check(
            &|o| loss(&Gaussians::of(Std::State, 2, o, &[])).value,
            &out,
            &d_out,
            "output",
        );
        assert!(largest > 1e-2, "a loss with no gradient: {largest}");
    }

    #[test]
    fn log_prob_is_the_gaussian_density() {
        let got = log_prob(&[0.0, 1.0], &[0.0, 2f64.ln()], &[0.5, 0.0]);
        let density = |x: f64, m: f64, s: f64| {
            (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
        };
        let want = (density(0.5, 0.0, 1.0) * density(0.0, 1.0, 2.0)).ln();
        assert!((got - want).abs() < 1e-12, "{got} {want}");
    }

    /// With one pass of one minibatch, per-minibatch advantages are the
    /// once-per-iteration ones (the value network has not moved yet, the
    /// observation statistics are the rollouts'), so both updates take the
    /// same step, rows in another order: the trajectories' bookkeeping
    /// (inputs, actions, behaviour log-densities, GAE per environment, a
    /// diverged environment's cut) against the steps'.
    #[test]
    fn one_minibatch_of_trajectories_is_the_update_of_steps() {
        use crate::envs::{Fault, FaultKind};
        use crate::net::Mlp;
        use crate::policy;
        use rand::SeedableRng;
        // The CLI tests' reach scene, whose episodes also end near the target.
        let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
        let src = std::fs::read_to_string(path).unwrap()
            + "done near = norm(puck.x - vec3(1, 0.5, 0)) < 1.116\n";
        let scene = joule_runtime::Scene::compile(&src).unwrap();
        let mut c = Config::new(crate::Algo::Ppo, "closeness");
        (c.batch, c.horizon, c.epochs, c.minibatches, c.reward_scale) = (6, 7, 1, 1, 3.0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let spec = policy::spec(&scene, None).unwrap();
        let pol = Policy::with_std(&scene, spec, Std::State, &mut rng).unwrap();
        let mut envs = Envs::new(&scene, c.batch, 1, Some("closeness"), 10, 0.1, &mut rng).unwrap();
        let sizes = [pol.inputs(), 16, 1];
        let value = Mlp::new(&sizes, spec.activation, spec.init, 1.0, &mut rng).unwrap();
        let fresh = || {
            let adam = Adam::new(&pol.net.vars(), 1e-3).unwrap();
            let critic = Adam::new(&value.vars(), 1e-3).unwrap();
            let nets = Nets::<f64> {
                policy: Net::of(&pol.net, &adam).unwrap(),
                value: Net::of(&value, &critic).unwrap(),
                log_std: vec![],
                log_std_moments: (vec![], vec![]),
            };
            (nets, adam, critic)
        };
        let mut n = fresh().0;
        envs.fault = Some(Fault {
            env: 2,
            step: 3,
            kind: FaultKind::Nan,
        });
        let mut rollouts = vec![
            rollout(&mut envs, &pol, &mut n, c.horizon, true, &mut rng)
                .unwrap()
                .0,
        ];
        envs.boundary(&mut rng);
        rollouts.push(
            rollout(&mut envs, &pol, &mut n, c.horizon, true, &mut rng)
                .unwrap()
                .0,
        );
        assert!(rollouts[0].diverged[3][2], "the fault masks environment 2");
        assert!(
            rollouts[0].terminal.iter().flatten().any(|&t| t),
            "an episode ends"
        );
        let mut params = vec![];
        for advantages in [Advantages::Rollout, Advantages::Minibatch] {
            c.advantages = advantages;
            let (mut n, mut a, mut k) = fresh();
            update(&rollouts, &pol, &mut n, &mut a, &mut k, &c, &mut rng).unwrap();
            assert_eq!((a.t, k.t), (1, 1), "one step of each optimiser");
            params.push([n.policy.params(), n.value.params()].concat().concat());
        }
        let moved = params[1]
            .iter()
            .zip(&params[0])
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            moved > 0,
            "the steps differ in rounding, so they are not one code path"
        );
        for (i, (a, b)) in params[1].iter().zip(&params[0]).enumerate() {
            assert!((a - b).abs() < 1e-12, "parameter {i}: {a} vs {b}");
        }
    }
}
