//! Proximal policy optimisation, the model-free baseline: the same policy
//! network's pre-squash outputs as the means of Gaussians (a learned,
//! state-independent standard deviation), sampled and then squashed into the
//! controls' ranges (Brax's tanh-normal: every action is inside its range),
//! generalised advantage estimation, and the clipped surrogate objective
//! optimised over minibatch epochs. No gradient passes through the
//! simulator.
//!
//! An iteration is a `rollout` (actions sampled around the policy's, with
//! their log-densities and the value network's values), then an `update`
//! (advantages by GAE on the rewards times `reward_scale`, normalised, and
//! `epochs` passes over the rollout in `minibatches` shuffled minibatches,
//! each one step of the policy's and the value network's optimisers). The
//! losses are [`clipped_loss`], [`log_prob`] (of the pre-squash sample: the
//! squash's Jacobian cancels in the ratio) and the entropy bonus
//! [`squashed_entropy`]; the settings are [`Config`]'s, Brax's PPO's by
//! another name (docs/learning.md maps them).

use crate::adam::{grads_of, Adam, Update};
use crate::envs::{healthy_steps, Envs};
use crate::net::Mlp;
use crate::policy::Policy;
use crate::trainer::Config;
use crate::value::{self, column, Critic};
use candle_core::{Device, Result, Tensor, Var};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A stochastic rollout of every environment, step-major.
pub(crate) struct Rollout {
    /// Raw observations at the start of every step, `[H][env][input]`
    /// (zeros where the environment was masked).
    pub observations: Vec<Vec<Vec<f64>>>,
    /// The policy's inputs at every step, `[H]` tensors of `[env, input]`.
    pub inputs: Vec<Tensor>,
    /// The sampled actions before the squash into the controls' ranges, `[H]`
    /// tensors of `[env, control]`.
    pub actions: Vec<Tensor>,
    /// Their log-densities under the policy that sampled them, `[H]` tensors of `[env]`.
    pub log_probs: Vec<Tensor>,
    /// The value network's values at the start of every step and after the
    /// last, `[H + 1][env]`.
    pub values: Vec<Vec<f64>>,
    /// Rewards, `[H][env]` (0 where masked).
    pub rewards: Vec<Vec<f64>>,
    /// Whether the episode ended at the step, `[H][env]`.
    pub terminal: Vec<Vec<bool>>,
    /// Whether the step's reward counted, `[H][env]`.
    pub weight: Vec<Vec<f64>>,
    /// Whether the environment was masked at the step (it diverged), `[H][env]`.
    pub diverged: Vec<Vec<bool>>,
}

