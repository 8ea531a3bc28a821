//! Finite-difference checks of gradients (`joule grad --check`): central
//! differences over a sweep of steps, the step whose difference agrees best
//! with its neighbour's (Richardson-style), and that difference's truncation
//! and rounding estimates.
//!
//! A central difference `D(h) = (f(x + h) - f(x - h)) / 2h` errs by
//! truncation, `c h^2`, which shrinks with the step, and by rounding,
//! about `eps |f| / h`, which grows as it shrinks; stiff and contact scenes
//! have a large `c`, so no single step suits every scene. Between two steps
//! `h1 > h2` in the truncation regime `D(h1) - D(h2)` is `c (h1^2 - h2^2)`,
//! so `|D(h1) - D(h2)| / ((h1 / h2)^2 - 1)` estimates the error of `D(h2)`.

/// One central difference of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// The step `h`.
    pub step: f64,
    /// `(f(x + h) - f(x - h)) / 2h`; NaN where either value was not finite.
    pub value: f64,
}

/// A sweep of central differences and the step chosen from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Every step tried, in the order given (largest first for a sweep).
    pub differences: Vec<Difference>,
    /// The chosen difference (an index into `differences`): the smaller step
    /// of the neighbouring pair that agrees best, its rounding estimate
    /// added; `None` when no difference is finite.
    pub best: Option<usize>,
    /// Richardson estimate of the chosen difference's truncation error (NaN
    /// without a finite neighbour, as with one step).
    pub truncation: f64,
    /// Estimate of the chosen difference's rounding error, `eps max|f| / h`.
    pub rounding: f64,
}

impl Sweep {
    /// The chosen difference, if any.
    pub fn chosen(&self) -> Option<Difference> {
        self.best.map(|k| self.differences[k])
    }
}

/// Steps `scale * 10^-k` for `k` in `first..=last`, largest first, with
/// `scale = max(|x|, 1e-3)`: relative to the parameter, not below a
/// thousandth of its unit.
pub fn log_steps(x: f64, first: i32, last: i32) -> Vec<f64> {
    let scale = x.abs().max(1e-3);
    (first..=last).map(|k| scale * 10f64.powi(-k)).collect()
}

/// Central differences of `f` (the objective at `x + d` for an offset `d`)
/// at each of `steps`, and the step chosen among them; `eps` is the relative
/// rounding of one evaluation of `f` (the kernels' machine epsilon).
pub fn sweep<E>(
    mut f: impl FnMut(f64) -> Result<f64, E>,
    steps: &[f64],
    eps: f64,
) -> Result<Sweep, E> {
    let mut differences = Vec::with_capacity(steps.len());
    let mut magnitude = 0.0f64;
    for &h in steps {
        let (up, down) = (f(h)?, f(-h)?);
        let value = if up.is_finite() && down.is_finite() {
            magnitude = magnitude.max(up.abs()).max(down.abs());
            (up - down) / (2.0 * h)
        } else {
            f64::NAN
        };
        differences.push(Difference { step: h, value });
    }
    Ok(choose(differences, eps * magnitude))
}

/// Chooses among `differences` (largest step first); `noise` is the
/// absolute rounding of one evaluation of the objective.
fn choose(differences: Vec<Difference>, noise: f64) -> Sweep {
    let rounding = |d: &Difference| noise / d.step;
    // (index, truncation estimate, score) of the best neighbouring pair.
    let mut best: Option<(usize, f64, f64)> = None;
    for k in 1..differences.len() {
        let (a, b) = (differences[k - 1], differences[k]);
        if !(a.value.is_finite() && b.value.is_finite()) {
            continue;
        }
        let spread = (a.value - b.value).abs();
        let score = spread + rounding(&b);
        if best.is_none_or(|(_, _, s)| score < s) {
            let ratio = a.step / b.step;
            best = Some((k, spread / (ratio * ratio - 1.0), score));
        }
    }
    let (best, truncation) = match best {
        Some((k, t, _)) => (Some(k), t),
        None => (
            differences.iter().position(|d| d.value.is_finite()),
            f64::NAN,
        ),
    };
    let rounding = best.map_or(f64::NAN, |k| rounding(&differences[k]));
    Sweep {
        differences,
        best,
        truncation,
        rounding,
    }
}

/// The relative error of `a` against `b`: relative to the larger of the two,
/// with an absolute floor so that two values that are both zero up to
/// round-off do not read as 100% apart.
pub fn relative_error(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}
