//! Time steps of one partition of environments, and their adjoints.
//!
//! `symplectic_euler`: v += h M^-1 (f - dE/dx - dD/dv); x += h v.
//! `implicit_euler`: x' = argmin 1/(2h^2) |x - x~|_M^2 + E(x) + h D((x - x_t)/h),
//! x~ = x_t + h v_t + h^2 M^-1 f, by Newton's method with a sparse Cholesky
//! solve planned at compile time (`sparse`, systems small and sparse enough)
//! or matrix-free Jacobi-preconditioned CG on Hessian-vector kernels (larger
//! ones), and a backtracking line search
//! run on all lanes with per-lane acceptance. Every loop below runs over all
//! environments of the partition; lanes that are done are masked, never waited on.

use crate::sparse::Workspace;
use crate::{Event, Scene, SolveStop};
use joule_compiler::abi::Buffers;
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::Integrator;

/// Most multiply-adds per environment of a sparse Cholesky factorisation for
/// which a scene's systems are solved directly; costlier ones use preconditioned
/// CG. Measured (docs/performance.md): implicit cloths of 1.9M and 2.7M
/// multiply-adds ran 1.8-4.4x faster direct, one of 6.8M 2.1x slower.
pub const DIRECT_FLOP_LIMIT: usize = 4_000_000;
/// Relative residual at which CG stops inside Newton (inexact Newton).
pub const NEWTON_CG_TOLERANCE: f64 = 1e-5;
/// Most CG iterations per solve (at least 50, at most twice the DOFs).
pub const CG_ITERATIONS: usize = 1000;
/// Relative residual at which CG stops in adjoint solves.
pub const ADJOINT_CG_TOLERANCE: f64 = 1e-11;

/// One partition: a contiguous range of environments with its own buffers.
pub struct Part {
    /// First environment (global index).
    pub first: usize,
    /// Environments in this partition.
    pub len: usize,
    /// Kernel buffers (batch = `len`).
    pub b: Buffers,
    /// Events (divergence, non-convergence) found by the last step.
    pub events: Vec<Event>,
    /// Environments already reported as diverged.
    pub diverged: Vec<bool>,
    /// Storage of the sparse Cholesky solves (scenes solved directly).
    direct: Option<Workspace>,
    /// Per lane, how the last CG solve of the current substep stopped short.
    stops: Vec<Option<(SolveStop, f64)>>,
}

/// Saved state at the start of a substep.
#[derive(Clone)]
pub struct Snapshot {
    pub x: Vec<f64>,
    pub v: Vec<f64>,
}

/// Adjoint accumulators of one partition (rows x stride like the buffers).
pub struct Adjoint {
    pub x: Vec<f64>,
    pub v: Vec<f64>,
    pub params: Vec<f64>,
    pub controls: Vec<f64>,
}

impl Part {
    /// A partition of `len` environments starting at `first`, at the model's initial state.
    pub fn new(scene: &Scene, first: usize, len: usize) -> Self {
        let mut b = scene.compiled.buffers(len);
        scene.initial_state(&mut b);
        let b_stride = b.stride;
        Part {
            first,
            len,
            b,
            events: vec![],
            diverged: vec![false; len],
            direct: scene.direct_solver().map(|d| d.workspace(b_stride)),
            stops: vec![None; b_stride],
        }
    }

    fn stride(&self) -> usize {
        self.b.stride
    }

    /// The free rows of x and v.
    pub fn snapshot(&self, n: usize) -> Snapshot {
        let s = self.stride();
        Snapshot {
            x: self.b.x[..n * s].to_vec(),
            v: self.b.v[..n * s].to_vec(),
        }
    }

    /// Restores free rows of x and v.
    pub fn restore(&mut self, snap: &Snapshot) {
        let k = snap.x.len();
        self.b.x[..k].copy_from_slice(&snap.x);
        self.b.v[..k].copy_from_slice(&snap.v);
    }

    fn run(&mut self, scene: &Scene, kind: KernelKind) {
        scene
            .compiled
            .run(kind, &mut self.b, 0, self.len)
            .expect("buffers are built from the scene's layout");
    }

    /// One step (all substeps) at the current controls. `step` numbers reports.
    pub fn step(&mut self, scene: &Scene, step: usize) {
        self.step_with(scene, step, None);
    }

