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
use joule_compiler::abi::{Buffers, Real};
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::Integrator;

/// Most multiply-adds per environment of a sparse Cholesky factorisation for
/// which a scene's systems are solved directly; costlier ones use preconditioned
/// CG. Measured (docs/performance.md): implicit cloths of 1.9M and 2.7M
/// multiply-adds ran 1.8-4.4x faster direct, one of 6.8M 2.1x slower.
pub const DIRECT_FLOP_LIMIT: usize = 4_000_000;
/// Newton's tolerance is at least this many units of the kernels' precision
/// (`T::EPSILON`) times a lane's largest |position|: below that, rounding
/// the state and the forces to f32 leaves steps of that size however close
/// the iterate is. In f64 the floor (7e-15 |x|) only raises the 1e-15
/// tolerance of finite-difference checks, which f64 cannot resolve either.
pub const RESOLUTION_ULPS: f64 = 32.0;
/// Relative residual at which CG stops inside Newton (inexact Newton).
pub const NEWTON_CG_TOLERANCE: f64 = 1e-5;
/// Most CG iterations per solve (at least 50, at most twice the DOFs).
pub const CG_ITERATIONS: usize = 1000;
/// Relative residual at which CG stops in adjoint solves.
pub const ADJOINT_CG_TOLERANCE: f64 = 1e-11;

/// Widens kernel values into f64 (`dst` and `src` equally long).
pub(crate) fn load<T: Real>(dst: &mut [f64], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, x) in dst.iter_mut().zip(src) {
        *d = x.to_f64();
    }
}

/// Kernel values widened into a new f64 vector.
pub(crate) fn widen<T: Real>(src: &[T]) -> Vec<f64> {
    src.iter().map(|x| x.to_f64()).collect()
}

/// Rounds f64 values into kernel values (`dst` and `src` equally long).
pub(crate) fn store<T: Real>(dst: &mut [T], src: &[f64]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, x) in dst.iter_mut().zip(src) {
        *d = T::from_f64(*x);
    }
}

/// Sets the seed (a tangent or adjoint vector) to `v` on the free rows and 0
/// on the pinned ones.
fn set_seed<T: Real>(b: &mut Buffers<T>, v: &[f64]) {
    store(&mut b.seed[..v.len()], v);
    b.seed[v.len()..].fill(T::default());
}

/// One partition: a contiguous range of environments with its own buffers.
///
/// The kernels run in the scene's precision `T` (`f64x2` or `f32x4` lanes)
/// on buffers of `T`, which hold the state; the integrator's own vectors,
/// reductions, linear solves and adjoint accumulators are f64 (mixed
/// precision: an f32 scene keeps f32's memory traffic and SIMD width where the
/// time goes, and loses no digits in the solves).
pub struct Part<T: Real> {
    /// First environment (global index).
    pub first: usize,
    /// Environments in this partition.
    pub len: usize,
    /// Kernel buffers (batch = `len`).
    pub b: Buffers<T>,
    /// Events (divergence, non-convergence) found by the last step.
    pub events: Vec<Event>,
    /// Environments already reported as diverged.
    pub diverged: Vec<bool>,
    /// Storage of the sparse Cholesky solves (scenes solved directly).
    direct: Option<Workspace>,
    /// Per lane, how the last CG solve of the current substep stopped short.
    stops: Vec<Option<(SolveStop, f64)>>,
    /// Vectors of the implicit step and the adjoint, reused across steps.
    scratch: Scratch,
    /// Vectors of the CG solves, reused across solves.
    cg: Cg,
}

/// Vectors the implicit step (Newton, line search, potential) and the
/// substep adjoint reuse, sized once per partition: stepping allocates nothing.
/// `[row * stride + lane]` over the free rows, or one entry per lane.
struct Scratch {
    /// State at the start of the substep.
    x_t: Vec<f64>,
    /// The inertial prediction x~.
    xt: Vec<f64>,
    /// Gradient of the incremental potential.
    g: Vec<f64>,
    /// Newton step (the adjoint's multiplier).
    dx: Vec<f64>,
    /// Right-hand side of a solve.
    rhs: Vec<f64>,
    /// x - x~, and M (x - x~).
    d: Vec<f64>,
    md: Vec<f64>,
    /// The line search's starting point.
    x0: Vec<f64>,
    /// Per lane: Newton's tolerance (see [`RESOLUTION_ULPS`]), potential,
    /// potential at the line search's start, slope, step length, last
    /// Newton step norm, estimate of the error left after it.
    tol: Vec<f64>,
    phi: Vec<f64>,
    phi0: Vec<f64>,
    slope: Vec<f64>,
    alpha: Vec<f64>,
    last_step: Vec<f64>,
    error: Vec<f64>,
    /// Per lane: Newton still iterating; line search done.
    active: Vec<bool>,
    done: Vec<bool>,
}

