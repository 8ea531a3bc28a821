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
//!
//! Central differences cannot see a kink at the point itself: at `|x|`
//! every `D(h)` is 0, perfectly converged, while no derivative exists. The
//! one-sided differences `(f(x + h) - f(x)) / h` and `(f(x) - f(x - h)) / h`
//! do: for a smooth `f` they differ by `|f''| h`, which shrinks with the
//! step, but across a kink by the jump in slope, whatever the step. A sweep
//! whose one-sided differences keep their values at three consecutive
//! steps around the chosen one and differ by more than the agreement asked
//! of a gradient is a kink ([`Sweep::kink`]).

/// One central difference of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// The step `h`.
    pub step: f64,
    /// `(f(x + h) - f(x - h)) / 2h`; NaN where either value was not finite.
    pub value: f64,
    /// `(f(x + h) - f(x)) / h`, the one-sided difference from above.
    pub above: f64,
    /// `(f(x) - f(x - h)) / h`, the one-sided difference from below.
    pub below: f64,
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
    /// How far the chosen difference is from its neighbour in the pair that
    /// agrees best (NaN without one): the finite differences settle no
    /// closer than this.
    pub spread: f64,
    /// Estimate of the chosen difference's rounding error, `e / h` with `e`
    /// the rounding of one evaluation: `eps max|f|`, or the largest second
    /// difference among the smallest steps where rounding shows (the
    /// one-sided differences part as the step shrinks), where that is
    /// larger.
    pub rounding: f64,
    /// A kink at the point, where the one-sided differences keep their
    /// values, apart, at three consecutive steps around the chosen one (see
    /// [`sweep`]'s `tolerance`); `None` where `f` is smooth as far as the
    /// sweep can tell.
    pub kink: Option<Kink>,
}

/// The one-sided differences of a sweep that reveal a kink at the point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kink {
    /// The one-sided difference from above at the chosen step.
    pub above: f64,
    /// The one-sided difference from below at the chosen step.
    pub below: f64,
    /// The largest and the smallest step of the consecutive steps (the
    /// chosen one among them) at which the one-sided differences keep the
    /// chosen step's values, within a quarter of their gap.
    pub steps: (f64, f64),
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

/// Central and one-sided differences of `f` (the objective at `x + d` for
/// an offset `d`) at each of `steps`, and the step chosen among them; `eps`
/// is the relative rounding of one evaluation of `f` (the kernels' machine
/// epsilon); `tolerance` is the relative jump in slope from which the
/// one-sided differences reveal a kink.
pub fn sweep<E>(
    mut f: impl FnMut(f64) -> Result<f64, E>,
    steps: &[f64],
    eps: f64,
    tolerance: f64,
) -> Result<Sweep, E> {
    let mut differences = Vec::with_capacity(steps.len());
    let center = f(0.0)?;
    let mut magnitude = center.abs();
    for &h in steps {
        let (up, down) = (f(h)?, f(-h)?);
        let (value, above, below) = if up.is_finite() && down.is_finite() && center.is_finite() {
            magnitude = magnitude.max(up.abs()).max(down.abs());
            (
                (up - down) / (2.0 * h),
                (up - center) / h,
                (center - down) / h,
            )
        } else {
            (f64::NAN, f64::NAN, f64::NAN)
        };
        differences.push(Difference {
            step: h,
            value,
            above,
            below,
        });
    }
    // The rounding of one evaluation: `eps |f|`, or what the smallest step
    // shows if more (an objective computed from quantities much larger than
    // itself, an iterative solve). The one-sided gap `|above - below|` is
    // `|f''| h` from curvature, shrinking with the step, the jump in slope
    // at a kink, constant, and about `4 e / h` from a rounding `e`, growing
    // as the step shrinks: where it grows from each step to the next smaller
    // one down to the smallest, the second differences
    // `f(x + h) - 2 f(x) + f(x - h)` there measure the rounding (the
    // largest of them). Growth between larger steps only is the objective's
    // nonlinearity (a step across a bounce), not rounding.
    let gap = |d: &Difference| (d.above - d.below).abs();
    let measured = differences
        .windows(2)
        .rev()
        .take_while(|w| gap(&w[1]) > 3.0 * gap(&w[0]))
        .map(|w| gap(&w[1]) * w[1].step)
        .fold(0.0, f64::max);
    let noise = (eps * magnitude).max(if measured.is_finite() { measured } else { 0.0 });
    let mut sweep = choose(differences, noise);
    sweep.kink = kink(&sweep, noise, tolerance);
    Ok(sweep)
}

/// The kink the one-sided differences reveal, if any: at the chosen step
/// and its two neighbours in the sweep (three consecutive steps or more),
/// they differ by more than `tolerance` of the slope and by more than ten
/// times the rounding `noise`, and each keeps its value within a quarter of
/// that gap (a smooth function's gap shrinks in proportion to the step; a
/// rough one, such as an f32 rollout through stiff contact, changes its
/// one-sided slopes from step to step).
fn kink(sweep: &Sweep, noise: f64, tolerance: f64) -> Option<Kink> {
    let k = sweep.best?;
    let d = &sweep.differences;
    let gap = |x: &Difference| (x.above - x.below).abs();
    let chosen = d[k];
    let alike = |x: &Difference| {
        let slope = x.above.abs().max(x.below.abs());
        let g = gap(x);
        let near = |a: f64, b: f64| (a - b).abs() <= 0.25 * gap(&chosen);
        g.is_finite()
            && g > tolerance * slope
            && g > 10.0 * 4.0 * noise / x.step
            && near(x.above, chosen.above)
            && near(x.below, chosen.below)
    };
    // The run of alike steps around the chosen one.
    let first = (0..=k).rev().take_while(|&i| alike(&d[i])).last()?;
    let last = (k..d.len()).take_while(|&i| alike(&d[i])).last()?;
    (last - first >= 2).then_some(Kink {
        above: chosen.above,
        below: chosen.below,
        steps: (d[first].step, d[last].step),
    })
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
    let spread = match best {
        Some(k) if k > 0 => (differences[k - 1].value - differences[k].value).abs(),
        _ => f64::NAN,
    };
    Sweep {
        differences,
        best,
        spread,
        truncation,
        rounding,
        kink: None,
    }
}

/// The relative error of `a` against `b`: relative to the larger of the two,
/// with an absolute floor so that two values that are both zero up to
/// round-off do not read as 100% apart.
pub fn relative_error(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}
