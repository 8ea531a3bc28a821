//! The implicit Euler substep: Newton's tolerance per lane, the inertial
//! prediction, Newton's starting point, the Newton iterations with their
//! backtracking line search, and the convergence rule (lanes that do not
//! converge are reported as events).

use super::potential::Lanes;
use super::{load, store, Part, Scratch};
use crate::{Event, Scene};
use joule_compiler::abi::Real;

/// Newton's tolerance is at least this many units of the kernels' precision
/// (`T::EPSILON`) times a lane's largest |position|: below that, rounding
/// the state and the forces to f32 leaves steps of that size however close
/// the iterate is. In f64 the floor (7e-15 |x|) only raises the 1e-15
/// tolerance of finite-difference checks, which f64 cannot resolve either.
pub const RESOLUTION_ULPS: f64 = 32.0;

impl<T: Real> Part<T> {
    /// One implicit Euler substep; `trace` collects the gradient norm per Newton iteration.
    pub fn implicit(
        &mut self,
        scene: &Scene,
        h: f64,
        iterations: u32,
        tol: f64,
        step: usize,
        trace: Option<&mut Vec<Vec<f64>>>,
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        self.begin_substep(n);
        self.hold(scene);
        load(&mut w.x_t, &self.b.x[..n * s]);
        let resolution = RESOLUTION_ULPS * T::EPSILON;
        w.tol.fill(0.0);
        for r in 0..n {
            for e in 0..s {
                w.tol[e] = w.tol[e].max(resolution * w.x_t[r * s + e].abs());
            }
        }
        for t in &mut w.tol {
            *t = t.max(tol);
        }
        let accel = scene.mass.gravity_acceleration();
        for r in 0..n {
            for e in 0..s {
                let i = r * s + e;
                // The drift x_t + h v, and the inertial prediction x~.
                w.x0[i] = w.x_t[i] + h * self.b.v[i].to_f64();
                w.xt[i] = w.x0[i] + h * h * accel[r];
            }
        }
        self.start_newton(scene, &mut w, h, accel.iter().any(|a| *a != 0.0));
        self.report_inadmissible(&w.phi, &w.x_t, n, step);
        self.stops.fill(None);
        self.newton(scene, &mut w, h, iterations, trace);
        for e in 0..self.len {
            let residual = w.error[e];
            if residual.is_nan() || residual > w.tol[e] {
                self.events.push(Event::NotConverged {
                    env: self.first + e,
                    step,
                    residual,
                });
            }
        }
        self.report_stops(step, false);
        self.set_velocity(n, &w.x_t, h);
        self.scratch = w;
    }

    /// Reports the lanes whose incremental potential `phi` at Newton's
    /// starting point is not finite though their state `x_t` (`n` rows of
    /// `s` lanes) is: their start lies outside the potential's domain, so
    /// no step is admissible (a non-finite state is a divergence, reported
    /// as such).
    pub(super) fn report_inadmissible(&mut self, phi: &[f64], x_t: &[f64], n: usize, step: usize) {
        let s = self.stride();
        for (e, p) in phi.iter().enumerate().take(self.len) {
            if !p.is_finite() && (0..n).all(|r| x_t[r * s + e].is_finite()) {
                self.events.push(Event::Inadmissible {
                    env: self.first + e,
                    step,
                });
            }
        }
    }

