//! The held values' fixed-point iteration, for scenes whose energies read
//! `held(..)` (a value at the step's solution, held fixed in its potential:
//! friction bounded by the step's own normal force).
//!
//! Newton minimises the step's potential with the held values `x_h` fixed;
//! a lane it converged is done only if they are its solution, `|x - x_h|`
//! within its tolerance. Else they move, and Newton goes on from there. The
//! map from held values to Newton's solution, `T(x_h)`, contracts where
//! their effect is weak, but through a coupled body (a leg whose foot's
//! friction tilts the torso onto its other feet) it may contract slowly or
//! overshoot. So the update is Anderson's: the next held values are the
//! images `T` combined with the weights that best cancel the last
//! [`HISTORY`] residuals `f = T(x_h) - x_h` (a secant method: a few
//! dominant modes converge in a few updates). Where the gap grew, the
//! history is dropped and the update is a relaxed plain one, `x_h += rate
//! f`, the rate halving each time (cycles of contacts engaging and letting
//! go). Newton's solve before an update need only be as accurate as the
//! gap it closes ([`INNER`]; a tighter inner solve measured more Newton
//! iterations in all, on the ants under random controls).

use super::{set_seed, Part, Scratch};
use crate::{Scene, SolveStop};
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;

/// Residuals of past updates Anderson's update combines.
const HISTORY: usize = 4;
/// The held values move while Newton is still iterating once its error is
/// below this fraction of their last gap (measured, ants under random
/// controls, Newton iterations per step: 0.3 -> 20.4, 1 -> 17.9).
const INNER: f64 = 1.0;

/// Most iterations of the adjoint through held values.
const ADJOINT_ITERATIONS: usize = 100;
/// Relative change of the adjoint (max-norm per lane) at which its
/// iteration through the held values stops.
const ADJOINT_TOLERANCE: f64 = 1e-12;

/// Whether a lane's adjoint iterate that moved by `change` (max-norm) is
/// done at its `size`: converged, or past hope (not finite).
pub(super) fn held_adjoint_settled(change: f64, size: f64) -> bool {
    change <= ADJOINT_TOLERANCE * size || !change.is_finite()
}

/// The iteration's state per lane, and Anderson's history.
pub(super) struct Held {
    /// Per lane: the gap `|f|` at the last update, the relaxed update's rate.
    gap: Vec<f64>,
    rate: Vec<f64>,
    /// Anderson's mixing of the updates (and, in the adjoint, of its
    /// transposed iteration's).
    mixing: Anderson,
    /// Whether some lane's held values moved since its potential was taken.
    moved: bool,
}

impl Held {
    /// The iteration's vectors for `rows` rows of `s` lanes.
    pub fn new(rows: usize, s: usize) -> Self {
        Held {
            gap: vec![0.0; s],
            rate: vec![0.0; s],
            mixing: Anderson::new(rows, s),
            moved: false,
        }
    }

    /// Before a step's Newton iterations (the held values are the step's start).
    fn begin(&mut self) {
        self.gap.fill(f64::INFINITY);
        self.rate.fill(1.0);
        self.mixing.clear();
        self.moved = false;
    }
}

/// Anderson's mixing for a fixed-point iteration `u <- T(u)` per lane on
/// rows of `s` lanes (row `r` of lane `e` at `r * s + e`): the next iterate
/// combines the images `T(u_j)` of the last [`HISTORY`] iterates with the
/// weights that best cancel their residuals `T(u_j) - u_j`.
pub(super) struct Anderson {
    /// Per lane: past iterates in the history, the next slot.
    count: Vec<usize>,
    next: Vec<usize>,
    /// Per slot, per row: a past iterate's residual and image.
    f: Vec<Vec<f64>>,
    image: Vec<Vec<f64>>,
    /// Lanes per row.
    s: usize,
}

impl Anderson {
    /// The history's vectors for `rows` rows of `s` lanes.
    pub fn new(rows: usize, s: usize) -> Self {
        Anderson {
            count: vec![0; s],
            next: vec![0; s],
            f: vec![vec![0.0; rows * s]; HISTORY],
            image: vec![vec![0.0; rows * s]; HISTORY],
            s,
        }
    }

    /// Forgets every lane's history.
    pub fn clear(&mut self) {
        self.count.fill(0);
        self.next.fill(0);
    }

