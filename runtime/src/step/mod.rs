//! Time steps of one partition of environments, and their adjoints.
//!
//! `symplectic_euler`: v += h M^-1 (f - dE/dx - dD/dv); x += h v.
//! `implicit_euler`: x' = argmin 1/(2h^2) |x - x~|_M^2 + E(x) + h D((x - x_t)/h),
//! x~ = x_t + h v_t + h^2 M^-1 f, by Newton's method with a sparse Cholesky
//! solve planned at compile time (`sparse`, systems small and sparse enough)
//! or matrix-free Jacobi-preconditioned CG on Hessian-vector kernels (larger
//! ones), and a backtracking line search
//! run on all lanes with per-lane acceptance. Lanes that are done are
//! masked, never waited on: the compiled kernels of Newton's iterations and
//! line searches run only on the vectors of lanes still iterating
//! (`Part::run_where`), the per-lane work only on those lanes.
//!
//! This file holds the partition [`Part`] and everything it owns: the
//! kernels' buffers, the integrator's reusable vectors (`Scratch`, `Cg`; all
//! of a partition's memory is allocated in [`Part::new`], so stepping
//! allocates nothing), saved states ([`Snapshot`]), adjoint accumulators
//! ([`Adjoint`]), the f64 <-> kernel precision helpers, and the step driver.
//! The phases of a step, in the order they run, each in its own module:
//!
//! 1. [`Part::step`] runs the scene's substeps ([`Part::substep`]), each one
//!    of:
//!    - `explicit`: a symplectic Euler substep (forces, then the mass
//!      model's velocity and position update);
//!    - `newton`: an implicit Euler substep: the inertial prediction,
//!      Newton's starting point, Newton iterations (each a gradient of the
//!      incremental potential, a linear solve and a line search) and the
//!      convergence rule, which reports lanes that did not converge.
//!      The incremental potential and its gradient are in `potential`;
//!      the linear solves (direct sparse Cholesky or Jacobi-PCG, and the
//!      report of CG solves that stopped short) in `solve`; in scenes
//!      whose energies read `held(..)`, the held values' fixed-point
//!      iteration between Newton iterations in `held`.
//! 2. After the substeps, `check_finite` (here) reports environments whose
//!    state stopped being finite.
//!
//! Backwards (driven by `crate::gradient`, one substep at a time from the
//! last): `adjoint` holds the substep adjoint ([`Part::substep_adjoint`]),
//! the VJP kernels and the accumulation of parameter and control gradients,
//! the adjoint through held values (the transposed fixed-point iteration),
//! and the adjoint of the outputs ([`Part::outputs_adjoint`]).

mod adjoint;
mod explicit;
mod held;
mod linear_adjoint;
mod mass_scale;
mod newton;
mod potential;
mod reduced;
mod reduced_adjoint;
mod reduced_explicit;
mod runge_kutta;
mod solve;

pub use newton::RESOLUTION_ULPS;
pub use solve::{ADJOINT_CG_TOLERANCE, CG_ITERATIONS, DIRECT_FLOP_LIMIT, NEWTON_CG_TOLERANCE};

use crate::sparse::Workspace;
use crate::{Event, Scene, SolveStop};
use joule_compiler::abi::{Buffers, Real};
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::Integrator;

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
    /// Vectors of the steps in joint coordinates (scenes with joint trees).
    reduced: Option<reduced::Reduced>,
    /// The held values' fixed-point iteration (scenes that read `held(..)`).
    held: Option<held::Held>,
    /// Newton iterations taken so far, summed over the lanes: each iteration
    /// counts the environments still iterating in it.
    pub newton_iterations: u64,
    /// The free rows of x, then of v, at the start of the step, which
    /// `prev(..)` in outputs reads ([`Scene::outputs_read_prev`]); empty
    /// when no output reads them or a step is one substep (whose own start
    /// `prev_x`/`prev_v` already hold).
    step_start: Vec<T>,
    /// The surrogate model's partition (same environments), whose steps
    /// from this partition's states the adjoint differentiates in
    /// `surrogate = model` ([`Scene::surrogate_model`]).
    surrogate: Option<Box<Part<T>>>,
    /// The vectors of masses that read params (`mass_scale.rs`).
    mass: mass_scale::MassWork,
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
    /// Per lane: a potential sweep's values, before the lanes it was for
    /// keep theirs in `phi`.
    sweep: Vec<f64>,
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
            sweep: l(),
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
    /// What outputs' `prev(..)` reads add to the adjoint of the state at the
    /// start of the step (x, then v): added to `x`, `v` once the step's
    /// substeps are reversed ([`Adjoint::close_step`]).
    pub prev: Vec<f64>,
}

