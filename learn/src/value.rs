//! Value networks: TD(lambda) targets and minibatch regression, shared by
//! SHAC (the value closes each differentiable window) and PPO (the baseline
//! of its advantages).

use crate::adam::{grads_of, Adam};
use crate::net::Mlp;
use candle_core::{Device, Result, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A value network, its optimiser and (SHAC) its slowly following target.
pub(crate) struct Critic {
    /// The value network.
    pub net: Mlp,
    /// SHAC's target network, which the windows' values come from.
    pub target: Option<Mlp>,
    /// The value network's optimiser.
    pub adam: Adam,
}

/// Soft update `target <- alpha target + (1 - alpha) net`.
pub(crate) fn soft_update(target: &Mlp, net: &Mlp, alpha: f64) -> Result<()> {
    for (t, n) in target.vars().iter().zip(net.vars()) {
        t.set(&((t.as_tensor() * alpha)? + (n.as_tensor() * (1.0 - alpha))?)?)?;
    }
    Ok(())
}

/// One environment's entries of a `[step][env]` table.
pub(crate) fn column<T: Copy>(table: &[Vec<T>], env: usize) -> Vec<T> {
    table.iter().map(|row| row[env]).collect()
}

/// Lambda-returns of one environment's window, backwards:
/// `G_t = r_t + gamma ((1 - lambda) V_{t+1} + lambda G_{t+1})`, with
/// `G_t = r_t` where the episode ended at `t` and `G_H = V_H` closing the
/// window. `values[t]` is the value of the state after step `t`.
pub fn lambda_returns(
    rewards: &[f64],
    values: &[f64],
    terminal: &[bool],
    gamma: f64,
    lambda: f64,
) -> Vec<f64> {
    let h = rewards.len();
    let mut g = vec![0.0; h];
    let mut next = values[h - 1];
    for t in (0..h).rev() {
        g[t] = if terminal[t] {
            rewards[t]
        } else {
            let blend = if t + 1 == h {
                values[t]
            } else {
                (1.0 - lambda) * values[t] + lambda * next
            };
            rewards[t] + gamma * blend
        };
        next = g[t];
    }
    g
}

/// Generalised advantage estimation for one environment's rollout:
/// `delta_t = r_t + gamma V(s_{t+1}) (1 - term_t) - V(s_t)`,
/// `A_t = delta_t + gamma lambda (1 - term_t) A_{t+1}`. `values` has one more
/// entry than `rewards` (the state after the last step). Returns the
/// advantages and the value targets `A + V`.
pub fn gae(
    rewards: &[f64],
    values: &[f64],
    terminal: &[bool],
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let h = rewards.len();
    let mut adv = vec![0.0; h];
    let mut next = 0.0;
    for t in (0..h).rev() {
        let cont = if terminal[t] { 0.0 } else { 1.0 };
        let delta = rewards[t] + gamma * values[t + 1] * cont - values[t];
        next = delta + gamma * lambda * cont * next;
        adv[t] = next;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// Regresses `value` onto `targets` for inputs `[sample][input]`: `epochs`
/// passes of `minibatches` shuffled minibatches of mean squared error.
/// Returns the last minibatch's loss.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    value: &Mlp,
    adam: &mut Adam,
    inputs: &[Vec<f64>],
    targets: &[f64],
    epochs: usize,
    minibatches: usize,
    clip: Option<f64>,
    rng: &mut ChaCha8Rng,
) -> Result<f64> {
    let vars = value.vars();
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let mut last = 0.0;
    let width = inputs.first().map_or(0, Vec::len);
    for _ in 0..epochs {
        order.shuffle(rng);
        for chunk in order.chunks(inputs.len().div_ceil(minibatches.max(1)).max(1)) {
            let x: Vec<f64> = chunk
                .iter()
                .flat_map(|&i| inputs[i].iter().copied())
                .collect();
            let y: Vec<f64> = chunk.iter().map(|&i| targets[i]).collect();
            let x = Tensor::from_vec(x, (chunk.len(), width), &Device::Cpu)?;
            let y = Tensor::from_vec(y, (chunk.len(), 1), &Device::Cpu)?;
            let loss = (value.forward(&x)? - y)?.sqr()?.mean_all()?;
            last = loss.to_scalar::<f64>()?;
            let g = grads_of(&loss.backward()?, &vars)?;
            adam.step(&vars, &g, clip)?;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_matches_numbers_computed_by_hand() {
        // gamma 0.9, lambda 0.8, three steps, no termination:
        // delta = [1 + 0.9*2 - 1, 0 + 0.9*3 - 2, 2 + 0.9*4 - 3] = [1.8, 0.7, 2.6]
        // A2 = 2.6; A1 = 0.7 + 0.72*2.6 = 2.572; A0 = 1.8 + 0.72*2.572 = 3.65184
        let (adv, ret) = gae(
            &[1.0, 0.0, 2.0],
            &[1.0, 2.0, 3.0, 4.0],
            &[false; 3],
            0.9,
            0.8,
        );
        for (a, b) in adv.iter().zip([3.65184, 2.572, 2.6]) {
            assert!((a - b).abs() < 1e-12, "{adv:?}");
        }
        for (r, b) in ret.iter().zip([4.65184, 4.572, 5.6]) {
            assert!((r - b).abs() < 1e-12, "{ret:?}");
        }
        // Termination at step 1 cuts the bootstrap and the recursion:
        // delta1 = 0 - 2 = -2, A1 = -2; A0 = 1.8 + 0.72*(-2) = 0.36.
        let (adv, _) = gae(
            &[1.0, 0.0, 2.0],
            &[1.0, 2.0, 3.0, 4.0],
            &[false, true, false],
            0.9,
            0.8,
        );
        for (a, b) in adv.iter().zip([0.36, -2.0, 2.6]) {
            assert!((a - b).abs() < 1e-12, "{adv:?}");
        }
    }

    #[test]
    fn lambda_returns_match_numbers_computed_by_hand() {
        // gamma 0.5, lambda 0.5, values after each step [2, 4, 8]:
        // G2 = 1 + 0.5*8 = 5; G1 = 1 + 0.5*(0.5*4 + 0.5*5) = 3.25;
        // G0 = 1 + 0.5*(0.5*2 + 0.5*3.25) = 2.3125.
        let g = lambda_returns(&[1.0; 3], &[2.0, 4.0, 8.0], &[false; 3], 0.5, 0.5);
        assert_eq!(g, vec![2.3125, 3.25, 5.0]);
        let g = lambda_returns(&[1.0; 3], &[2.0, 4.0, 8.0], &[false, true, false], 0.5, 0.5);
        assert_eq!(g, vec![1.0 + 0.5 * (0.5 * 2.0 + 0.5), 1.0, 5.0]);
    }
}
