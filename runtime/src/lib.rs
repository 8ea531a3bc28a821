//! The Joule runtime: batched simulation and exact gradients.
//!
//! ```no_run
//! use joule_runtime::Scene;
//! let scene = Scene::compile("particle p { x = vec3(0, 0, 1), mass = 1 }\nobserve z = p.x.z")?;
//! let mut sim = scene.batch(64);
//! sim.rollout(100);
//! let z = sim.output("z");
//! # Ok::<(), miette::Report>(())
//! ```
//!
//! Environments are split into partitions, one per thread; every environment's
//! arithmetic is independent of the split, so results are bitwise identical for
//! any thread count.

// Structure-of-arrays loops index several parallel buffers by row and lane;
// index loops say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

mod gradient;
#[doc(hidden)] // public for the tests (tests/sparse.rs's dense reference), not a user API
pub mod mass;
pub mod optimize;
pub mod sparse;
#[doc(hidden)] // public for the tests (tests/sparse.rs, tests/alloc.rs), not a user API
pub mod step;
mod tape;

pub use gradient::{chamfer, Gradient, Objective, Schedule, Track, GRADIENT_MEMORY};
pub use tape::{Tape, TapeGradient};

use joule_compiler::abi::{Buffers, Real};
use joule_compiler::compiled::{Backend, CompiledScene};
use joule_compiler::kernels::{KernelIr, KernelKind};
use joule_compiler::model::{Integrator, Model, Precision, State};
use joule_grammar::Diagnostic;
use mass::MassModel;
use rayon::prelude::*;
use sparse::Direct;
use step::Part;

/// Storage a partition of an implicit scene aims to stay within (about the
/// L2 cache of two cores).
const PART_BYTES: usize = 4 << 20;
/// Partitions hold multiples of this many lanes where the batch allows (the
/// sparse factorisation's widest specialisation).
const PART_LANE_MULTIPLE: usize = 8;

/// Something the simulation wants its user to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An environment's state became NaN or infinite; the others go on.
    Diverged {
        env: usize,
        step: usize,
        dof: usize,
        name: String,
    },
    /// Newton's method did not reach the tolerance within its iterations;
    /// `residual` is its estimate of the error left (metres).
    NotConverged {
        env: usize,
        step: usize,
        residual: f64,
    },
    /// An iterative (Jacobi-preconditioned CG) linear solve stopped before its
    /// tolerance; `residual` is its relative residual. In the forward pass
    /// Newton may still converge (the last stop of the substep is reported);
    /// in an `adjoint` solve the gradient is inexact.
    SolveStopped {
        env: usize,
        step: usize,
        reason: SolveStop,
        residual: f64,
        adjoint: bool,
    },
}

/// Why an iterative linear solve stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolveStop {
    /// It reached its iteration cap.
    IterationCap,
    /// A search direction had non-positive curvature: the matrix is not positive definite.
    NegativeCurvature,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Diverged { env, step, dof, name } => {
                write!(f, "environment {env} diverged at step {step}: DOF {dof} ({name}) is not finite")
            }
            Event::NotConverged { env, step, residual } => write!(
                f,
                "environment {env}, step {step}: Newton did not converge (estimated error {residual:e} above the tolerance)"
            ),
            Event::SolveStopped { env, step, reason, residual, adjoint } => write!(
                f,
                "environment {env}, step {step}: the {} CG solve stopped {} at relative residual {residual:e}",
                if *adjoint { "adjoint" } else { "Newton" },
                match reason {
                    SolveStop::IterationCap => "at its iteration cap",
                    SolveStop::NegativeCurvature => "on negative curvature (indefinite Hessian)",
                }
            ),
        }
    }
}

/// A scene that failed to compile: its rendered diagnostics.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// The diagnostics.
    pub diagnostics: Vec<Diagnostic>,
    /// The diagnostics rendered without colour.
    pub rendered: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rendered)
    }
}

impl std::error::Error for CompileError {}
impl miette::Diagnostic for CompileError {}