    /// Lane `e`'s next iterate from its iterate `u` and image `t` (per row,
    /// `n` rows): Anderson's combination where the lane has a history, else
    /// `u + rate (t - u)`; each row's value goes to `set`, and the pair joins
    /// the history.
    pub fn update(
        &mut self,
        e: usize,
        n: usize,
        u: impl Fn(usize) -> f64,
        t: impl Fn(usize) -> f64,
        rate: f64,
        mut set: impl FnMut(usize, f64),
    ) {
        let s = self.s;
        let f = |r: usize| t(r) - u(r);
        let weights = self.weights(e, n, &f);
        let slot = self.next[e];
        for r in 0..n {
            let i = r * s + e;
            let (ui, ti) = (u(r), t(r));
            let next = match &weights {
                Some((k, gamma)) => {
                    let mut v = ti;
                    for (j, g) in gamma[..*k].iter().enumerate() {
                        v -= g * (ti - self.image[j][i]);
                    }
                    v
                }
                None => ui + rate * (ti - ui),
            };
            self.f[slot][i] = ti - ui;
            self.image[slot][i] = ti;
            set(r, next);
        }
        self.next[e] = (slot + 1) % HISTORY;
        self.count[e] = (self.count[e] + 1).min(HISTORY);
    }

    /// Forgets lane `e`'s history.
    pub fn forget(&mut self, e: usize) {
        self.count[e] = 0;
    }

    /// Anderson's weights for lane `e` with the current residual `f` (per
    /// row): `gamma` minimising `|f - sum_j gamma_j (f - f_j)|` over the `k`
    /// past residuals `f_j` in the history's slots `0..k`; None without a
    /// history (or where its least-squares system is singular).
    fn weights(
        &self,
        e: usize,
        n: usize,
        f: &impl Fn(usize) -> f64,
    ) -> Option<(usize, [f64; HISTORY])> {
        let (k, s) = (self.count[e], self.s);
        if k == 0 {
            return None;
        }
        // Normal equations (D^T D) gamma = D^T f, D's columns f - f_j.
        let mut a = [[0.0; HISTORY]; HISTORY];
        let mut b = [0.0; HISTORY];
        for r in 0..n {
            let i = r * s + e;
            let fr = f(r);
            let mut d = [0.0; HISTORY];
            for j in 0..k {
                d[j] = fr - self.f[j][i];
            }
            for j in 0..k {
                b[j] += d[j] * fr;
                for l in 0..=j {
                    a[j][l] += d[j] * d[l];
                }
            }
        }
        for j in 0..k {
            for l in 0..j {
                a[l][j] = a[j][l];
            }
        }
        // A tiny ridge keeps nearly parallel residuals from blowing the weights up.
        let trace: f64 = (0..k).map(|j| a[j][j]).sum();
        for (j, row) in a.iter_mut().enumerate().take(k) {
            row[j] += 1e-12 * trace;
        }
        let gamma = solve_small(a, b, k)?;
        gamma[..k]
            .iter()
            .all(|g| g.is_finite())
            .then_some((k, gamma))
    }
}

impl<T: Real> Part<T> {
    /// Holds the current positions for `held(..)` (scenes that read it).
    pub(super) fn hold(&mut self, scene: &Scene) {
        if scene.holds {
            let k = scene.dofs() * self.stride();
            self.b.held_x[..k].copy_from_slice(&self.b.x[..k]);
        }
    }

    /// Before a step's Newton iterations: the held values' iteration starts
    /// afresh (scenes that hold).
    pub(super) fn begin_held(&mut self) {
        if let Some(held) = &mut self.held {
            held.begin();
        }
    }

    /// Whether some lane's held values moved since the last call: its
    /// potential, taken with the old ones, is stale.
    pub(super) fn held_moved(&mut self) -> bool {
        self.held
            .as_mut()
            .is_some_and(|h| std::mem::take(&mut h.moved))
    }

    /// The frame of the adjoint's iteration through the held values
    /// (maximal: `Part::held_adjoint`; joint coordinates:
    /// `Part::reduced_held_adjoint`): from the seed in `w.dx` and the lanes
    /// in `w.active`, each iteration runs the VJP kernel at the seed and
    /// hands it to `iterate`, which writes each active lane's next seed
    /// into `w.dx` (mixed by Anderson's update) and retires the lanes that
    /// settled ([`held_adjoint_settled`]); lanes still active after
    /// [`ADJOINT_ITERATIONS`] are reported.
    pub(super) fn held_adjoint_iterations(
        &mut self,
        scene: &Scene,
        w: &mut Scratch,
        mut iterate: impl FnMut(&mut Self, &mut Anderson, &mut Scratch),
    ) {
        let mut held = self
            .held
            .take()
            .expect("scenes that hold have the iteration's vectors");
        held.mixing.clear();
        for _ in 0..ADJOINT_ITERATIONS {
            if !w.active.iter().any(|a| *a) {
                break;
            }
            set_seed(&mut self.b, &w.dx);
            self.vjp(scene, KernelKind::Adjoint);
            iterate(self, &mut held.mixing, w);
        }
        for e in 0..self.len {
            if w.active[e] {
                self.stops[e] = Some((SolveStop::HeldIterationCap, f64::NAN));
            }
        }
        self.held = Some(held);
    }