    /// [`Part::step`], pushing the state before every substep onto `states`.
    pub fn step_recorded(&mut self, scene: &Scene, step: usize, states: &mut Vec<Snapshot>) {
        self.step_with(scene, step, Some(states));
    }

    fn step_with(&mut self, scene: &Scene, step: usize, mut states: Option<&mut Vec<Snapshot>>) {
        self.events.clear();
        let n = scene.dofs();
        for _ in 0..scene.compiled.model.settings.substeps.max(1) {
            if let Some(s) = states.as_deref_mut() {
                s.push(self.snapshot(n));
            }
            self.substep(scene, step);
        }
        self.check_finite(scene, step);
    }

    /// One substep of the scene's integrator.
    pub fn substep(&mut self, scene: &Scene, step: usize) {
        let h = scene.substep();
        match scene.compiled.model.settings.integrator {
            Integrator::SymplecticEuler => self.explicit(scene, h),
            Integrator::ImplicitEuler {
                iterations,
                tolerance,
            } => self.implicit(scene, h, iterations, tolerance, step, None),
        }
    }

    /// Reports environments whose state became non-finite (once each).
    fn check_finite(&mut self, scene: &Scene, step: usize) {
        let (n, s) = (scene.dofs(), self.stride());
        for e in 0..self.len {
            if self.diverged[e] {
                continue;
            }
            let bad = (0..n)
                .find(|r| !(self.b.x[r * s + e].is_finite() && self.b.v[r * s + e].is_finite()));
            if let Some(dof) = bad {
                self.diverged[e] = true;
                self.events.push(Event::Diverged {
                    env: self.first + e,
                    step,
                    dof,
                    name: scene.dof_name(dof),
                });
            }
        }
    }

    /// Copies the free rows of x and v into prev_x and prev_v.
    fn begin_substep(&mut self, n: usize) {
        let k = n * self.stride();
        self.b.prev_x[..k].copy_from_slice(&self.b.x[..k]);
        self.b.prev_v[..k].copy_from_slice(&self.b.v[..k]);
    }

    /// `grad` = dE/dx + dD/dv at the current x, v.
    fn forces(&mut self, scene: &Scene) {
        self.b.grad.fill(0.0);
        self.run(scene, KernelKind::Gradient);
        self.run(scene, KernelKind::DissipationGradient);
    }

    fn explicit(&mut self, scene: &Scene, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.begin_substep(n);
        self.forces(scene);
        let m = &scene.mass;
        let mut net = vec![0.0; n * s];
        for r in 0..n {
            for e in 0..s {
                net[r * s + e] = m.force[r] - self.b.grad[r * s + e];
            }
        }
        let mut accel = vec![0.0; n * s];
        m.solve(&net, &mut accel, s);
        for i in 0..n * s {
            self.b.v[i] += h * accel[i];
            self.b.x[i] += h * self.b.v[i];
        }
    }