/// A compiled scene with its mass model, ready to be batched.
pub struct Scene {
    /// Kernels and layout.
    pub compiled: CompiledScene,
    /// Mass and external force per free DOF.
    #[doc(hidden)] // public for the tests, not a user API
    pub mass: MassModel,
    /// The sparse Cholesky plan of implicit scenes whose systems are solved
    /// directly (`None`: explicit, or large enough for CG).
    direct: Option<Direct>,
    dof_names: Vec<String>,
    /// Whether an explicit step's kernels read `prev_x` / `prev_v` (else a
    /// substep does not copy the state into them).
    explicit_reads_prev: bool,
    /// What the user should know about the compiled scene.
    warnings: Vec<String>,
}

impl Scene {
    /// Compiles scene text (`use` paths resolve against the working directory).
    pub fn compile(src: &str) -> Result<Scene, miette::Report> {
        Self::from_checked(
            joule_compiler::check_source("scene.joule", src),
            Backend::Jit,
        )
        .map_err(miette::Report::new)
    }

    /// Compiles a scene file.
    pub fn from_path(path: &std::path::Path, backend: Backend) -> Result<Scene, CompileError> {
        let checked = joule_compiler::check_path(path).map_err(|e| CompileError {
            diagnostics: vec![],
            rendered: format!("cannot read `{}`: {e}", path.display()),
        })?;
        Self::from_checked(checked, backend)
    }

    /// From the front end's result.
    pub fn from_checked(
        checked: joule_compiler::Checked,
        backend: Backend,
    ) -> Result<Scene, CompileError> {
        if !checked.ok() {
            return Err(CompileError {
                rendered: checked.render_diagnostics(false, 100),
                diagnostics: checked.diagnostics,
            });
        }
        let model = checked.model.expect("ok implies a model");
        Self::from_model(model, backend)
    }

    /// From a resolved model.
    pub fn from_model(model: Model, backend: Backend) -> Result<Scene, CompileError> {
        let mass = MassModel::new(&model);
        let mut dof_names = vec![String::new(); model.dof_count];
        for p in &model.particles {
            if let Some(d) = p.dof {
                for (k, c) in ["x", "y", "z"].iter().enumerate() {
                    dof_names[d as usize + k] = format!("{}.x.{c}", p.name);
                }
            }
        }
        for b in &model.bodies {
            if let Some(d) = b.dof {
                for k in 0..12 {
                    dof_names[d as usize + k] = if k < 3 {
                        format!("{}.x[{k}]", b.name)
                    } else {
                        format!("{}.R[{}, {}]", b.name, (k - 3) % 3, (k - 3) / 3)
                    };
                }
            }
        }
        let compiled = CompiledScene::new(model, backend).map_err(|e| CompileError {
            diagnostics: vec![],
            rendered: e.to_string(),
        })?;
        let direct = matches!(
            compiled.model.settings.integrator,
            Integrator::ImplicitEuler { .. }
        )
        .then(|| {
            Direct::plan(
                compiled.layout().dofs,
                &mass,
                |k| compiled.kernels.get(k),
                step::DIRECT_FLOP_LIMIT,
            )
        })
        .flatten();
        let lost = match compiled.model.settings.precision {
            Precision::F32 => compiled.kernels.beyond_f32(),
            Precision::F64 => vec![],
        };
        let warnings = if lost.is_empty() {
            vec![]
        } else {
            let shown: Vec<String> = lost.iter().take(5).map(|x| format!("{x:e}")).collect();
            vec![format!(
                "{} constant{} of this scene's energies and outputs cannot be held in f32 ({}{}): each rounds to 0 or to infinity under `precision = f32`; use constants within 1.2e-38..3.4e38, or f64",
                lost.len(),
                if lost.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if lost.len() > 5 { ", ..." } else { "" }
            )]
        };
        let explicit_reads_prev = [
            KernelKind::Gradient,
            KernelKind::DissipationGradient,
            KernelKind::Outputs,
        ]
        .iter()
        .any(|k| {
            let ir = compiled.kernels.get(*k);
            ir.reads(State::PrevPos) || ir.reads(State::PrevVel)
        });
        Ok(Scene {
            compiled,
            mass,
            direct,
            dof_names,
            explicit_reads_prev,
            warnings,
        })
    }

    /// Warnings about the compiled scene (f32 constants that round to 0 or
    /// infinity); the CLI prints them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The resolved model.
    pub fn model(&self) -> &Model {
        &self.compiled.model
    }