/// Vectors of the Jacobi-preconditioned CG solves.
struct Cg {
    diag: Vec<f64>,
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    mp: Vec<f64>,
    rz: Vec<f64>,
    bnorm: Vec<f64>,
    live: Vec<bool>,
}

impl Scratch {
    fn new(rows: usize, s: usize) -> Self {
        let v = || vec![0.0; rows * s];
        let l = || vec![0.0; s];
        Scratch {
            x_t: v(),
            xt: v(),
            g: v(),
            dx: v(),
            rhs: v(),
            d: v(),
            md: v(),
            x0: v(),
            phi: l(),
            phi0: l(),
            slope: l(),
            alpha: l(),
            last_step: l(),
            error: l(),
            tol: l(),
            active: vec![false; s],
            done: vec![false; s],
        }
    }
}

impl Cg {
    fn new(rows: usize, s: usize) -> Self {
        let v = || vec![0.0; rows * s];
        Cg {
            diag: v(),
            r: v(),
            z: v(),
            p: v(),
            ap: v(),
            mp: v(),
            rz: vec![0.0; s],
            bnorm: vec![0.0; s],
            live: vec![false; s],
        }
    }
}

/// Saved state at the start of a substep (f64 at either precision: an f32
/// state widens and rounds back exactly).
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

