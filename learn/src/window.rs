//! One differentiable window: `H` steps of every environment with the policy
//! in the loop, recorded on a tape, then the reverse pass that carries
//! dL/d(state) back through the simulator and, at every step, hands
//! dL/d(controls) to the network, whose backward pass returns dL/d(weights)
//! and dL/d(observations) — the latter seeded into the simulator's outputs
//! at the state they were read from.
//!
//! The loss is `-(1/(B H)) sum_e [sum_t gamma^t w_te r_te + gamma^H a_e V(o_He)]`
//! (`w` masks steps after an episode ended or from the step an environment
//! diverged, `a` whether it is still running, `V` an optional value network
//! closing the window, as in SHAC). A diverged environment passes no
//! gradient from the step it diverged on: the simulator's adjoint of its
//! state is dropped there, and its control adjoints from there on are
//! masked (not counted as dropped), so the gradient of its earlier rewards
//! is exact and nothing of the non-finite state reaches the weights.
//!
//! With [`Explore`] the window acts with a Gaussian around the policy's
//! pre-squash outputs, `y + exp(log_std) eps` (SHAC's stochastic actor): the
//! sample is reparameterised, so the gradient is the pathwise one through
//! the sample, and `log_std` learns with the weights.

use crate::adam::{add_grads, grads_of};
use crate::envs::{healthy_steps, name_error, Envs};
use crate::net::Mlp;
use crate::policy::Policy;
use candle_core::{Device, Result, Tensor, Var};
use joule_runtime::Tape;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Exploration in a window: the learned log standard deviations (one per
/// control) of a Gaussian on the policy's pre-squash outputs, and the
/// random stream its samples are drawn from.
pub struct Explore<'a> {
    /// `[control]`, learned with the policy's weights.
    pub log_std: &'a Var,
    /// The trainer's random stream.
    pub rng: &'a mut ChaCha8Rng,
}

/// What a window recorded, for the value network's targets and statistics.
pub struct Window {
    /// The loss (negative, normalised return).
    pub loss: f64,
    /// d loss / d (policy variables), in [`Mlp::vars`] order, then
    /// d loss / d `log_std` when the window explored.
    pub grads: Vec<Tensor>,
    /// Raw observations at the start of every step and after the last, `[H + 1][env][input]`.
    pub obs: Vec<Vec<Vec<f64>>>,
    /// Rewards, `[H][env]` (0 where masked).
    pub reward: Vec<Vec<f64>>,
    /// Whether the step's reward counted, `[H][env]`.
    pub weight: Vec<Vec<f64>>,
    /// Whether the episode ended at the step, `[H][env]`.
    pub terminal: Vec<Vec<bool>>,
    /// Whether the environment was masked at the step (it diverged), `[H][env]`.
    pub diverged: Vec<Vec<bool>>,
    /// Control adjoints that were not finite and were dropped (per step and
    /// environment): the NaN guard against gradients exploding through contact.
    pub dropped: usize,
}

/// A closed-loop rollout recorded on a tape.
pub struct Rollout {
    tape: Tape,
    /// The policy's input variable, its controls, its pre-squash outputs
    /// (the mean, before any exploration) and the mask of the bounded
    /// controls (see [`Policy::squash`]) at every step.
    steps: Vec<(Var, Tensor, Tensor, Tensor)>,
    /// The exploration's log standard deviation, where the rollout explored
    /// (differentiated with the policy's weights).
    log_std: Option<Var>,
    /// Raw observations at the start of every step and after the last,
    /// `[H + 1][env][input]` (zeros where the environment was masked).
    pub obs: Vec<Vec<Vec<f64>>>,
    /// Rewards, `[H][env]` (0 where masked).
    pub reward: Vec<Vec<f64>>,
    /// Whether the step's reward counted, `[H][env]`.
    pub weight: Vec<Vec<f64>>,
    /// Whether the episode ended at the step, `[H][env]`.
    pub terminal: Vec<Vec<bool>>,
    /// Whether the environment was masked at the step (it diverged), `[H][env]`.
    pub diverged: Vec<Vec<bool>>,
    /// All outputs after every step, `[H][row][env]`.
    pub outputs: Vec<Vec<Vec<f64>>>,
}