    /// The substep length `dt / substeps`.
    pub fn substep(&self) -> f64 {
        let s = &self.compiled.model.settings;
        s.dt / s.substeps.max(1) as f64
    }

    /// Free DOFs.
    pub fn dofs(&self) -> usize {
        self.compiled.layout().dofs
    }

    /// A readable name of a free DOF.
    pub fn dof_name(&self, dof: usize) -> String {
        self.dof_names.get(dof).cloned().unwrap_or_default()
    }

    /// The sparse Cholesky plan of the implicit step's linear systems, if they
    /// are solved directly (small and sparse enough); otherwise CG solves them.
    pub fn direct_solver(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }

    pub(crate) fn kernel_ir(&self, kind: KernelKind) -> &KernelIr {
        self.compiled.kernels.get(kind)
    }

    /// The model's initial positions and velocities of the free DOFs, with
    /// `jitter()` added to every particle velocity component and every body's
    /// linear and angular velocity component (for randomised resets; `|| 0.0`
    /// gives the model's own state).
    pub fn initial_dofs(&self, mut jitter: impl FnMut() -> f64) -> (Vec<f64>, Vec<f64>) {
        let m = self.model();
        let (mut x, mut v) = (vec![0.0; self.dofs()], vec![0.0; self.dofs()]);
        for p in &m.particles {
            if let Some(d) = p.dof {
                for k in 0..3 {
                    x[d as usize + k] = p.x[k];
                    v[d as usize + k] = p.v[k] + jitter();
                }
            }
        }
        for body in &m.bodies {
            if let Some(d) = body.dof {
                let d = d as usize;
                let r = joule_compiler::resolve::quat_to_mat(body.rotation);
                for k in 0..3 {
                    x[d + k] = body.x[k];
                    v[d + k] = body.v[k] + jitter();
                }
                // Rdot = [w]x R, column by column.
                let w = [
                    body.w[0] + jitter(),
                    body.w[1] + jitter(),
                    body.w[2] + jitter(),
                ];
                for c in 0..3 {
                    let col = [r[3 * c], r[3 * c + 1], r[3 * c + 2]];
                    let wx = [
                        w[1] * col[2] - w[2] * col[1],
                        w[2] * col[0] - w[0] * col[2],
                        w[0] * col[1] - w[1] * col[0],
                    ];
                    for k in 0..3 {
                        x[d + 3 + 3 * c + k] = col[k];
                        v[d + 3 + 3 * c + k] = wx[k];
                    }
                }
            }
        }
        (x, v)
    }

    /// Every control at its starting value (0, or the end of its range
    /// nearest 0) in `batch` environments: `[control][env]`.
    pub fn default_controls(&self, batch: usize) -> Vec<Vec<f64>> {
        self.model()
            .controls
            .iter()
            .map(|c| vec![c.bounds.map_or(0.0, |(lo, hi)| 0.0f64.clamp(lo, hi)); batch])
            .collect()
    }

    /// Writes the model's initial state and default params into buffers.
    pub(crate) fn initial_state<T: Real>(&self, b: &mut Buffers<T>) {
        let m = self.model();
        let s = b.stride;
        let set =
            |buf: &mut [T], row: usize, v: f64| buf[row * s..(row + 1) * s].fill(T::from_f64(v));
        let (x, v) = self.initial_dofs(|| 0.0);
        for r in 0..self.dofs() {
            set(&mut b.x, r, x[r]);
            set(&mut b.v, r, v[r]);
        }
        for (i, p) in m.params.iter().enumerate() {
            set(&mut b.params, i, p.value);
        }
        for (i, c) in self.default_controls(1).iter().enumerate() {
            set(&mut b.controls, i, c[0]);
        }
    }