impl<T: Real> Part<T> {
    /// A partition of `len` environments starting at `first`, at the model's initial state.
    pub fn new(scene: &Scene, first: usize, len: usize) -> Self {
        let mut b = scene.compiled.buffers_of(len);
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
            scratch: Scratch::new(scene.dofs(), b_stride),
            // Scenes solved directly never run CG.
            cg: Cg::new(
                if scene.direct_solver().is_some() {
                    0
                } else {
                    scene.dofs()
                },
                b_stride,
            ),
        }
    }

    fn stride(&self) -> usize {
        self.b.stride
    }

    /// The free rows of x and v.
    pub fn snapshot(&self, n: usize) -> Snapshot {
        let k = n * self.stride();
        Snapshot {
            x: widen(&self.b.x[..k]),
            v: widen(&self.b.v[..k]),
        }
    }

    /// Restores free rows of x and v.
    pub fn restore(&mut self, snap: &Snapshot) {
        let k = snap.x.len();
        store(&mut self.b.x[..k], &snap.x);
        store(&mut self.b.v[..k], &snap.v);
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
        for _ in 0..scene.substeps() {
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
        // x * 0 is 0 for finite x and NaN otherwise: one branch-free pass
        // (eight independent sums, so that it vectorises).
        let probe = |b: &[T]| {
            let mut acc = [0.0; 8];
            let chunks = b[..n * s].chunks_exact(8);
            let tail: f64 = chunks.remainder().iter().map(|x| x.to_f64() * 0.0).sum();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += c[k].to_f64() * 0.0;
                }
            }
            acc.iter().sum::<f64>() + tail
        };
        if probe(&self.b.x) + probe(&self.b.v) == 0.0 {
            return;
        }
        for e in 0..self.len {
            if self.diverged[e] {
                continue;
            }
            let finite = |b: &[T], r: usize| b[r * s + e].to_f64().is_finite();
            let bad = (0..n).find(|&r| !(finite(&self.b.x, r) && finite(&self.b.v, r)));
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
        self.b.grad.fill(T::default());
        self.run(scene, KernelKind::Gradient);
        self.run(scene, KernelKind::DissipationGradient);
    }

    fn explicit(&mut self, scene: &Scene, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        if scene.explicit_reads_prev {
            self.begin_substep(n);
        }
        self.forces(scene);
        let b = &mut self.b;
        scene.mass.explicit_update(
            &b.grad[..n * s],
            &mut self.scratch.rhs,
            &mut self.scratch.dx,
            &mut b.v[..n * s],
            &mut b.x[..n * s],
            h,
            s,
        );
    }

    /// Incremental potential per environment at the current x (v set from x)
    /// into `w.phi`.
    fn potential(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.b.energy.fill(T::default());
        self.run(scene, KernelKind::Energy);
        load(&mut w.phi, &self.b.energy[..s]);
        self.b.energy.fill(T::default());
        self.run(scene, KernelKind::Dissipation);
        for e in 0..s {
            w.phi[e] += self.b.energy[e].to_f64(); // the kernel holds h D((x - x_t)/h)
        }
        for i in 0..n * s {
            w.d[i] = self.b.x[i].to_f64() - w.xt[i];
        }
        scene.mass.mul(&w.d, &mut w.md, s);
        for r in 0..n {
            for e in 0..s {
                let i = r * s + e;
                w.phi[e] += w.d[i] * w.md[i] / (2.0 * h * h);
            }
        }
    }

    fn set_velocity(&mut self, n: usize, x_t: &[f64], h: f64) {
        let s = self.stride();
        for i in 0..n * s {
            self.b.v[i] = T::from_f64((self.b.x[i].to_f64() - x_t[i]) / h);
        }
    }

    /// Gradient of the incremental potential into `w.g`.
    fn potential_gradient(&mut self, scene: &Scene, w: &mut Scratch, h: f64) {
        let (n, s) = (scene.dofs(), self.stride());
        self.set_velocity(n, &w.x_t, h);
        self.forces(scene);
        for i in 0..n * s {
            w.d[i] = self.b.x[i].to_f64() - w.xt[i];
        }
        scene.mass.mul(&w.d, &mut w.g, s);
        for i in 0..n * s {
            w.g[i] = w.g[i] / (h * h) + self.b.grad[i].to_f64();
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
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        self.begin_substep(n);
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
        self.stops.fill(None);
        self.newton(scene, &mut w, h, iterations, trace);
        for e in 0..self.len {
            let residual = w.error[e];
            if residual > w.tol[e] {
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

    /// Puts each lane at Newton's starting point, with its incremental
    /// potential in `w.phi`: whichever of the inertial prediction x~ (`w.xt`,
    /// exact in free flight) and the drift x_t + h v (`w.x0`; closer for a
    /// body resting on contacts, which gravity's prediction pushes into them)
    /// has the lower potential (the drift is tried only `with_drift`), and x_t
    /// (always admissible: barriers are finite there) where neither is
    /// finite. The line search then never leaves the admissible set.
    fn start_newton(&mut self, scene: &Scene, w: &mut Scratch, h: f64, with_drift: bool) {
        let (n, s) = (scene.dofs(), self.stride());
        store(&mut self.b.x[..n * s], &w.xt);
        self.potential(scene, w, h);
        if with_drift {
            w.phi0.copy_from_slice(&w.phi);
            store(&mut self.b.x[..n * s], &w.x0);
            self.potential(scene, w, h);
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
            self.potential(scene, w, h);
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
        for e in 0..s {
            w.active[e] = e < self.len;
        }
        w.last_step.fill(f64::INFINITY);
        w.error.fill(f64::INFINITY);
        for _ in 0..iterations {
            if !w.active.iter().any(|a| *a) {
                break;
            }
            self.potential_gradient(scene, w, h);
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
                    // The step stands for the error left after it; a full step
                    // that contracted by theta = step / previous step < 1/2
                    // leaves at most theta / (1 - theta) times the step (the
                    // bound of linear convergence, Hairer & Wanner, Solving
                    // ODEs II, IV.8; Newton's quadratic convergence leaves
                    // less), which saves the confirming iteration.
                    let theta = step / w.last_step[e];
                    w.error[e] = if w.last_step[e].is_finite() && w.alpha[e] == 1.0 && theta < 0.5 {
                        theta / (1.0 - theta) * step
                    } else {
                        step
                    };
                    w.last_step[e] = step;
                    if w.error[e] <= w.tol[e] || !step.is_finite() {
                        w.active[e] = false;
                    }
                }
            }
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
        w.alpha.fill(1.0);
        for e in 0..s {
            w.done[e] = !w.active[e];
        }
        for _ in 0..12 {
            for r in 0..n {
                for e in 0..s {
                    let i = r * s + e;
                    self.b.x[i] = T::from_f64(if w.active[e] {
                        w.x0[i] + w.alpha[e] * w.dx[i]
                    } else {
                        w.x0[i]
                    });
                }
            }
            if w.done.iter().all(|d| *d) {
                break;
            }
            self.potential(scene, w, h);
            for e in 0..s {
                if !w.done[e] {
                    let (phi, phi0, slope, alpha) = (w.phi[e], w.phi0[e], w.slope[e], w.alpha[e]);
                    // Armijo; or a decrease too small for the kernels' precision to
                    // resolve in the potential (near the solution), where the
                    // Newton step is trusted.
                    let unresolvable = (alpha * slope).abs() <= 8.0 * T::EPSILON * phi0.abs();
                    if phi <= phi0 + 1e-4 * alpha * slope
                        || (unresolvable && phi.is_finite())
                        || !phi0.is_finite()
                    {
                        w.done[e] = true;
                    } else {
                        w.alpha[e] *= 0.5;
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

    /// `c.ap` = (M/h^2 + H_E + H_hD) `c.p`, through the Hessian-vector kernels.
    fn apply(&mut self, scene: &Scene, h: f64, c: &mut Cg, kinds: [KernelKind; 2]) {
        let (n, s) = (scene.dofs(), self.stride());
        set_seed(&mut self.b, &c.p);
        self.b.hv.fill(T::default());
        self.run(scene, kinds[0]);
        load(&mut c.ap, &self.b.hv[..n * s]);
        self.b.hv.fill(T::default());
        self.run(scene, kinds[1]);
        scene.mass.mul(&c.p, &mut c.mp, s);
        for i in 0..n * s {
            c.ap[i] += c.mp[i] / (h * h) + self.b.hv[i].to_f64();
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
        let mut c = std::mem::replace(&mut self.cg, Cg::new(0, 0));
        // Jacobi preconditioner from the block diagonals.
        c.diag.fill(0.0);
        for kind in [he, hd] {
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
                                c.diag[r * s + e] += self.b.blocks[base + e].to_f64();
                            }
                        }
                    }
                }
            }
        }
        for r in 0..n {
            let k = scene.mass.mass[r] / (h * h);
            for e in 0..s {
                let d = &mut c.diag[r * s + e];
                *d = 1.0 / (*d + k).abs().max(1e-300);
            }
        }
        let dot = |a: &[f64], b: &[f64], e: usize| {
            (0..n).map(|r| a[r * s + e] * b[r * s + e]).sum::<f64>()
        };
        x.fill(0.0);
        c.r.copy_from_slice(rhs);
        for i in 0..n * s {
            c.z[i] = c.r[i] * c.diag[i];
        }
        c.p.copy_from_slice(&c.z);
        for e in 0..s {
            c.rz[e] = dot(&c.r, &c.z, e);
            c.bnorm[e] = dot(rhs, rhs, e).sqrt();
        }
        c.live.copy_from_slice(&active[..s]);
        for _ in 0..(2 * n).clamp(50, CG_ITERATIONS) {
            if !c.live.iter().any(|l| *l) {
                break;
            }
            self.apply(scene, h, &mut c, [hve, hvd]);
            for e in 0..s {
                if !c.live[e] {
                    continue;
                }
                let pap = dot(&c.p, &c.ap, e);
                let alpha = if pap > 0.0 { c.rz[e] / pap } else { 0.0 };
                for k in 0..n {
                    let i = k * s + e;
                    x[i] += alpha * c.p[i];
                    c.r[i] -= alpha * c.ap[i];
                    c.z[i] = c.r[i] * c.diag[i];
                }
                let rz_new = dot(&c.r, &c.z, e);
                let rnorm = dot(&c.r, &c.r, e).sqrt();
                if rnorm <= rtol * c.bnorm[e] || pap <= 0.0 || !rnorm.is_finite() {
                    if pap <= 0.0 && rnorm > rtol * c.bnorm[e] {
                        self.stops[e] = Some((SolveStop::NegativeCurvature, rnorm / c.bnorm[e]));
                    }
                    c.live[e] = false;
                    continue;
                }
                let beta = rz_new / c.rz[e];
                c.rz[e] = rz_new;
                for k in 0..n {
                    let i = k * s + e;
                    c.p[i] = c.z[i] + beta * c.p[i];
                }
            }
            // Frozen lanes contribute no direction.
            for e in 0..s {
                if !c.live[e] {
                    for k in 0..n {
                        c.p[k * s + e] = 0.0;
                    }
                }
            }
        }
        for e in 0..s {
            if c.live[e] {
                let residual = dot(&c.r, &c.r, e).sqrt() / c.bnorm[e];
                self.stops[e] = Some((SolveStop::IterationCap, residual));
            }
        }
        self.cg = c;
    }

    /// Adjoint of one substep from `start` (the state before it) to `end`
    /// (the state it computed). On entry `adj.x`, `adj.v` hold dL/dx', dL/dv'
    /// of `end`; on exit dL/dx, dL/dv of `start`, with params and controls
    /// accumulated. CG solves that stop short are reported as events of `step`.
    pub fn substep_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        end: &Snapshot,
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
                let (vbar, w) = (&mut self.scratch.rhs, &mut self.scratch.dx);
                for i in 0..n * s {
                    vbar[i] = adj.v[i] + h * adj.x[i];
                }
                scene.mass.solve(vbar, w, s);
                set_seed(&mut self.b, w);
                self.vjp(scene, KernelKind::Adjoint);
                let vbar = &self.scratch.rhs;
                for i in 0..n * s {
                    let b = &self.b;
                    adj.x[i] -= h * (b.d_x[i].to_f64() + b.d_prev_x[i].to_f64());
                    adj.v[i] = vbar[i] - h * (b.d_v[i].to_f64() + b.d_prev_v[i].to_f64());
                }
                self.accumulate(adj, -h);
            }
            Integrator::ImplicitEuler { .. } => {
                // The implicit function theorem at the solution `end`: x',
                // v' = (x' - x_t)/h, prev = start (the implicit kernels read
                // velocities as (x - prev_x)/h).
                self.begin_substep(n);
                self.restore(end);
                let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
                for i in 0..n * s {
                    w.rhs[i] = adj.x[i] + adj.v[i] / h;
                }
                w.dx.fill(0.0);
                for e in 0..s {
                    w.active[e] = e < self.len;
                }
                self.stops.fill(None);
                self.solve(scene, h, &w.rhs, &mut w.dx, &w.active, true);
                self.report_stops(step, true);
                set_seed(&mut self.b, &w.dx);
                self.vjp(scene, KernelKind::Adjoint);
                scene.mass.mul(&w.dx, &mut w.md, s);
                for i in 0..n * s {
                    let vbar_next = adj.v[i];
                    adj.x[i] = w.md[i] / (h * h) - self.b.d_prev_x[i].to_f64() - vbar_next / h;
                    adj.v[i] = w.md[i] / h - self.b.d_prev_v[i].to_f64();
                }
                self.accumulate(adj, -1.0);
                self.scratch = w;
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
            buf.fill(T::default());
        }
        self.run(scene, kind);
    }

    fn accumulate(&self, adj: &mut Adjoint, scale: f64) {
        for (a, d) in adj.params.iter_mut().zip(self.b.d_params.iter()) {
            *a += scale * d.to_f64();
        }
        for (a, d) in adj.controls.iter_mut().zip(self.b.d_controls.iter()) {
            *a += scale * d.to_f64();
        }
    }

    /// Adds the gradient of `out_seed . outputs` at the current state.
    pub fn outputs_adjoint(&mut self, scene: &Scene, adj: &mut Adjoint) {
        let (n, s) = (scene.dofs(), self.stride());
        self.vjp(scene, KernelKind::OutputsVjp);
        for i in 0..n * s {
            adj.x[i] += self.b.d_x[i].to_f64();
            adj.v[i] += self.b.d_v[i].to_f64();
        }
        self.accumulate(adj, 1.0);
    }

    /// Evaluates the potential energy into `energy` at the current state.
    pub fn potential_energy(&mut self, scene: &Scene) {
        self.b.energy.fill(T::default());
        self.run(scene, KernelKind::Energy);
    }

    /// Evaluates the outputs at the current state.
    pub fn outputs(&mut self, scene: &Scene) {
        self.run(scene, KernelKind::Outputs);
    }
}