    /// Puts each lane at Newton's starting point, with its incremental
    /// potential in `w.phi`: whichever of the inertial prediction x~ (`w.xt`,
    /// exact in free flight) and the drift x_t + h v (`w.x0`; closer for a
    /// body resting on contacts, which gravity's prediction pushes into them)
    /// has the lower potential (the drift is tried only `with_drift`), and x_t
    /// (admissible unless the step starts outside the potential's domain,
    /// which `report_inadmissible` reports) where neither is
    /// finite. The line search then never leaves the admissible set.
    fn start_newton(&mut self, scene: &Scene, w: &mut Scratch, h: f64, with_drift: bool) {
        let (n, s) = (scene.dofs(), self.stride());
        store(&mut self.b.x[..n * s], &w.xt);
        self.potential(scene, w, h, Lanes::All);
        if with_drift {
            w.phi0.copy_from_slice(&w.phi);
            store(&mut self.b.x[..n * s], &w.x0);
            self.potential(scene, w, h, Lanes::All);
        }
        let mut to_x_t = false;
        for e in 0..s {
            let inertial = if with_drift { w.phi0[e] } else { w.phi[e] };
            let drift = w.phi[e];
            let from =
                if with_drift && drift.is_finite() && (!inertial.is_finite() || drift < inertial) {
                    continue;
                } else if inertial.is_finite() {
                    w.phi[e] = inertial;
                    &w.xt
                } else {
                    to_x_t = true;
                    &w.x_t
                };
            for r in 0..n {
                self.b.x[r * s + e] = T::from_f64(from[r * s + e]);
            }
        }
        if to_x_t {
            self.potential(scene, w, h, Lanes::All);
        }
    }

    /// Newton iterations from the current x. Leaves in `w.error`, per lane,
    /// the estimate of the error left after the last step (the lane converged
    /// if it is at most its `w.tol`). `trace` collects the gradient norm per
    /// iteration (for tests of quadratic convergence).
    fn newton(
        &mut self,
        scene: &Scene,
        w: &mut Scratch,
        h: f64,
        iterations: u32,
        mut trace: Option<&mut Vec<Vec<f64>>>,
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        w.begin_newton(self.len);
        self.begin_held();
        for _ in 0..iterations {
            if !w.active.iter().any(|a| *a) {
                break;
            }
            self.count_iteration(&w.active);
            if self.held_moved() {
                // The potential the line search descends moved with them.
                self.potential(scene, w, h, Lanes::Active);
            }
            self.potential_gradient(scene, w, h, Lanes::Active);
            if let Some(t) = trace.as_deref_mut() {
                t.push(
                    (0..self.len)
                        .map(|e| (0..n).map(|r| w.g[r * s + e].abs()).fold(0.0, f64::max))
                        .collect(),
                );
            }
            w.dx.fill(0.0);
            for (r, g) in w.rhs.iter_mut().zip(&w.g) {
                *r = -g;
            }
            self.solve(scene, h, &w.rhs, &mut w.dx, &w.active, false);
            self.line_search(scene, w, h);
            for e in 0..s {
                if w.active[e] {
                    let step = (0..n).map(|r| w.dx[r * s + e].abs()).fold(0.0, f64::max);
                    w.after_step(e, step);
                }
            }
            self.update_held(scene, w);
        }
    }

    /// Backtracking (Armijo) along `w.dx` on every active lane at once, from
    /// the current x with its potential in `w.phi`; x moves to the accepted
    /// point, and `w.phi` holds its potential.
    fn line_search(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        load(&mut w.x0, &self.b.x[..n * s]);
        w.phi0.copy_from_slice(&w.phi);
        w.slope.fill(0.0);
        for r in 0..n {
            for e in 0..s {
                w.slope[e] += w.g[r * s + e] * w.dx[r * s + e];
            }
        }
        w.begin_line_search();
        for _ in 0..LINE_SEARCH_TRIALS {
            for r in 0..n {
                for e in 0..s {
                    let i = r * s + e;
                    self.b.x[i] = T::from_f64(if w.active[e] && w.alpha[e] != 0.0 {
                        w.x0[i] + w.alpha[e] * w.dx[i]
                    } else {
                        w.x0[i]
                    });
                }
            }
            if w.done.iter().all(|d| *d) {
                break;
            }
            self.potential(scene, w, h, Lanes::Searching);
            w.armijo(T::EPSILON);
        }
    }
}