    /// A batch of `batch` environments at the initial state, on all cores.
    pub fn batch(&self, batch: usize) -> Sim<'_> {
        self.batch_threads(batch, rayon::current_num_threads())
    }

    /// Bytes one environment occupies in a partition's storage: the kernel
    /// buffers (in the scene's precision), the integrator's f64 vectors and
    /// the sparse factor.
    fn lane_bytes(&self) -> usize {
        let l = self.compiled.layout();
        let kernel = match self.model().settings.precision {
            Precision::F64 => Buffers::<f64>::lane_bytes(l),
            Precision::F32 => Buffers::<f32>::lane_bytes(l),
        };
        let solver = self.direct.as_ref().map_or(6 * self.dofs(), |d| d.nnz());
        kernel + 8 * (8 * self.dofs() + solver)
    }

    /// Most environments in one partition: as many as keep its storage within
    /// [`PART_BYTES`], rounded down to a multiple of [`PART_LANE_MULTIPLE`], so that
    /// Newton's iterations over a partition stay in cache (the ant at B =
    /// 1024 on one thread: 4.6k env-steps/s as one partition, 10.4k in
    /// partitions of at most 24). Explicit scenes, and scenes of which not even
    /// `PART_LANE_MULTIPLE` lanes fit, are split by threads alone.
    fn part_lanes(&self) -> usize {
        let fit = PART_BYTES / self.lane_bytes().max(1) / PART_LANE_MULTIPLE * PART_LANE_MULTIPLE;
        let implicit = matches!(
            self.model().settings.integrator,
            Integrator::ImplicitEuler { .. }
        );
        if implicit && fit > 0 {
            fit
        } else {
            usize::MAX
        }
    }

    /// A batch split into `threads` partitions (fewer if it has fewer SIMD
    /// vectors), or a multiple of that where a partition would leave the
    /// cache (at most 4 MiB of storage each for implicit scenes); rayon runs
    /// them in parallel.
    pub fn batch_threads(&self, batch: usize, threads: usize) -> Sim<'_> {
        let precision = self.model().settings.precision;
        let lanes = joule_compiler::abi::lanes(precision);
        let vectors = batch.div_ceil(lanes).max(1);
        // A multiple of the thread count, so that the threads get equal shares.
        let threads = threads.max(1);
        let parts_n = ((vectors * lanes).div_ceil(self.part_lanes()))
            .div_ceil(threads)
            .max(1)
            * threads;
        let parts_n = parts_n.min(vectors);
        let mut ranges = vec![];
        let mut first = 0;
        // Whole units of PART_LANE_MULTIPLE lanes per partition where every
        // partition gets two or more (the factorisation is specialised to 8
        // lanes; fewer would leave the partitions unequal), else whole
        // vectors, spread evenly.
        let unit = PART_LANE_MULTIPLE / lanes;
        let unit = if vectors >= 2 * parts_n * unit {
            unit
        } else {
            1
        };
        let units = vectors.div_ceil(unit);
        for p in 0..parts_n {
            let u = units / parts_n + usize::from(p < units % parts_n);
            let len = (u * unit * lanes).min(batch - first);
            if len > 0 {
                ranges.push((first, len));
            }
            first += len;
        }
        fn build<T: Real>(scene: &Scene, ranges: &[(usize, usize)]) -> Vec<Part<T>> {
            ranges
                .iter()
                .map(|&(first, len)| Part::new(scene, first, len))
                .collect()
        }
        let parts = match precision {
            Precision::F64 => Parts::F64(build(self, &ranges)),
            Precision::F32 => Parts::F32(build(self, &ranges)),
        };
        Sim {
            scene: self,
            parts,
            batch,
            step: 0,
            gradient_memory: gradient::GRADIENT_MEMORY,
            events: vec![],
        }
    }
}

/// A batch's partitions, in the scene's precision.
enum Parts {
    F64(Vec<Part<f64>>),
    F32(Vec<Part<f32>>),
}

/// Evaluates `$body` with `$p` bound to the partitions (`Vec<Part<T>>`) of
/// either precision: the body is generic code, compiled for both.
macro_rules! with_parts {
    ($parts:expr, $p:ident => $body:expr) => {
        match $parts {
            Parts::F64($p) => $body,
            Parts::F32($p) => $body,
        }
    };
}
pub(crate) use with_parts;

/// A batch of environments being simulated.
pub struct Sim<'s> {
    scene: &'s Scene,
    parts: Parts,
    batch: usize,
    step: usize,
    /// Most bytes of states a gradient records to skip recomputation.
    gradient_memory: usize,
    /// Everything reported so far (divergence, non-convergence).
    pub events: Vec<Event>,
}