impl Adjoint {
    /// Zero accumulators for `n` free rows of stride `s`, `params` and
    /// `controls` entries.
    pub fn new(n: usize, s: usize, params: usize, controls: usize) -> Self {
        Adjoint {
            x: vec![0.0; n * s],
            v: vec![0.0; n * s],
            params: vec![0.0; params],
            controls: vec![0.0; controls],
            prev: vec![0.0; 2 * n * s],
        }
    }

    /// Adds what outputs read of the state at a step's start (now that the
    /// adjoint has been carried back to it) and clears it.
    pub fn close_step(&mut self) {
        let k = self.x.len();
        let (px, pv) = self.prev.split_at_mut(k);
        for (a, p) in self.x.iter_mut().zip(px.iter_mut()) {
            *a += std::mem::take(p);
        }
        for (a, p) in self.v.iter_mut().zip(pv.iter_mut()) {
            *a += std::mem::take(p);
        }
    }
}

impl<T: Real> Part<T> {
    /// A partition of `len` environments starting at `first`, at the model's initial state.
    pub fn new(scene: &Scene, first: usize, len: usize) -> Self {
        let mut b = scene.compiled.buffers_of(len);
        scene.initial_state(&mut b);
        let b_stride = b.stride;
        let mut part = Part {
            first,
            len,
            b,
            events: vec![],
            diverged: vec![false; len],
            direct: scene.direct_solver().map(|d| d.workspace(b_stride)),
            stops: vec![None; b_stride],
            scratch: Scratch::new(scene.dofs(), b_stride),
            reduced: scene
                .tree()
                .map(|t| reduced::Reduced::new(t, scene.dofs(), b_stride, len)),
            held: scene.holds.then(|| held::Held::new(scene.dofs(), b_stride)),
            newton_iterations: 0,
            // Scenes solved directly never run CG.
            cg: Cg::new(
                if scene.direct_solver().is_some() {
                    0
                } else {
                    scene.dofs()
                },
                b_stride,
            ),
            step_start: if scene.outputs_read_prev && scene.substeps() > 1 {
                vec![T::default(); 2 * scene.dofs() * b_stride]
            } else {
                vec![]
            },
            surrogate: scene
                .surrogate_model()
                .map(|m| Box::new(Part::new(m, first, len))),
            mass: Default::default(),
        };
        // Joints that start away from the declared pose: their links' rows
        // by forward kinematics.
        if let Some(tree) = scene.tree().filter(|_| !scene.start().is_empty()) {
            for e in 0..len {
                part.sync_links(tree, e);
            }
        }
        part
    }

    fn stride(&self) -> usize {
        self.b.stride
    }