    /// Incremental potential per environment at the current x (v set from x).
    fn potential(&mut self, scene: &Scene, xt: &[f64], x_t: &[f64], h: f64) -> Vec<f64> {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, x_t, h);
        self.b.energy.fill(0.0);
        self.run(scene, KernelKind::Energy);
        let mut phi: Vec<f64> = self.b.energy.to_vec();
        self.b.energy.fill(0.0);
        self.run(scene, KernelKind::Dissipation);
        for e in 0..s {
            phi[e] += self.b.energy[e]; // the kernel holds h D((x - x_t)/h)
        }
        let d: Vec<f64> = (0..n * s).map(|i| self.b.x[i] - xt[i]).collect();
        let mut md = vec![0.0; n * s];
        scene.mass.mul(&d, &mut md, s);
        for i in 0..n * s {
            phi[i % s] += d[i] * md[i] / (2.0 * h * h);
        }
        phi
    }

    fn set_velocity(&mut self, n: usize, x_t: &[f64], h: f64) {
        let s = self.stride();
        for i in 0..n * s {
            self.b.v[i] = (self.b.x[i] - x_t[i]) / h;
        }
    }

    /// Gradient of the incremental potential into `g` (free rows).
    fn potential_gradient(
        &mut self,
        scene: &Scene,
        xt: &[f64],
        x_t: &[f64],
        h: f64,
        g: &mut [f64],
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, x_t, h);
        self.forces(scene);
        let d: Vec<f64> = (0..n * s).map(|i| self.b.x[i] - xt[i]).collect();
        scene.mass.mul(&d, g, s);
        for i in 0..n * s {
            g[i] = g[i] / (h * h) + self.b.grad[i];
        }
    }

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
        self.begin_substep(n);
        let x_t = self.b.x[..n * s].to_vec();
        let v_t = self.b.v[..n * s].to_vec();
        let force: Vec<f64> = (0..n * s).map(|i| scene.mass.force[i / s]).collect();
        let mut accel = vec![0.0; n * s];
        scene.mass.solve(&force, &mut accel, s);
        let xt: Vec<f64> = (0..n * s)
            .map(|i| x_t[i] + h * v_t[i] + h * h * accel[i])
            .collect();
        // Newton starts from the inertial prediction x~ where the potential is
        // finite there, else from x_t (always admissible: barriers finite); the
        // line search then never leaves the admissible set.
        self.b.x[..n * s].copy_from_slice(&xt);
        let phi = self.potential(scene, &xt, &x_t, h);
        for e in 0..s {
            if !phi[e].is_finite() {
                for r in 0..n {
                    self.b.x[r * s + e] = x_t[r * s + e];
                }
            }
        }
        self.stops.fill(None);
        let residuals = self.newton(scene, &xt, &x_t, h, iterations, tol, trace);
        for (e, r) in residuals.into_iter().enumerate().take(self.len) {
            if let Some(residual) = r {
                self.events.push(Event::NotConverged {
                    env: self.first + e,
                    step,
                    residual,
                });
            }
        }
        self.report_stops(step, false);
        self.set_velocity(n, &x_t, h);
    }

    /// Newton iterations from the current x. Returns, per environment, the final
    /// step norm of those that did not converge. `trace` collects the gradient
    /// norm per iteration (for tests of quadratic convergence).
    #[allow(clippy::too_many_arguments)]
    fn newton(
        &mut self,
        scene: &Scene,
        xt: &[f64],
        x_t: &[f64],
        h: f64,
        iterations: u32,
        tol: f64,
        mut trace: Option<&mut Vec<Vec<f64>>>,
    ) -> Vec<Option<f64>> {
        let (n, s) = (scene.dofs(), self.stride());
        let mut active: Vec<bool> = (0..s).map(|e| e < self.len).collect();
        let mut last_step = vec![f64::INFINITY; s];
        let mut g = vec![0.0; n * s];
        let mut dx = vec![0.0; n * s];
        for _ in 0..iterations {
            if !active.iter().any(|a| *a) {
                break;
            }
            self.potential_gradient(scene, xt, x_t, h, &mut g);
            if let Some(t) = trace.as_deref_mut() {
                t.push(
                    (0..self.len)
                        .map(|e| (0..n).map(|r| g[r * s + e].abs()).fold(0.0, f64::max))
                        .collect(),
                );
            }
            for v in dx.iter_mut() {
                *v = 0.0;
            }
            let rhs: Vec<f64> = g.iter().map(|v| -v).collect();
            self.solve(scene, h, &rhs, &mut dx, &active, false);
            self.line_search(scene, xt, x_t, h, &g, &dx, &active);
            for e in 0..s {
                if active[e] {
                    let step = (0..n).map(|r| dx[r * s + e].abs()).fold(0.0, f64::max);
                    last_step[e] = step;
                    if step <= tol || !step.is_finite() {
                        active[e] = false;
                    }
                }
            }
        }
        (0..self.len)
            .map(|e| (last_step[e] > tol).then_some(last_step[e]))
            .collect()
    }

    /// Backtracking (Armijo) on every active lane at once; x moves to the
    /// accepted point (dx is scaled to the step actually taken).
    #[allow(clippy::too_many_arguments)]
    fn line_search(
        &mut self,
        scene: &Scene,
        xt: &[f64],
        x_t: &[f64],
        h: f64,
        g: &[f64],
        dx: &[f64],
        active: &[bool],
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        let x0 = self.b.x[..n * s].to_vec();
        let phi0 = self.potential(scene, xt, x_t, h);
        let slope: Vec<f64> = (0..s)
            .map(|e| (0..n).map(|r| g[r * s + e] * dx[r * s + e]).sum())
            .collect();
        let mut alpha = vec![1.0; s];
        let mut done: Vec<bool> = active.iter().map(|a| !a).collect();
        for _ in 0..12 {
            for r in 0..n {
                for e in 0..s {
                    let i = r * s + e;
                    self.b.x[i] = if active[e] {
                        x0[i] + alpha[e] * dx[i]
                    } else {
                        x0[i]
                    };
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
            let phi = self.potential(scene, xt, x_t, h);
            for e in 0..s {
                if !done[e] {
                    // Armijo; or a decrease too small for f64 to resolve in the
                    // potential (near the solution), where the Newton step is trusted.
                    let unresolvable =
                        (alpha[e] * slope[e]).abs() <= 8.0 * f64::EPSILON * phi0[e].abs();
                    if phi[e] <= phi0[e] + 1e-4 * alpha[e] * slope[e]
                        || (unresolvable && phi[e].is_finite())
                        || !phi0[e].is_finite()
                    {
                        done[e] = true;
                    } else {
                        alpha[e] *= 0.5;
                    }
                }
            }
        }
    }

    /// Solves (M/h^2 + H_E + H_hD) dx = rhs for the active lanes (H_hD: the Hessian
    /// of h D((x - x_t)/h) in positions, from the implicit kernels). With
    /// `surrogate` (adjoint solves) the Hessians are the surrogates' and CG
    /// converges tightly; Newton steps use inexact CG (relative 1e-5).
    pub fn solve(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        if scene.direct_solver().is_some() {
            self.solve_direct(scene, h, rhs, dx, active, surrogate);
        } else {
            self.solve_cg(scene, h, rhs, dx, active, surrogate);
        }
    }

    /// Reports the lanes whose CG solves stopped short in this substep.
    fn report_stops(&mut self, step: usize, adjoint: bool) {
        for e in 0..self.len {
            if let Some((reason, residual)) = self.stops[e].take() {
                self.events.push(Event::SolveStopped {
                    env: self.first + e,
                    step,
                    reason,
                    residual,
                    adjoint,
                });
            }
        }
    }

    /// The Hessian-block and Hessian-vector kernels (energies, dissipations).
    fn hessian_kinds(surrogate: bool) -> [KernelKind; 4] {
        if surrogate {
            [
                KernelKind::SurrogateHessian,
                KernelKind::SurrogateDissipationHessian,
                KernelKind::SurrogateGradHvp,
                KernelKind::SurrogateDissipationGradHvp,
            ]
        } else {
            [
                KernelKind::Hessian,
                KernelKind::DissipationHessian,
                KernelKind::GradHvp,
                KernelKind::DissipationGradHvp,
            ]
        }
    }

    /// Sparse Cholesky solve, a block of up to [`crate::sparse::LANE_BLOCK`]
    /// lanes at once: the Hessian-block kernels' results are assembled straight
    /// into the factor's storage; a lane that is not positive definite is
    /// shifted and factored again (see [`crate::sparse::Direct::factor`]).
    fn solve_direct(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        dx: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        let direct = scene.direct_solver().expect("a direct scene");
        let [he, hd, _, _] = Self::hessian_kinds(surrogate);
        let mut w = self.direct.take().expect("direct scenes have a workspace");
        let stride = self.stride();
        // A block of lanes at a time; the kernels run on the block's lanes only
        // (padding lanes past `len` are inactive).
        for first in (0..stride).step_by(w.lanes()) {
            let end = (first + w.lanes()).min(stride);
            let act = &active[first..end];
            if !act.iter().any(|a| *a) {
                continue;
            }
            direct.begin(&mut w, end - first);
            loop {
                direct.assemble_mass(&mut w, 1.0 / (h * h));
                for kind in [he, hd] {
                    scene
                        .compiled
                        .run(kind, &mut self.b, first, end.min(self.len))
                        .expect("buffers are built from the scene's layout");
                    direct.assemble_blocks(&mut w, kind, &self.b.blocks, stride, first);
                }
                if !direct.factor(&mut w, act) {
                    break;
                }
            }
            direct.solve(&mut w, rhs, dx, act, stride, first);
        }
        self.direct = Some(w);
    }

    /// `out` = (M/h^2 + H_E + H_hD) p, through the Hessian-vector kernels.
    fn apply(&mut self, scene: &Scene, h: f64, p: &[f64], out: &mut [f64], kinds: [KernelKind; 2]) {
        let (n, s) = (scene.dofs(), self.stride());
        self.b.seed[..n * s].copy_from_slice(p);
        self.b.seed[n * s..].fill(0.0);
        self.b.hv.fill(0.0);
        self.run(scene, kinds[0]);
        out.copy_from_slice(&self.b.hv[..n * s]);
        self.b.hv.fill(0.0);
        self.run(scene, kinds[1]);
        let mut mp = vec![0.0; n * s];
        scene.mass.mul(p, &mut mp, s);
        for i in 0..n * s {
            out[i] += mp[i] / (h * h) + self.b.hv[i];
        }
    }

    fn solve_cg(
        &mut self,
        scene: &Scene,
        h: f64,
        rhs: &[f64],
        x: &mut [f64],
        active: &[bool],
        surrogate: bool,
    ) {
        // Inexact Newton: a loose inner solve converges to the same point.
        let rtol = if surrogate {
            ADJOINT_CG_TOLERANCE
        } else {
            NEWTON_CG_TOLERANCE
        };
        let (n, s) = (scene.dofs(), self.stride());
        let [he, hd, hve, hvd] = Self::hessian_kinds(surrogate);
        // Jacobi preconditioner from the block diagonals.
        let mut diag = vec![0.0; n * s];
        for (kind, scale) in [(he, 1.0), (hd, 1.0)] {
            self.run(scene, kind);
            let ir = scene.kernel_ir(kind);
            for lp in &ir.loops {
                let w = lp.dof_width;
                for i in 0..lp.count {
                    for a in 0..w {
                        let r = lp.dofs[i * w + a] as usize;
                        if r < n {
                            let base = (lp.block_base + i * w * w + a * w + a) * s;
                            for e in 0..s {
                                diag[r * s + e] += scale * self.b.blocks[base + e];
                            }
                        }
                    }
                }
            }
        }
        for r in 0..n {
            let k = scene.mass.mass[r] / (h * h);
            for e in 0..s {
                let d = &mut diag[r * s + e];
                *d = 1.0 / (*d + k).abs().max(1e-300);
            }
        }
        let dot = |a: &[f64], b: &[f64], e: usize| {
            (0..n).map(|r| a[r * s + e] * b[r * s + e]).sum::<f64>()
        };
        x.fill(0.0);
        let mut r = rhs.to_vec();
        let mut z: Vec<f64> = r.iter().zip(&diag).map(|(a, d)| a * d).collect();
        let mut p = z.clone();
        let mut ap = vec![0.0; n * s];
        let mut rz: Vec<f64> = (0..s).map(|e| dot(&r, &z, e)).collect();
        let bnorm: Vec<f64> = (0..s).map(|e| dot(rhs, rhs, e).sqrt()).collect();
        let mut live: Vec<bool> = active.to_vec();
        for _ in 0..(2 * n).clamp(50, CG_ITERATIONS) {
            if !live.iter().any(|l| *l) {
                break;
            }
            self.apply(scene, h, &p, &mut ap, [hve, hvd]);
            for e in 0..s {
                if !live[e] {
                    continue;
                }
                let pap = dot(&p, &ap, e);
                let alpha = if pap > 0.0 { rz[e] / pap } else { 0.0 };
                for k in 0..n {
                    let i = k * s + e;
                    x[i] += alpha * p[i];
                    r[i] -= alpha * ap[i];
                    z[i] = r[i] * diag[i];
                }
                let rz_new = dot(&r, &z, e);
                let rnorm = dot(&r, &r, e).sqrt();
                if rnorm <= rtol * bnorm[e] || pap <= 0.0 || !rnorm.is_finite() {
                    if pap <= 0.0 && rnorm > rtol * bnorm[e] {
                        self.stops[e] = Some((SolveStop::NegativeCurvature, rnorm / bnorm[e]));
                    }
                    live[e] = false;
                    continue;
                }
                let beta = rz_new / rz[e];
                rz[e] = rz_new;
                for k in 0..n {
                    let i = k * s + e;
                    p[i] = z[i] + beta * p[i];
                }
            }
            // Frozen lanes contribute no direction.
            for e in 0..s {
                if !live[e] {
                    for k in 0..n {
                        p[k * s + e] = 0.0;
                    }
                }
            }
        }
        for e in 0..s {
            if live[e] {
                let residual = dot(&r, &r, e).sqrt() / bnorm[e];
                self.stops[e] = Some((SolveStop::IterationCap, residual));
            }
        }
    }

    /// Adjoint of one substep from `start` (the state before it). On entry
    /// `adj.x`, `adj.v` hold dL/dx', dL/dv' of the state after the substep; on
    /// exit dL/dx, dL/dv of `start`, with params and controls accumulated.
    /// CG solves that stop short are reported as events of `step`.
    pub fn substep_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        adj: &mut Adjoint,
        step: usize,
    ) {
        let h = scene.substep();
        let (n, s) = (scene.dofs(), self.stride());
        self.restore(start);
        match scene.compiled.model.settings.integrator {
            Integrator::SymplecticEuler => {
                // w = M^-1 (v' bar + h x' bar), the adjoint of the velocity update.
                self.begin_substep(n);
                let vbar: Vec<f64> = (0..n * s).map(|i| adj.v[i] + h * adj.x[i]).collect();
                let mut w = vec![0.0; n * s];
                scene.mass.solve(&vbar, &mut w, s);
                self.b.seed[..n * s].copy_from_slice(&w);
                self.b.seed[n * s..].fill(0.0);
                self.vjp(scene, KernelKind::Adjoint);
                for i in 0..n * s {
                    adj.x[i] -= h * (self.b.d_x[i] + self.b.d_prev_x[i]);
                    adj.v[i] = vbar[i] - h * (self.b.d_v[i] + self.b.d_prev_v[i]);
                }
                self.accumulate(adj, -h);
            }
            Integrator::ImplicitEuler {
                iterations,
                tolerance,
            } => {
                // Recompute the solve, then the implicit function theorem at its solution.
                let x_t = start.x.clone();
                let v_t = start.v.clone();
                // The recomputed forward solve reported its events in the forward pass.
                let reported = self.events.len();
                self.implicit(scene, h, iterations, tolerance, step, None);
                self.events.truncate(reported);
                let mut a = vec![0.0; n * s];
                for i in 0..n * s {
                    a[i] = adj.x[i] + adj.v[i] / h;
                }
                let mut lambda = vec![0.0; n * s];
                let all: Vec<bool> = (0..s).map(|e| e < self.len).collect();
                self.stops.fill(None);
                self.solve(scene, h, &a, &mut lambda, &all, true);
                self.report_stops(step, true);
                // State after the solve: x', v' = (x' - x_t)/h, prev = start.
                self.b.prev_x[..n * s].copy_from_slice(&x_t);
                self.b.prev_v[..n * s].copy_from_slice(&v_t);
                self.b.seed[..n * s].copy_from_slice(&lambda);
                self.b.seed[n * s..].fill(0.0);
                self.vjp(scene, KernelKind::Adjoint);
                let mut ml = vec![0.0; n * s];
                scene.mass.mul(&lambda, &mut ml, s);
                for i in 0..n * s {
                    let vbar_next = adj.v[i];
                    adj.x[i] = ml[i] / (h * h) - self.b.d_prev_x[i] - vbar_next / h;
                    adj.v[i] = ml[i] / h - self.b.d_prev_v[i];
                }
                self.accumulate(adj, -1.0);
            }
        }
    }

    /// Runs a VJP kernel into cleared `d_*` buffers.
    fn vjp(&mut self, scene: &Scene, kind: KernelKind) {
        for buf in [
            &mut self.b.d_x,
            &mut self.b.d_v,
            &mut self.b.d_prev_x,
            &mut self.b.d_prev_v,
            &mut self.b.d_params,
            &mut self.b.d_controls,
        ] {
            buf.fill(0.0);
        }
        self.run(scene, kind);
    }

    fn accumulate(&self, adj: &mut Adjoint, scale: f64) {
        for (a, d) in adj.params.iter_mut().zip(self.b.d_params.iter()) {
            *a += scale * d;
        }
        for (a, d) in adj.controls.iter_mut().zip(self.b.d_controls.iter()) {
            *a += scale * d;
        }
    }

    /// Adds the gradient of `out_seed . outputs` at the current state.
    pub fn outputs_adjoint(&mut self, scene: &Scene, adj: &mut Adjoint) {
        let (n, s) = (scene.dofs(), self.stride());
        self.vjp(scene, KernelKind::OutputsVjp);
        for i in 0..n * s {
            adj.x[i] += self.b.d_x[i];
            adj.v[i] += self.b.d_v[i];
        }
        self.accumulate(adj, 1.0);
    }

    /// Evaluates the potential energy into `energy` at the current state.
    pub fn potential_energy(&mut self, scene: &Scene) {
        self.b.energy.fill(0.0);
        self.run(scene, KernelKind::Energy);
    }

    /// Evaluates the outputs at the current state.
    pub fn outputs(&mut self, scene: &Scene) {
        self.run(scene, KernelKind::Outputs);
    }
}