/// A name that does not exist in the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct NameError(pub String);

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

impl Sim<'_> {
    /// Environments.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Sets the most bytes of recorded states a [`Sim::gradient`] may keep
    /// (default [`GRADIENT_MEMORY`]); a rollout whose states need
    /// more keeps checkpoints every ~sqrt(steps) steps and recomputes between
    /// them (one more forward pass, the same gradients bit for bit).
    pub fn set_gradient_memory(&mut self, bytes: usize) {
        self.gradient_memory = bytes;
    }

    /// Partitions the batch is split into (each stepped by one thread at a time).
    pub fn partitions(&self) -> usize {
        with_parts!(&self.parts, parts => parts.len())
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Simulated time.
    pub fn time(&self) -> f64 {
        self.step as f64 * self.scene.model().settings.dt
    }

    /// Sets a parameter in every environment.
    pub fn set_param(&mut self, name: &str, value: f64) -> Result<(), NameError> {
        let i = self.param_index(name)?;
        with_parts!(&mut self.parts, parts => for p in parts {
            let s = p.b.stride;
            p.b.params[i * s..(i + 1) * s].fill(Real::from_f64(value));
        });
        Ok(())
    }

    /// Sets a parameter in one environment.
    pub fn set_param_env(&mut self, name: &str, env: usize, value: f64) -> Result<(), NameError> {
        let i = self.param_index(name)?;
        let (p, e) = self.locate(env);
        with_parts!(&mut self.parts, parts => {
            let b = &mut parts[p].b;
            b.params[i * b.stride + e] = Real::from_f64(value);
        });
        Ok(())
    }

    /// A parameter's value in one environment.
    pub fn param(&self, name: &str, env: usize) -> Result<f64, NameError> {
        let i = self.param_index(name)?;
        let (p, e) = self.locate(env);
        Ok(with_parts!(&self.parts, parts => {
            let b = &parts[p].b;
            b.params[i * b.stride + e].to_f64()
        }))
    }

    fn param_index(&self, name: &str) -> Result<usize, NameError> {
        self.scene
            .model()
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .scene
                    .model()
                    .params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                NameError(format!(
                    "unknown parameter `{name}` (the scene's parameters: {})",
                    known.join(", ")
                ))
            })
    }

    /// Sets control `index` (in declaration order) in one environment, clamped to its range.
    pub fn set_control(&mut self, index: usize, env: usize, value: f64) {
        let c = &self.scene.model().controls[index];
        let v = c.bounds.map_or(value, |(lo, hi)| value.clamp(lo, hi));
        let (p, e) = self.locate(env);
        with_parts!(&mut self.parts, parts => {
            let b = &mut parts[p].b;
            b.controls[index * b.stride + e] = Real::from_f64(v);
        });
    }

    /// The partition holding `env`, and the environment's index in it.
    fn locate(&self, env: usize) -> (usize, usize) {
        with_parts!(&self.parts, parts => {
            let p = parts
                .iter()
                .position(|p| env >= p.first && env < p.first + p.len)
                .expect("environment in range");
            (p, env - parts[p].first)
        })
    }

    /// Every partition's first environment, environments and stride.
    fn ranges(&self) -> Vec<(usize, usize, usize)> {
        with_parts!(&self.parts, parts => parts.iter().map(|p| (p.first, p.len, p.b.stride)).collect())
    }

    /// Appends the events of every partition's last operation.
    fn collect_events(&mut self) {
        with_parts!(&self.parts, parts => for p in parts {
            self.events.extend(p.events.iter().cloned());
        });
    }

    /// One step of every environment.
    pub fn step(&mut self) {
        let scene = self.scene;
        let step = self.step;
        with_parts!(&mut self.parts, parts => parts.par_iter_mut().for_each(|p| p.step(scene, step)));
        self.step += 1;
        self.collect_events();
    }

    /// Takes one implicit Euler substep from the current state, recording the
    /// gradient norm of the incremental potential at every Newton iteration,
    /// `[iteration][env]` (for convergence studies). Explicit scenes return nothing.
    #[doc(hidden)] // public for the tests (tests/physics.rs), not a user API
    pub fn newton_trace(&mut self) -> Vec<Vec<f64>> {
        let scene = self.scene;
        let joule_compiler::model::Integrator::ImplicitEuler {
            iterations,
            tolerance,
        } = scene.model().settings.integrator
        else {
            return vec![];
        };
        let h = scene.substep();
        let mut traces = vec![];
        with_parts!(&mut self.parts, parts => for p in parts {
            let mut t = vec![];
            p.implicit(scene, h, iterations, tolerance, self.step, Some(&mut t));
            traces.push(t);
        });
        let iters = traces.iter().map(Vec::len).max().unwrap_or(0);
        (0..iters)
            .map(|i| {
                traces
                    .iter()
                    .flat_map(|t| t.get(i).cloned().unwrap_or_default())
                    .collect()
            })
            .collect()
    }

    /// `n` steps.
    pub fn rollout(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Evaluates every output (observe, reward, loss, done) at the current state:
    /// row-major `[output row][env]`.
    pub fn outputs(&mut self) -> Vec<Vec<f64>> {
        let rows = self.scene.compiled.layout().output_rows();
        let scene = self.scene;
        let mut out = vec![vec![0.0; self.batch]; rows];
        with_parts!(&mut self.parts, parts => {
            parts.par_iter_mut().for_each(|p| p.outputs(scene));
            for p in parts.iter() {
                let s = p.b.stride;
                for (r, row) in out.iter_mut().enumerate() {
                    step::load(&mut row[p.first..p.first + p.len], &p.b.outputs[r * s..r * s + p.len]);
                }
            }
        });
        out
    }

    /// The total potential energy of every environment (all `energy` items,
    /// including the automatic rigidity), at the current positions.
    pub fn potential_energy(&mut self) -> Vec<f64> {
        let scene = self.scene;
        let mut out = vec![0.0; self.batch];
        with_parts!(&mut self.parts, parts => {
            parts.par_iter_mut().for_each(|p| p.potential_energy(scene));
            for p in parts.iter() {
                step::load(&mut out[p.first..p.first + p.len], &p.b.energy[..p.len]);
            }
        });
        out
    }

    /// The components of one named output per environment (`[component][env]`).
    pub fn output(&mut self, name: &str) -> Vec<Vec<f64>> {
        let Some(info) = self.scene.compiled.layout().output(name).cloned() else {
            return vec![];
        };
        let all = self.outputs();
        all[info.offset..info.offset + info.len].to_vec()
    }

    /// The free DOFs' positions of one environment.
    pub fn positions(&self, env: usize) -> Vec<f64> {
        self.column(env, State::Pos)
    }

    /// The free DOFs' velocities of one environment.
    pub fn velocities(&self, env: usize) -> Vec<f64> {
        self.column(env, State::Vel)
    }

    /// One environment's free rows of the positions or velocities.
    fn column(&self, env: usize, which: State) -> Vec<f64> {
        let (p, e) = self.locate(env);
        let n = self.scene.dofs();
        with_parts!(&self.parts, parts => {
            let b = &parts[p].b;
            let rows = match which {
                State::Pos => &b.x,
                State::Vel => &b.v,
                State::PrevPos => &b.prev_x,
                State::PrevVel => &b.prev_v,
            };
            (0..n).map(|r| rows[r * b.stride + e].to_f64()).collect()
        })
    }

    /// Sets the free DOFs' positions and velocities of one environment (and
    /// forgets that it diverged).
    pub fn set_state(&mut self, env: usize, x: &[f64], v: &[f64]) {
        let (p, e) = self.locate(env);
        let n = self.scene.dofs();
        with_parts!(&mut self.parts, parts => {
            let part = &mut parts[p];
            let s = part.b.stride;
            for r in 0..n {
                part.b.x[r * s + e] = Real::from_f64(x[r]);
                part.b.v[r * s + e] = Real::from_f64(v[r]);
            }
            part.diverged[e] = false;
        });
    }

    /// Puts one environment back at the scene's initial state, with
    /// `jitter()` added to its velocities (see [`Scene::initial_dofs`]), and
    /// forgets that it diverged.
    pub fn reset_env(&mut self, env: usize, jitter: impl FnMut() -> f64) {
        let (x, v) = self.scene.initial_dofs(jitter);
        self.set_state(env, &x, &v);
    }
}
