//! How good a gradient is: the gradient of a rollout's objective smoothed
//! over Gaussian noise on every control of every step, estimated two ways
//! from the same samples (`joule grad --smooth`).
//!
//! The smoothed objective `J_s(U) = E_W J(U + s W)` (U the control
//! schedule, W standard normal) is what a stochastic policy or a sampling
//! optimiser climbs. Its gradient has two estimators:
//! - **first order**: the mean of the adjoint's gradients `grad J(U + s W_i)`
//!   (what gradient-based learning uses: the exact derivative, or a
//!   surrogate's);
//! - **zeroth order**: the mean of `(J(U + s W_i) - J(U - s W_i)) / 2s * W_i`
//!   (antithetic differences of the simulation itself, unbiased for the
//!   simulation's smoothed gradient, whatever the adjoint computes).
//!
//! Their agreement (cosine, norm ratio) measures a first-order gradient's
//! bias; the spread of each over disjoint groups of samples measures its
//! variance (as over seeds), and the cosine of the zeroth-order estimates of
//! the two halves of the samples is the reference's own noise floor. This is
//! the comparison of first- and zeroth-order gradient estimators in
//! differentiable-simulation learning (Suh et al., 2022).

use joule_runtime::{NameError, Objective, Scene, Schedule};

/// Groups of samples over which the estimators' spread is measured.
pub const GROUPS: usize = 8;

/// Both estimates of the smoothed gradient and how they compare.
#[derive(Debug, Clone)]
pub struct Smoothed {
    /// Antithetic pairs of samples.
    pub pairs: usize,
    /// The mean objective over all samples.
    pub value: f64,
    /// The first-order estimate, `[step * controls + control]`.
    pub first: Vec<f64>,
    /// The zeroth-order estimate, same layout.
    pub zeroth: Vec<f64>,
    /// `cos(first, zeroth)`.
    pub cosine: f64,
    /// `|first| / |zeroth|`.
    pub norm_ratio: f64,
    /// Standard error of the first-order estimate over [`GROUPS`] groups of
    /// samples, relative to its norm.
    pub first_spread: f64,
    /// The same for the zeroth-order estimate.
    pub zeroth_spread: f64,
    /// `cos` of the zeroth-order estimates of the first and second halves
    /// of the samples: how far the reference itself is resolved.
    pub zeroth_halves: f64,
    /// The cosine an unbiased, noiseless first-order estimate would reach
    /// against this noisy reference: with independent noise of relative
    /// power `r` on the whole sample (`2 r` on each half), the halves agree
    /// to `1 / (1 + 2 r)` and the whole sample to the truth at
    /// `1 / sqrt(1 + r)`. NaN when the halves do not agree at all.
    pub ceiling: f64,
    /// Events of the rollouts (divergence, non-convergence).
    pub events: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `cos(a, b)`; 0 when either is zero.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let n = (dot(a, a) * dot(b, b)).sqrt();
    if n > 0.0 {
        dot(a, b) / n
    } else {
        0.0
    }
}

/// [`Smoothed::ceiling`] from the halves' cosine.
fn ceiling(halves: f64) -> f64 {
    if halves > 0.0 {
        let r = (1.0 / halves - 1.0) / 2.0;
        1.0 / (1.0 + r).sqrt()
    } else {
        f64::NAN
    }
}

/// The mean of `rows` (each of one length).
fn mean(rows: &[Vec<f64>]) -> Vec<f64> {
    let mut m = vec![0.0; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (a, x) in m.iter_mut().zip(r) {
            *a += x / rows.len() as f64;
        }
    }
    m
}