/// `h` steps of every environment with `policy` setting the controls (around
/// its outputs where `explore` is given), recorded.
pub fn forward(
    envs: &mut Envs,
    policy: &Policy,
    h: usize,
    mut explore: Option<Explore>,
) -> Result<Rollout> {
    let mut r = Rollout {
        tape: envs.sim.tape(),
        steps: vec![],
        log_std: explore.as_ref().map(|x| x.log_std.clone()),
        obs: vec![],
        reward: vec![],
        weight: vec![],
        terminal: vec![],
        diverged: vec![],
        outputs: vec![],
    };
    let start = envs.sim.outputs();
    for _ in 0..h {
        let mut o = policy.observe(r.outputs.last().unwrap_or(&start));
        envs.mask(&mut o);
        let input = Var::from_tensor(&policy.input(&o)?)?;
        let y = policy.means(input.as_tensor())?;
        let acted = match &mut explore {
            Some(x) => {
                let (b, k) = y.dims2()?;
                let eps: Vec<f64> = (0..b * k).map(|_| StandardNormal.sample(x.rng)).collect();
                let eps = Tensor::from_vec(eps, (b, k), &Device::Cpu)?;
                (&y + eps.broadcast_mul(&x.log_std.as_tensor().exp()?)?)?
            }
            None => y.clone(),
        };
        let (u, bounded) = policy.squash(&acted)?;
        policy.write_controls(&u, &mut envs.controls)?;
        envs.apply_controls();
        envs.timed(|sim| sim.step_taped(&mut r.tape));
        let out = envs.after_step();
        r.obs.push(o);
        r.steps.push((input, u, y, bounded));
        r.reward.push(out.reward);
        r.weight.push(out.weight);
        r.terminal.push(out.terminal);
        r.diverged.push(out.diverged);
        r.outputs.push(out.outputs);
    }
    let mut o = policy.observe(r.outputs.last().unwrap_or(&start));
    envs.mask(&mut o);
    r.obs.push(o);
    Ok(r)
}

/// The reverse pass of a rollout. `seeds(t)` are the objective's output
/// seeds `[row][env]` at the state after step `t` (`end` is added to the last
/// one: a terminal value's seeds). Returns d objective / d (policy variables)
/// and the number of control adjoints dropped for not being finite. An
/// environment that diverged at step `t` passes nothing back from the state
/// after it: its adjoint is dropped there and its control adjoints of steps
/// `t..` are masked. `squash_penalty` adds [`squash_loss`]'s term. The
/// variables differentiated are the policy's, then the exploration's
/// `log_std` where the rollout explored.
pub fn backward(
    envs: &mut Envs,
    policy: &Policy,
    r: &mut Rollout,
    seeds: impl Fn(usize) -> Vec<Vec<f64>>,
    end: Option<Vec<Vec<f64>>>,
    squash_penalty: f64,
) -> Result<(Vec<Tensor>, usize)> {
    let h = r.steps.len();
    let (b, rows) = (envs.batch(), envs.rows);
    let healthy: Vec<usize> = (0..b).map(|e| healthy_steps(&r.diverged, e)).collect();
    let mut last = seeds(h - 1);
    if let Some(end) = end {
        add(&mut last, &end);
    }
    envs.sim
        .seed_outputs(&mut r.tape, &last)
        .map_err(name_error)?;
    let mut vars = policy.net.vars();
    vars.extend(r.log_std.iter().cloned());
    let mut dropped = 0;
    let mut grads: Vec<Tensor> = vars.iter().map(|v| v.zeros_like()).collect::<Result<_>>()?;
    for t in (0..h).rev() {
        let ubar = envs.timed(|sim| sim.reverse_step(&mut r.tape));
        for e in (0..b).filter(|&e| healthy[e] == t) {
            envs.sim.drop_adjoint(&mut r.tape, e);
        }
        let (input, u, y, bounded) = &r.steps[t];
        let mut cols: Vec<f64> = (0..b)
            .flat_map(|e| policy.controls.iter().map(move |&c| (c, e)))
            .map(|(c, e)| ubar[c][e])
            .collect();
        for (row, &n) in cols.chunks_mut(policy.controls.len()).zip(&healthy) {
            if t >= n {
                row.fill(0.0);
            } else if row.iter().any(|x| !x.is_finite()) {
                row.fill(0.0);
                dropped += 1;
            }
        }
        let ubar = Tensor::from_vec(cols, (b, policy.controls.len()), &Device::Cpu)?;
        let mut objective = u.mul(&ubar)?.sum_all()?;
        if squash_penalty > 0.0 {
            let live: Vec<f64> = healthy
                .iter()
                .map(|&n| f64::from(u8::from(t < n)))
                .collect();
            let live = Tensor::from_vec(live, b, &Device::Cpu)?;
            let coef = squash_penalty / (b * h) as f64;
            let squash = squared(y, bounded)?;
            objective = (objective + squash.mul(&live)?.sum_all()?.affine(coef, 0.0)?)?;
        }
        let store = objective.backward()?;
        add_grads(&mut grads, &grads_of(&store, &vars)?)?;
        if t > 0 {
            let d_input = store
                .get(input.as_tensor())
                .expect("the policy reads its input");
            let mut s = policy.input_seeds(d_input, &r.obs[t], rows)?;
            add(&mut s, &seeds(t - 1));
            envs.sim.seed_outputs(&mut r.tape, &s).map_err(name_error)?;
        }
    }
    Ok((grads, dropped))
}