/// Halvings after which a line search takes its step wherever the potential
/// is finite, decrease or not (as it starts to, near the solution, where
/// rounding hides the decrease).
pub(super) const LINE_SEARCH_HALVINGS: u32 = 12;
/// Most times it halves a step whose trial points leave the potential's
/// domain (a non-finite potential: an inverted element, a crossed barrier):
/// a step can be that many orders too long where the Hessian is nearly
/// singular. Past it the lane gives up (see [`Scratch::armijo`]).
pub(super) const LINE_SEARCH_MAX_HALVINGS: u32 = 40;
/// Trial points a line search evaluates at most: the full step, its
/// halvings, and the start itself for a lane that gave up.
pub(super) const LINE_SEARCH_TRIALS: u32 = LINE_SEARCH_MAX_HALVINGS + 3;

impl Scratch {
    /// A line search's start: every active lane tries the full step, but a
    /// lane whose step is not finite (its solve gave up) gives up at once.
    pub(super) fn begin_line_search(&mut self) {
        for (a, slope) in self.alpha.iter_mut().zip(&self.slope) {
            *a = if slope.is_finite() { 1.0 } else { 0.0 };
        }
        for (d, a) in self.done.iter_mut().zip(&self.active) {
            *d = !a;
        }
    }

    /// With the potential at every lane's trial point in `phi`, each lane
    /// still searching accepts it (Armijo; or a decrease too small for the
    /// kernels' precision `eps` to resolve in the potential, near the
    /// solution, where the Newton step is trusted; or any finite potential
    /// after [`LINE_SEARCH_HALVINGS`] halvings) or halves its step. A lane
    /// whose trial points are still not finite after
    /// [`LINE_SEARCH_MAX_HALVINGS`] halvings gives up (`alpha = 0`: its next
    /// trial point is the search's start, which it then accepts): a step
    /// never ends at a point whose potential is not finite.
    pub(super) fn armijo(&mut self, eps: f64) {
        for e in 0..self.done.len() {
            if self.done[e] {
                continue;
            }
            let (phi, phi0, slope, alpha) =
                (self.phi[e], self.phi0[e], self.slope[e], self.alpha[e]);
            let unresolvable = (alpha * slope).abs() <= 8.0 * eps * phi0.abs();
            let short = alpha <= 0.5f64.powi(LINE_SEARCH_HALVINGS as i32);
            if alpha == 0.0
                || phi <= phi0 + 1e-4 * alpha * slope
                || ((unresolvable || short) && phi.is_finite())
                || !phi0.is_finite()
            {
                self.done[e] = true;
            } else if alpha <= 0.5f64.powi(LINE_SEARCH_MAX_HALVINGS as i32) {
                self.alpha[e] = 0.0;
            } else {
                self.alpha[e] *= 0.5;
            }
        }
    }

    /// Newton's per-lane state before its first iteration: the first `len`
    /// lanes iterate, no step taken yet.
    pub(super) fn begin_newton(&mut self, len: usize) {
        for (e, a) in self.active.iter_mut().enumerate() {
            *a = e < len;
        }
        self.last_step.fill(f64::INFINITY);
        self.error.fill(f64::INFINITY);
    }