/// `horizon` steps of every environment acting with the policy's Gaussians:
/// pre-squash outputs sampled around the network's with standard deviations
/// `exp(log_std)`, then squashed into the controls' ranges (Brax's
/// tanh-normal); `value` rates the states.
pub(crate) fn rollout(
    envs: &mut Envs,
    policy: &Policy,
    log_std: &Var,
    value: &Mlp,
    horizon: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Rollout> {
    let (b, k) = (envs.batch(), policy.controls.len());
    let std: Vec<f64> = log_std.as_tensor().exp()?.to_vec1::<f64>()?;
    let mut outputs = envs.sim.outputs();
    let (mut raw, mut inputs, mut actions, mut logps, mut values) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut rewards, mut terminal, mut weight, mut diverged) = (vec![], vec![], vec![], vec![]);
    for _ in 0..horizon {
        let mut o = policy.observe(&outputs);
        envs.mask(&mut o);
        let x = policy.input(&o)?;
        // Constants of the update: the behaviour policy's actions and
        // log-densities carry no graph back to the variables (through them
        // the surrogate's gradient would cancel its own at the old policy).
        let mean = policy.net.forward(&x)?.detach();
        let eps: Vec<f64> = (0..b * k).map(|_| StandardNormal.sample(rng)).collect();
        let eps = Tensor::from_vec(eps, (b, k), &Device::Cpu)?;
        let a = (mean.clone() + eps.broadcast_mul(&Tensor::new(std.as_slice(), &Device::Cpu)?)?)?;
        logps.push(log_prob(&mean, &log_std.as_tensor().detach(), &a)?);
        values.push(value.forward(&x)?.flatten_all()?.to_vec1::<f64>()?);
        policy.write_controls(&policy.squash(&a)?.0, &mut envs.controls)?;
        envs.apply_controls();
        envs.timed(|sim| sim.step());
        let out = envs.after_step();
        raw.push(o);
        inputs.push(x);
        actions.push(a);
        rewards.push(out.reward);
        terminal.push(out.terminal);
        weight.push(out.weight);
        diverged.push(out.diverged);
        outputs = out.outputs;
    }
    let mut o = policy.observe(&outputs);
    envs.mask(&mut o);
    let last = policy.input(&o)?;
    values.push(value.forward(&last)?.flatten_all()?.to_vec1::<f64>()?);
    Ok(Rollout {
        observations: raw,
        inputs,
        actions,
        log_probs: logps,
        values,
        rewards,
        terminal,
        weight,
        diverged,
    })
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

/// The update after a rollout: advantages by GAE (normalised over the steps
/// whose reward counted: never a diverged environment's), then the clipped objective plus half the value
/// network's squared error, minus `entropy` times the squashed Gaussian's
/// entropy,
/// over `epochs` passes of `minibatches` shuffled minibatches, each
/// followed by a step of `adam` (the policy and `log_std`) and of the
/// critic's optimiser. Advantages and value targets are in units of the
/// rewards times `reward_scale`.
pub(crate) fn update(
    rollout: &Rollout,
    policy: &Policy,
    log_std: &Var,
    adam: &mut Adam,
    critic: &mut Critic,
    c: &Config,
    rng: &mut ChaCha8Rng,
) -> Result<Stats> {
    let Rollout {
        inputs,
        actions,
        log_probs,
        values,
        rewards,
        terminal,
        weight,
        diverged,
        ..
    } = rollout;
    let b = values[0].len();
    // Advantages per environment, then flattened step-major like the tensors;
    // a diverged environment's rollout ends where it diverged (bootstrapped
    // from the value of its last finite state), its later steps stay 0 and
    // out of the statistics.
    let mut adv = vec![0.0; c.horizon * b];
    let mut ret = vec![0.0; c.horizon * b];
    for e in 0..b {
        let n = healthy_steps(diverged, e);
        let scaled: Vec<f64> = column(&rewards[..n], e)
            .iter()
            .map(|r| r * c.reward_scale)
            .collect();
        let (a, r) = value::gae(
            &scaled,
            &column(&values[..=n], e),
            &column(&terminal[..n], e),
            c.gamma,
            c.lambda,
        );
        for t in 0..n {
            adv[t * b + e] = a[t];
            ret[t * b + e] = r[t];
        }
    }
    let valid: Vec<usize> = (0..c.horizon * b)
        .filter(|&i| weight[i / b][i % b] > 0.0 && adv[i].is_finite())
        .collect();
    let n = valid.len().max(1) as f64;
    let mean_a = valid.iter().map(|&i| adv[i]).sum::<f64>() / n;
    let std_a = (valid
        .iter()
        .map(|&i| (adv[i] - mean_a).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
        + 1e-8;
    let x = Tensor::cat(inputs, 0)?;
    let a = Tensor::cat(actions, 0)?;
    let old = Tensor::cat(log_probs, 0)?;
    let mut vars = policy.net.vars();
    vars.push(log_std.clone());
    let k_vars = critic.net.vars();
    let (mut loss_v, mut norm, mut skipped) = (0.0, 0.0, 0);
    let mut order = valid.clone();
    for _ in 0..c.epochs {
        order.shuffle(rng);
        for chunk in order.chunks(order.len().div_ceil(c.minibatches).max(1)) {
            let idx = Tensor::from_vec(
                chunk.iter().map(|&i| i as u32).collect::<Vec<u32>>(),
                chunk.len(),
                &Device::Cpu,
            )?;
            let advs: Vec<f64> = chunk.iter().map(|&i| (adv[i] - mean_a) / std_a).collect();
            let rets: Vec<f64> = chunk.iter().map(|&i| ret[i]).collect();
            let xb = x.index_select(&idx, 0)?;
            let mean = policy.net.forward(&xb)?;
            let new = log_prob(&mean, log_std.as_tensor(), &a.index_select(&idx, 0)?)?;
            let policy_loss = clipped_loss(
                &new,
                &old.index_select(&idx, 0)?,
                &Tensor::new(advs.as_slice(), &Device::Cpu)?,
                c.ratio_clip,
            )?;
            let v = critic.net.forward(&xb)?.flatten_all()?;
            let value_loss = (v - Tensor::new(rets.as_slice(), &Device::Cpu)?)?
                .sqr()?
                .mean_all()?;
            let mut loss = (&policy_loss + (value_loss * 0.5)?)?;
            if c.entropy > 0.0 {
                let entropy = squashed_entropy(policy, &mean, log_std, rng)?;
                loss = (loss - (entropy * c.entropy)?)?;
            }
            loss_v = policy_loss.to_scalar::<f64>()?;
            let store = loss.backward()?;
            match adam.step(&vars, &grads_of(&store, &vars)?, Some(c.clip))? {
                Update::Applied { norm: g } => norm = g,
                Update::Skipped => skipped += 1,
            }
            critic
                .adam
                .step(&k_vars, &grads_of(&store, &k_vars)?, Some(c.clip))?;
        }
    }
    Ok(Stats {
        loss: loss_v,
        grad_norm: norm,
        skipped,
    })
}

/// `-mean(min(r A, clamp(r, 1 - eps, 1 + eps) A))`, `r = exp(logp_new - logp_old)`.
pub fn clipped_loss(
    logp_new: &Tensor,
    logp_old: &Tensor,
    adv: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let ratio = (logp_new - logp_old)?.exp()?;
    let unclipped = (&ratio * adv)?;
    let clipped = (ratio.clamp(1.0 - eps, 1.0 + eps)? * adv)?;
    unclipped.minimum(&clipped)?.mean_all()?.neg()
}

/// The entropy of the squashed Gaussians (Brax's tanh-normal), averaged
/// over the rows of pre-squash means `mean` (`[rows, k]`): the Gaussians'
/// entropy plus `ln |du/dy|` of the squash at one reparameterised sample per
/// row (`y = mean + exp(log_std) eps`, so the estimate is differentiable in
/// both). Unlike the Gaussian's alone it does not grow without bound with
/// the standard deviation: past the controls' range, wider noise only
/// saturates the squash.
pub fn squashed_entropy(
    policy: &Policy,
    mean: &Tensor,
    log_std: &Var,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let (rows, k) = mean.dims2()?;
    let eps: Vec<f64> = (0..rows * k).map(|_| StandardNormal.sample(rng)).collect();
    let eps = Tensor::from_vec(eps, (rows, k), &Device::Cpu)?;
    let y = (mean + eps.broadcast_mul(&log_std.as_tensor().exp()?)?)?;
    let jacobian = policy.log_squash_jacobian(&y)?.mean_all()?;
    gaussian_entropy(log_std.as_tensor(), k as f64)? + jacobian
}

/// Entropy of independent Gaussians with log standard deviations
/// `log_std` (`[k]`): `sum(log_std) + k/2 ln(2 pi e)`, the same for every
/// state (the standard deviation does not depend on it).
pub fn gaussian_entropy(log_std: &Tensor, k: f64) -> Result<Tensor> {
    log_std.sum_all()? + 0.5 * k * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln()
}

/// Log-density of actions `a` (`[rows, k]`) under independent Gaussians with
/// means `mean` (`[rows, k]`) and log standard deviations `log_std` (`[k]`),
/// summed over the `k` components: `[rows]`.
pub fn log_prob(mean: &Tensor, log_std: &Tensor, a: &Tensor) -> Result<Tensor> {
    let k = log_std.dims1()? as f64;
    let z = (a - mean)?.broadcast_div(&log_std.exp()?)?;
    let quad = (z.sqr()?.sum(1)? * -0.5)?;
    quad.broadcast_sub(&log_std.sum_all()?)? - 0.5 * k * (2.0 * std::f64::consts::PI).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn clipped_loss_matches_numbers_computed_by_hand() -> Result<()> {
        // Ratios e^0.5 = 1.6487 (clipped to 1.2 for A = 2 > 0), e^-0.5 = 0.6065
        // (clipped to 0.8 for A = -1 < 0: min(-0.6065, -0.8) = -0.8), and 1 (A = 3).
        let loss = clipped_loss(
            &t(&[0.5, -0.5, 0.0]),
            &t(&[0.0; 3]),
            &t(&[2.0, -1.0, 3.0]),
            0.2,
        )?;
        let want = -(1.2 * 2.0 + -0.8 + 3.0) / 3.0;
        assert!((loss.to_scalar::<f64>()? - want).abs() < 1e-12);
        // Inside the trust region the objective is the plain ratio times A:
        // r = e^0.1 for A = 1, r = e^-0.1 for A = -2.
        let loss = clipped_loss(&t(&[0.1, -0.1]), &t(&[0.0; 2]), &t(&[1.0, -2.0]), 0.2)?;
        let want = -(0.1f64.exp() - 2.0 * (-0.1f64).exp()) / 2.0;
        assert!((loss.to_scalar::<f64>()? - want).abs() < 1e-12);
        Ok(())
    }

    /// The clipped surrogate's gradient at the behaviour policy, as the
    /// update backpropagates it from the rollout's own tensors, matches
    /// central differences of the surrogate in every variable with the
    /// rollout's actions and log-densities held as numbers (when the
    /// rollout's tensors kept their graph, the two gradients through the
    /// old and the new log-density cancelled: zero everywhere).
    #[test]
    fn the_surrogates_gradient_holds_the_rollouts_samples_fixed() -> Result<()> {
        use joule_compiler::model::{Activation, Init};
        use rand::SeedableRng;
        let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
        let scene = joule_runtime::Scene::from_path(path.as_ref(), Default::default())
            .expect("the scene compiles");
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let spec = crate::policy::spec(&scene, None).expect("one policy");
        let policy = Policy::new(&scene, spec, &mut rng)?;
        let mut envs =
            Envs::new(&scene, 6, 1, Some("closeness"), 20, 0.1, &mut rng).expect("the reward");
        let log_std = Var::from_vec(vec![-0.5, -0.2], 2, &Device::Cpu)?;
        let value = Mlp::new(
            &[policy.inputs(), 4, 1],
            Activation::Tanh,
            Init::Small,
            1.0,
            &mut rng,
        )?;
        let r = rollout(&mut envs, &policy, &log_std, &value, 3, &mut rng)?;
        let x = Tensor::cat(&r.inputs, 0)?;
        let (a, old) = (Tensor::cat(&r.actions, 0)?, Tensor::cat(&r.log_probs, 0)?);
        let adv: Vec<f64> = (0..18).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let adv = Tensor::new(adv.as_slice(), &Device::Cpu)?;
        let loss = |a: &Tensor, old: &Tensor| -> Result<Tensor> {
            let new = log_prob(&policy.net.forward(&x)?, log_std.as_tensor(), a)?;
            clipped_loss(&new, old, &adv, 0.3)
        };
        let numbers = |t: &Tensor| -> Result<Tensor> {
            Tensor::from_vec(t.flatten_all()?.to_vec1::<f64>()?, t.dims(), &Device::Cpu)
        };
        let (a_fixed, old_fixed) = (numbers(&a)?, numbers(&old)?);
        let grads = loss(&a, &old)?.backward()?;
        let mut vars = policy.net.vars();
        vars.push(log_std.clone());
        let mut largest: f64 = 0.0;
        for var in &vars {
            let g = grads_of(&grads, std::slice::from_ref(var))?[0]
                .flatten_all()?
                .to_vec1::<f64>()?;
            let v0 = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            let set = |i: usize, x: f64| -> Result<()> {
                let mut v = v0.clone();
                v[i] = x;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu)?)
            };
            for i in [0, v0.len() / 2, v0.len() - 1] {
                let h = 1e-6;
                set(i, v0[i] + h)?;
                let up = loss(&a_fixed, &old_fixed)?.to_scalar::<f64>()?;
                set(i, v0[i] - h)?;
                let down = loss(&a_fixed, &old_fixed)?.to_scalar::<f64>()?;
                set(i, v0[i])?;
                let fd = (up - down) / (2.0 * h);
                largest = largest.max(fd.abs());
                assert!(
                    (g[i] - fd).abs() <= 1e-6 * fd.abs().max(1e-3),
                    "entry {i}: backpropagated {} vs central differences {fd}",
                    g[i]
                );
            }
        }
        assert!(largest > 1e-2, "a surrogate with no gradient: {largest}");
        Ok(())
    }

    #[test]
    fn log_prob_is_the_gaussian_density() -> Result<()> {
        let mean = Tensor::new(&[[0.0, 1.0]], &Device::Cpu)?;
        let a = Tensor::new(&[[0.5, 0.0]], &Device::Cpu)?;
        let log_std = t(&[0.0, 2f64.ln()]);
        let got = log_prob(&mean, &log_std, &a)?.to_vec1::<f64>()?[0];
        let density = |x: f64, m: f64, s: f64| {
            (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
        };
        let want = (density(0.5, 0.0, 1.0) * density(0.0, 1.0, 2.0)).ln();
        assert!((got - want).abs() < 1e-12, "{got} {want}");
        Ok(())
    }
}