/// Each environment's squared pre-squash outputs `y` of the bounded
/// controls, summed (`[env]`).
fn squared(y: &Tensor, bounded: &Tensor) -> Result<Tensor> {
    y.sqr()?.broadcast_mul(bounded)?.sum(1)
}

/// The squash penalty of a rollout: `penalty / (B H)` times the sum over
/// its steps and healthy environments of the squared pre-squash outputs of
/// bounded controls.
pub fn squash_loss(r: &Rollout, penalty: f64) -> Result<f64> {
    let (h, mut sum) = (r.steps.len(), 0.0);
    let mut b = 0;
    for (t, (_, _, y, bounded)) in r.steps.iter().enumerate() {
        let s = squared(y, bounded)?.to_vec1::<f64>()?;
        b = s.len();
        sum += (0..b)
            .filter(|&e| t < healthy_steps(&r.diverged, e))
            .map(|e| s[e])
            .sum::<f64>();
    }
    Ok(if b == 0 {
        0.0
    } else {
        penalty * sum / (b * h) as f64
    })
}

/// Runs one window of `h` steps (exploring where `explore` is given) and
/// differentiates its loss (with the squash penalty `squash_penalty`, see
/// [`squash_loss`]).
pub fn run(
    envs: &mut Envs,
    policy: &Policy,
    h: usize,
    gamma: f64,
    value: Option<&Mlp>,
    squash_penalty: f64,
    explore: Option<Explore>,
) -> Result<Window> {
    let (b, rows) = (envs.batch(), envs.rows);
    let row = envs
        .reward_row
        .ok_or_else(|| candle_core::Error::Msg("training needs a reward".into()))?;
    let norm = 1.0 / (b * h) as f64;
    let mut r = forward(envs, policy, h, explore)?;
    let mut loss = 0.0;
    for (t, rew) in r.reward.iter().enumerate() {
        loss -= norm * gamma.powi(t as i32) * rew.iter().sum::<f64>();
    }
    let end = match value {
        Some(v) => {
            let alive: Vec<f64> = envs.alive.iter().map(|&a| f64::from(u8::from(a))).collect();
            let coef = Tensor::from_vec(alive, (b, 1), &Device::Cpu)?
                .affine(-norm * gamma.powi(h as i32), 0.0)?;
            let input = Var::from_tensor(&policy.input(&r.obs[h])?)?;
            let term = v.forward(input.as_tensor())?.mul(&coef)?.sum_all()?;
            loss += term.to_scalar::<f64>()?;
            let d = term.backward()?;
            let d_input = d.get(input.as_tensor()).expect("the value reads its input");
            Some(policy.input_seeds(d_input, &r.obs[h], rows)?)
        }
        None => None,
    };
    let weight = std::mem::take(&mut r.weight);
    let seeds = |t: usize| reward_seeds(rows, row, &weight[t], -norm * gamma.powi(t as i32));
    if squash_penalty > 0.0 {
        loss += squash_loss(&r, squash_penalty)?;
    }
    let (grads, dropped) = backward(envs, policy, &mut r, seeds, end, squash_penalty)?;
    Ok(Window {
        loss,
        grads,
        obs: r.obs,
        reward: r.reward,
        weight,
        terminal: r.terminal,
        diverged: r.diverged,
        dropped,
    })
}

/// Seeds `coef * weight_e` on the reward row.
fn reward_seeds(rows: usize, row: usize, weight: &[f64], coef: f64) -> Vec<Vec<f64>> {
    let mut s = vec![vec![0.0; weight.len()]; rows];
    for (e, w) in weight.iter().enumerate() {
        s[row][e] = coef * w;
    }
    s
}

fn add(acc: &mut [Vec<f64>], more: &[Vec<f64>]) {
    for (a, m) in acc.iter_mut().zip(more) {
        for (x, y) in a.iter_mut().zip(m) {
            *x += y;
        }
    }
}