    /// After a Newton iteration: moves the held values of every lane that
    /// settled for them but whose solution is not yet them (see the module
    /// docs), and sets that lane iterating again.
    pub(super) fn update_held(&mut self, scene: &Scene, w: &mut Scratch) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        let (n, s) = (scene.dofs(), self.stride());
        for e in 0..self.len {
            let settled = if w.active[e] {
                w.error[e] <= INNER * held.gap[e]
            } else {
                w.error[e] <= w.tol[e]
            };
            if !settled {
                continue;
            }
            let (x, hx) = (&self.b.x, &self.b.held_x);
            let gap = (0..n)
                .map(|r| (x[r * s + e].to_f64() - hx[r * s + e].to_f64()).abs())
                .fold(0.0, f64::max);
            if gap <= w.tol[e] {
                continue;
            }
            if gap >= held.gap[e] {
                held.rate[e] *= 0.5;
                held.mixing.forget(e);
            }
            let mut next = std::mem::take(&mut w.d);
            held.mixing.update(
                e,
                n,
                |r| hx[r * s + e].to_f64(),
                |r| x[r * s + e].to_f64(),
                held.rate[e],
                |r, v| next[r * s + e] = v,
            );
            for r in 0..n {
                self.b.held_x[r * s + e] = T::from_f64(next[r * s + e]);
            }
            w.d = next;
            held.gap[e] = gap;
            held.moved = true;
            w.active[e] = true;
            w.last_step[e] = f64::INFINITY;
            w.error[e] = gap;
        }
        self.held = Some(held);
    }
}

/// Solves the `k x k` system `a x = b` by Gaussian elimination with
/// partial pivoting; None where a pivot vanishes.
fn solve_small(
    mut a: [[f64; HISTORY]; HISTORY],
    mut b: [f64; HISTORY],
    k: usize,
) -> Option<[f64; HISTORY]> {
    for c in 0..k {
        let p = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c] == 0.0 || !a[p][c].is_finite() {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        for i in c + 1..k {
            let m = a[i][c] / a[c][c];
            for j in c..k {
                a[i][j] -= m * a[c][j];
            }
            b[i] -= m * b[c];
        }
    }
    let mut x = [0.0; HISTORY];
    for i in (0..k).rev() {
        let sum: f64 = (i + 1..k).map(|j| a[i][j] * x[j]).sum();
        x[i] = (b[i] - sum) / a[i][i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_system_is_solved_with_pivoting() {
        let a = [
            [0.0, 2.0, 1.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
            [3.0, 0.0, 1.0, 0.0],
            [0.0; 4],
        ];
        let x = solve_small(a, [6.0, 3.0, 5.0, 0.0], 3).expect("regular");
        for (got, want) in x[..3].iter().zip([1.0, 2.0, 2.0]) {
            assert!((got - want).abs() < 1e-14, "{x:?}");
        }
        assert!(solve_small([[0.0; 4]; 4], [1.0; 4], 2).is_none());
    }

    #[test]
    fn anderson_takes_a_linear_map_to_its_fixed_point_in_as_many_updates_as_it_has_modes() {
        // T(u) = M u + c with two modes (0.9 and -0.8: slow, and
        // overshooting): the plain iteration needs ~200 updates for 1e-10;
        // Anderson's with its history, three.
        let (n, s) = (2, 1);
        let t = |u: [f64; 2]| [0.9 * u[0] + 1.0, -0.8 * u[1] + 0.5];
        let fixed: [f64; 2] = [10.0, 0.5 / 1.8];
        let mut mixing = Anderson::new(n, s);
        let mut u: [f64; 2] = [0.0, 0.0];
        let mut updates = 0;
        while (u[0] - fixed[0]).abs().max((u[1] - fixed[1]).abs()) > 1e-10 {
            let image = t(u);
            let mut next = [0.0; 2];
            mixing.update(0, n, |r| u[r], |r| image[r], 1.0, |r, v| next[r] = v);
            u = next;
            updates += 1;
            assert!(
                updates <= 4,
                "not at the fixed point after {updates} updates: {u:?}"
            );
        }
    }
}