/// Standard error of the mean of `groups` (estimates of one vector),
/// relative to the norm of their mean: `sqrt(sum_k |g_k - g|^2 / (K (K - 1))) / |g|`.
fn spread(groups: &[Vec<f64>]) -> f64 {
    let m = mean(groups);
    let k = groups.len() as f64;
    let ss: f64 = groups
        .iter()
        .map(|g| g.iter().zip(&m).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
        .sum();
    (ss / (k * (k - 1.0))).sqrt() / dot(&m, &m).sqrt()
}

/// Both estimators from per-sample data: for each antithetic pair `i`, the
/// noise `noise[i]`, the objectives `plus[i]`, `minus[i]` at `U + s W_i` and
/// `U - s W_i`, and the adjoint's gradients there, `grad_plus[i]`,
/// `grad_minus[i]` (all vectors `[step * controls + control]`). Needs at
/// least `2 * GROUPS` pairs.
pub fn estimate(
    sigma: f64,
    noise: &[Vec<f64>],
    plus: &[f64],
    minus: &[f64],
    grad_plus: &[Vec<f64>],
    grad_minus: &[Vec<f64>],
) -> Smoothed {
    let pairs = noise.len();
    // Per pair: the first-order sample (the mean of its two gradients) and
    // the zeroth-order one.
    let first: Vec<Vec<f64>> = grad_plus
        .iter()
        .zip(grad_minus)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect())
        .collect();
    let zeroth: Vec<Vec<f64>> = noise
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let d = (plus[i] - minus[i]) / (2.0 * sigma);
            w.iter().map(|x| d * x).collect()
        })
        .collect();
    let groups = |samples: &[Vec<f64>], k: usize| -> Vec<Vec<f64>> {
        (0..k)
            .map(|g| mean(&samples[g * pairs / k..(g + 1) * pairs / k]))
            .collect()
    };
    let (f, z) = (mean(&first), mean(&zeroth));
    let halves = groups(&zeroth, 2);
    Smoothed {
        pairs,
        value: (plus.iter().sum::<f64>() + minus.iter().sum::<f64>()) / (2 * pairs) as f64,
        cosine: cosine(&f, &z),
        norm_ratio: (dot(&f, &f) / dot(&z, &z)).sqrt(),
        first_spread: spread(&groups(&first, GROUPS)),
        zeroth_spread: spread(&groups(&zeroth, GROUPS)),
        zeroth_halves: cosine(&halves[0], &halves[1]),
        ceiling: ceiling(cosine(&halves[0], &halves[1])),
        first: f,
        zeroth: z,
        events: 0,
    }
}

/// The schedule of `steps` steps that holds each control of `scene` at 0
/// clamped into its range: what `joule grad --smooth` perturbs by default.
pub fn zero_schedule(scene: &Scene, steps: usize) -> Vec<Vec<f64>> {
    let at_zero: Vec<f64> = (scene.model().controls.iter())
        .map(|c| c.bounds.map_or(0.0, |(lo, hi)| 0.0_f64.clamp(lo, hi)))
        .collect();
    vec![at_zero; steps]
}