    /// Lane `e`'s convergence rule after a Newton step of max-norm `step`:
    /// the step stands for the error left after it; a full step that
    /// contracted by theta = step / previous step < 1/2 leaves at most
    /// theta / (1 - theta) times the step (the bound of linear convergence,
    /// Hairer & Wanner, Solving ODEs II, IV.8; Newton's quadratic
    /// convergence leaves less), which saves the confirming iteration. The
    /// lane stops when that is within its tolerance, or the step is not finite.
    pub(super) fn after_step(&mut self, e: usize, step: f64) {
        if self.alpha[e] == 0.0 {
            // The line search gave up: the lane stays where it was, not
            // converged (a Newton step of that length is left).
            self.error[e] = if step.is_finite() {
                step
            } else {
                f64::INFINITY
            };
            self.active[e] = false;
            return;
        }
        let theta = step / self.last_step[e];
        self.error[e] = if self.last_step[e].is_finite() && self.alpha[e] == 1.0 && theta < 0.5 {
            theta / (1.0 - theta) * step
        } else {
            step
        };
        self.last_step[e] = step;
        if self.error[e] <= self.tol[e] || !step.is_finite() {
            self.active[e] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One lane searching from a potential of 1 along a slope of -1.
    fn searching() -> Scratch {
        let mut w = Scratch::new(1, 1);
        w.active[0] = true;
        w.phi0[0] = 1.0;
        w.slope[0] = -1.0;
        w.begin_line_search();
        w
    }

    /// Runs the search with the potential `phi(alpha)` at every trial point;
    /// returns the trial points' step lengths.
    fn search(w: &mut Scratch, phi: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut trials = Vec::new();
        for _ in 0..LINE_SEARCH_TRIALS {
            if w.done[0] {
                break;
            }
            trials.push(w.alpha[0]);
            w.phi[0] = if w.alpha[0] == 0.0 {
                w.phi0[0]
            } else {
                phi(w.alpha[0])
            };
            w.armijo(f64::EPSILON);
        }
        assert!(w.done[0], "the search ends within its trials");
        trials
    }

    #[test]
    fn a_decrease_is_accepted_at_the_first_length_that_gives_it() {
        let mut w = searching();
        let trials = search(&mut w, |a| if a > 0.1 { 2.0 } else { 1.0 - a });
        assert_eq!(trials, [1.0, 0.5, 0.25, 0.125, 0.0625]);
        assert_eq!(w.alpha[0], 0.0625);
    }

    #[test]
    fn a_step_out_of_the_domain_is_halved_past_the_finite_limit() {
        // Finite only within 1e-6 of the start (a step 1e6 times too long,
        // as where the Hessian is nearly singular): 20 halvings.
        let mut w = searching();
        let trials = search(&mut w, |a| if a > 1e-6 { f64::NAN } else { 1.0 - a });
        assert_eq!(trials.len(), 21);
        assert_eq!(w.alpha[0], 0.5f64.powi(20));
        w.after_step(0, 1e6);
        assert!(w.active[0], "an accepted short step goes on iterating");
    }

    #[test]
    fn a_search_that_finds_no_decrease_takes_a_short_step() {
        // As near the solution, where rounding hides the decrease.
        let mut w = searching();
        let trials = search(&mut w, |_| 1.0 + 1e-15);
        assert_eq!(trials.len() as u32, LINE_SEARCH_HALVINGS + 1);
        assert_eq!(w.alpha[0], 0.5f64.powi(LINE_SEARCH_HALVINGS as i32));
        w.after_step(0, 1.0);
        assert!(w.active[0], "and goes on iterating");
    }

    #[test]
    fn a_search_that_finds_no_finite_point_gives_up_at_its_start() {
        for phi in [|_| f64::INFINITY, |_| f64::NAN] {
            let mut w = searching();
            let trials = search(&mut w, phi);
            // The halvings, then the start itself.
            assert_eq!(trials.last(), Some(&0.0));
            assert_eq!(trials.len() as u32, LINE_SEARCH_MAX_HALVINGS + 2);
            assert_eq!(w.phi[0], w.phi0[0]);
            // The lane stops, not converged.
            w.tol[0] = 1e-9;
            w.after_step(0, 3.0);
            assert!(!w.active[0]);
            assert_eq!(w.error[0], 3.0);
        }
    }

    #[test]
    fn a_step_that_is_not_finite_is_not_tried_and_is_not_convergence() {
        let mut w = searching();
        w.slope[0] = f64::NAN;
        w.begin_line_search();
        assert_eq!(search(&mut w, |_| panic!("no trial off the start")), [0.0]);
        w.tol[0] = 1e-9;
        w.after_step(0, f64::NAN);
        assert!(!w.active[0]);
        assert!(
            w.error[0].is_nan() || w.error[0] > w.tol[0],
            "reported as not converged"
        );
    }
}