    /// Counts one Newton iteration of every lane still `active` (padding
    /// lanes are never active).
    fn count_iteration(&mut self, active: &[bool]) {
        self.newton_iterations += active[..self.len].iter().filter(|a| **a).count() as u64;
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

    /// Runs kernel `kind` on the lanes `want` selects: on each run of whole
    /// vector chunks (`T::LANES` lanes, the kernels' unit) that holds a
    /// selected lane. A lane that converged costs nothing once its chunk
    /// has, so a partition does not iterate at the pace of its slowest lane
    /// (the other lanes' outputs keep their last values).
    fn run_where(&mut self, scene: &Scene, kind: KernelKind, want: impl Fn(usize) -> bool) {
        let (l, len) = (T::LANES, self.len);
        let wanted = |c: usize| chunk_wanted(c, l, len, &want);
        let chunks = len.div_ceil(l);
        let mut c = 0;
        while c < chunks {
            if !wanted(c) {
                c += 1;
                continue;
            }
            let begin = c * l;
            while c < chunks && wanted(c) {
                c += 1;
            }
            scene
                .compiled
                .run(kind, &mut self.b, begin, (c * l).min(len))
                .expect("buffers are built from the scene's layout");
        }
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
        let k = n * self.stride();
        if !self.step_start.is_empty() {
            let (x, v) = self.step_start.split_at_mut(k);
            x.copy_from_slice(&self.b.x[..k]);
            v.copy_from_slice(&self.b.v[..k]);
        }
        for _ in 0..scene.substeps() {
            if let Some(s) = states.as_deref_mut() {
                s.push(self.snapshot(n));
            }
            self.substep(scene, step);
        }
        if !self.step_start.is_empty() {
            let (x, v) = self.step_start.split_at(k);
            self.b.prev_x[..k].copy_from_slice(x);
            self.b.prev_v[..k].copy_from_slice(v);
        }
        self.check_finite(scene, step);
    }

    /// Sets the state that `prev(..)` in outputs reads: the state at the
    /// start of the step that led to the current one.
    pub fn restore_prev(&mut self, snap: &Snapshot) {
        let k = snap.x.len();
        store(&mut self.b.prev_x[..k], &snap.x);
        store(&mut self.b.prev_v[..k], &snap.v);
    }

    /// One substep of the scene's integrator.
    pub fn substep(&mut self, scene: &Scene, step: usize) {
        let h = scene.substep();
        match scene.compiled.model.settings.integrator {
            Integrator::SymplecticEuler if scene.tree().is_some() => {
                self.explicit_reduced(scene, h)
            }
            Integrator::SymplecticEuler => self.explicit(scene, h),
            Integrator::ImplicitEuler {
                iterations,
                tolerance,
                kinematics,
            } if scene.tree().is_some() => {
                self.implicit_reduced(scene, h, iterations, tolerance, kinematics, step, None)
            }
            Integrator::ImplicitEuler {
                iterations,
                tolerance,
                ..
            } => self.implicit(scene, h, iterations, tolerance, step, None),
            // A scene without joint coordinates is refused at compile time.
            Integrator::RungeKutta4 {
                iterations,
                tolerance,
            } => self.runge_kutta(scene, h, iterations, tolerance, step),
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

    /// `grad` = dE/dx + dD/dv at the current x, v, on the lanes `want`
    /// selects (see [`Part::run_where`]; zero on the others).
    fn forces(&mut self, scene: &Scene, want: impl Fn(usize) -> bool + Copy) {
        self.b.grad.fill(T::default());
        self.run_where(scene, KernelKind::Gradient, want);
        self.run_where(scene, KernelKind::DissipationGradient, want);
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

/// Whether chunk `c` of `width` lanes (of a partition's `len`) holds a lane
/// `want` selects.
fn chunk_wanted(c: usize, width: usize, len: usize, want: impl Fn(usize) -> bool) -> bool {
    (c * width..((c + 1) * width).min(len)).any(want)
}

#[cfg(test)]
mod tests {
    use super::Part;
    use crate::Scene;
    use joule_compiler::abi::Real;
    use joule_compiler::kernels::KernelKind;

    /// The energy kernel, run where `want` says on nine lanes (f64: vectors
    /// of two), computes exactly the lanes of the vectors holding a wanted
    /// lane, the value a whole-partition run gives them.
    #[test]
    fn kernels_run_on_the_vectors_of_the_wanted_lanes_only() {
        let scene = Scene::compile(
            "settings { integrator = implicit_euler }\n\
             particle p { x = vec3(0, 0, 1), mass = 2 }\n\
             energy weight(q: particle) = q.mass * 9.81 * q.x.z\n\
             weight(p)",
        )
        .expect("the scene compiles");
        let mut part = Part::<f64>::new(&scene, 0, 9);
        part.run(&scene, KernelKind::Energy);
        let whole = part.b.energy[..9].to_vec();
        assert!(
            whole.iter().all(|e| *e != 0.0),
            "the weight's energy: {whole:?}"
        );
        // The kernel adds to the buffer: lanes it does not run on keep 0.
        part.b.energy.fill(0.0);
        part.run_where(&scene, KernelKind::Energy, |e| e == 3 || e == 8);
        let lanes = f64::LANES;
        for (e, v) in part.b.energy[..9].iter().enumerate() {
            let vector = e / lanes;
            if vector == 3 / lanes || vector == 8 / lanes {
                assert_eq!(*v, whole[e], "lane {e}");
            } else {
                assert_eq!(*v, 0.0, "lane {e}");
            }
        }
    }
}