/// Runs the `2 * noise.len()` rollouts of `base.len()` steps (one batch,
/// every environment from the scene's initial state after `setup`) with the
/// controls `base + sigma * noise[i]` and `base - sigma * noise[i]`
/// (`base[step][control]`, `noise[i]` laid out `[step * controls +
/// control]`), and estimates the smoothed gradient of `objective` with
/// respect to the control schedule both ways.
pub fn smoothed_gradient(
    scene: &Scene,
    objective: &Objective,
    base: &[Vec<f64>],
    sigma: f64,
    noise: &[Vec<f64>],
    threads: usize,
    setup: &dyn Fn(&mut joule_runtime::Sim) -> Result<(), NameError>,
) -> Result<Smoothed, NameError> {
    let controls = &scene.model().controls;
    let (nc, steps) = (controls.len(), base.len());
    let pairs = noise.len();
    if nc == 0 {
        return Err(NameError(
            "the scene declares no controls to smooth over".into(),
        ));
    }
    if pairs < 2 * GROUPS
        || noise.iter().any(|w| w.len() != steps * nc)
        || base.iter().any(|b| b.len() != nc)
    {
        return Err(NameError(format!(
            "the noise must be [at least {} pairs][{steps} steps x {nc} controls], the base [{steps} steps][{nc} controls]",
            2 * GROUPS
        )));
    }
    // Environments 0..pairs take +, pairs..2 pairs take -.
    let schedule: Schedule = (0..steps)
        .map(|t| {
            (0..nc)
                .map(|c| {
                    (0..2 * pairs)
                        .map(|e| {
                            let (i, sign) = if e < pairs {
                                (e, 1.0)
                            } else {
                                (e - pairs, -1.0)
                            };
                            base[t][c] + sign * sigma * noise[i][t * nc + c]
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut sim = scene.batch_threads(2 * pairs, threads);
    setup(&mut sim)?;
    let g = sim.gradient_schedule(objective, &schedule)?;
    let grad_of = |e: usize| -> Vec<f64> {
        (0..steps)
            .flat_map(|t| (0..nc).map(move |c| (t, c)))
            .map(|(t, c)| g.controls[t][c][e])
            .collect()
    };
    let grad_plus: Vec<Vec<f64>> = (0..pairs).map(grad_of).collect();
    let grad_minus: Vec<Vec<f64>> = (pairs..2 * pairs).map(grad_of).collect();
    let mut s = estimate(
        sigma,
        noise,
        &g.value[..pairs],
        &g.value[pairs..],
        &grad_plus,
        &grad_minus,
    );
    s.events = g.events.len();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian-like noise from a fixed sequence (no RNG needed: the
    /// estimators' algebra is what is tested).
    fn noise(pairs: usize, dim: usize) -> Vec<Vec<f64>> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            // Sum of 12 uniforms minus 6: mean 0, variance 1.
            (0..12)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64
                })
                .sum::<f64>()
                - 6.0
        };
        (0..pairs)
            .map(|_| (0..dim).map(|_| next()).collect())
            .collect()
    }

    /// A quadratic `J(u) = sum a_k u_k + b_k u_k^2` at 0: every sample's
    /// gradient `a + 2 b u` averages to `a` over the antithetic pair, and the
    /// antithetic difference is exactly `a . W`: both estimators agree, the
    /// first order without spread.
    #[test]
    fn a_quadratic_objective_is_estimated_alike_both_ways() {
        let dim = 6;
        let a: Vec<f64> = (0..dim).map(|k| 1.0 + k as f64).collect();
        let b: Vec<f64> = (0..dim).map(|k| 0.5 - k as f64 * 0.2).collect();
        let sigma = 0.3;
        let w = noise(4096, dim);
        let j = |u: &[f64]| -> f64 {
            u.iter()
                .enumerate()
                .map(|(k, x)| a[k] * x + b[k] * x * x)
                .sum()
        };
        let grad = |u: &[f64]| -> Vec<f64> {
            u.iter()
                .enumerate()
                .map(|(k, x)| a[k] + 2.0 * b[k] * x)
                .collect()
        };
        let shifted = |sign: f64| -> Vec<Vec<f64>> {
            w.iter()
                .map(|wi| wi.iter().map(|x| sign * sigma * x).collect())
                .collect()
        };
        let (up, um) = (shifted(1.0), shifted(-1.0));
        let s = estimate(
            sigma,
            &w,
            &up.iter().map(|u| j(u)).collect::<Vec<_>>(),
            &um.iter().map(|u| j(u)).collect::<Vec<_>>(),
            &up.iter().map(|u| grad(u)).collect::<Vec<_>>(),
            &um.iter().map(|u| grad(u)).collect::<Vec<_>>(),
        );
        for (f, ak) in s.first.iter().zip(&a) {
            assert!((f - ak).abs() < 1e-12, "{f} vs {ak}");
        }
        assert!(s.first_spread < 1e-12, "{}", s.first_spread);
        // The zeroth order estimates a with noise ~ |a| sqrt(dim / pairs).
        assert!(s.cosine > 0.98, "{}", s.cosine);
        assert!((s.norm_ratio - 1.0).abs() < 0.1, "{}", s.norm_ratio);
        assert!(
            s.zeroth_spread > 0.005 && s.zeroth_spread < 0.1,
            "{}",
            s.zeroth_spread
        );
        assert!(s.zeroth_halves > 0.95, "{}", s.zeroth_halves);
        assert!(
            (s.ceiling - s.cosine).abs() < 0.01,
            "{} vs {}",
            s.ceiling,
            s.cosine
        );
    }

    /// With few samples in many dimensions the reference is noisy: an exact
    /// first-order gradient agrees with it only to the ceiling its halves
    /// predict, not to 1.
    #[test]
    fn the_ceiling_predicts_what_an_exact_gradient_reaches_against_a_noisy_reference() {
        let dim = 200;
        let sigma = 0.1;
        let w = noise(256, dim);
        let a: Vec<f64> = (0..dim)
            .map(|k| ((k * 7 % 13) as f64 - 6.0) / 6.0)
            .collect();
        let plus: Vec<f64> = w.iter().map(|wi| sigma * dot(&a, wi)).collect();
        let minus: Vec<f64> = plus.iter().map(|p| -p).collect();
        let exact = vec![a.clone(); w.len()];
        let s = estimate(sigma, &w, &plus, &minus, &exact, &exact);
        assert!(s.cosine < 0.9, "a noisy reference: {}", s.cosine);
        assert!(
            (s.ceiling - s.cosine).abs() < 0.1,
            "{} vs {}",
            s.ceiling,
            s.cosine
        );
    }

    /// A first-order estimator that is wrong (a gradient of the wrong sign
    /// in one coordinate, as a surrogate may give) is caught: the cosine
    /// falls while the reference's halves still agree.
    #[test]
    fn a_biased_first_order_gradient_is_caught() {
        let dim = 4;
        let sigma = 0.1;
        let w = noise(2048, dim);
        let a = [3.0, -1.0, 2.0, 0.5];
        let plus: Vec<f64> = w.iter().map(|wi| sigma * dot(&a, wi)).collect();
        let minus: Vec<f64> = plus.iter().map(|p| -p).collect();
        let wrong = vec![vec![-3.0, -1.0, 2.0, 0.5]; w.len()];
        let s = estimate(sigma, &w, &plus, &minus, &wrong, &wrong);
        let expected = cosine(&a, &wrong[0]);
        assert!(
            (s.cosine - expected).abs() < 0.05,
            "{} vs {expected}",
            s.cosine
        );
        assert!(s.zeroth_halves > 0.95, "{}", s.zeroth_halves);
    }
}
