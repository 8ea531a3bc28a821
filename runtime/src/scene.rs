//! [`Scene`]: a compiled scene ready to be batched: the compiler's kernels
//! ([`joule_compiler::compile`]) with what the runtime plans for them (the
//! mass model, the sparse Cholesky plan of implicit steps, DOF names), and
//! [`CompileError`] for a scene that does not compile.

use crate::joints::Tree;
use crate::mass::MassModel;
use crate::sim::Sim;
use crate::sparse::Direct;
use crate::step;
use joule_compiler::abi::{Buffers, Real};
use joule_compiler::compiled::{Backend, CompiledScene};
use joule_compiler::kernels::{KernelIr, KernelKind};
use joule_compiler::model::{
    Integrator, JointKind, Kinematics, Model, Precision, State, SurrogateMode,
};
use joule_compiler::start::{MassScales, Start};
use joule_compiler::{Diagnostic, Severity};

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

impl From<Diagnostic> for CompileError {
    /// One diagnostic without a span (code generation failed, the file
    /// could not be read), rendered as plain text.
    fn from(d: Diagnostic) -> Self {
        CompileError {
            rendered: d.render_plain(),
            diagnostics: vec![d],
        }
    }
}

/// Most bytes of simulator storage one batch may take ([`Scene::max_batch`]):
/// the same bound as one training iteration's rollouts.
pub const MAX_BATCH_BYTES: u64 = 32 << 30;

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
    pub(crate) explicit_reads_prev: bool,
    /// Whether outputs read `prev(..)`: the state at the start of the step
    /// (before its first substep), which a step of several substeps keeps.
    pub(crate) outputs_read_prev: bool,
    /// Whether an energy reads `held(..)`: the step's solution held fixed in
    /// its potential, which the solver updates to a fixed point.
    pub(crate) holds: bool,
    /// The plan of the joint trees (`None`: no body has a joint).
    tree: Option<Tree>,
    /// The compiled surrogate model, in [`SurrogateMode::Model`].
    surrogate: Option<Box<Scene>>,
    /// The initial state's fields that read parameters.
    start: Start,
    /// The masses that read parameters in an explicit step.
    mass_scales: MassScales,
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
        let checked = joule_compiler::check_path(path).map_err(|e| {
            CompileError::from(Diagnostic::without_span(
                Severity::Error,
                "joule::io",
                format!("cannot read `{}`: {e}", path.display()),
            ))
        })?;
        Self::from_checked(checked, backend)
    }

    /// From the front end's result (its timings continue in
    /// [`CompiledScene::timings`]).
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
        let surrogate = Self::surrogate_of(&model);
        Self::compiled(joule_compiler::compile(model, backend, checked.timings)?)?
            .with_surrogate(surrogate, backend)
    }

    /// From a resolved model.
    pub fn from_model(model: Model, backend: Backend) -> Result<Scene, CompileError> {
        let surrogate = Self::surrogate_of(&model);
        Self::compiled(joule_compiler::compile(model, backend, vec![])?)?
            .with_surrogate(surrogate, backend)
    }

    /// The surrogate model ([`Model::surrogate_model`]) of a scene whose
    /// gradients differentiate it (`surrogate = model`), if any energy has a
    /// surrogate.
    fn surrogate_of(model: &Model) -> Option<Model> {
        (model.settings.surrogate == SurrogateMode::Model)
            .then(|| model.surrogate_model())
            .flatten()
    }

    /// This scene with its surrogate model compiled, if it has one.
    fn with_surrogate(
        mut self,
        model: Option<Model>,
        backend: Backend,
    ) -> Result<Scene, CompileError> {
        let Some(m) = model else { return Ok(self) };
        let surrogate = Self::compiled(joule_compiler::compile(m, backend, vec![])?)?;
        // Only energies' bodies differ: the layouts agree by construction.
        if surrogate.compiled.layout() != self.compiled.layout() {
            return Err(CompileError::from(Diagnostic::without_span(
                Severity::Error,
                "joule::internal",
                "the surrogate model's buffer layout differs from the scene's (a compiler bug)",
            )));
        }
        self.surrogate = Some(Box::new(surrogate));
        Ok(self)
    }

    /// The surrogate model whose steps the adjoint differentiates
    /// (`surrogate = model` in a scene with `backward =` surrogates): it has
    /// the scene's buffer layout, so a partition's state, parameters and
    /// controls carry over to it unchanged.
    pub fn surrogate_model(&self) -> Option<&Scene> {
        self.surrogate.as_deref()
    }

    /// What the runtime plans for compiled kernels: the mass model, the
    /// sparse Cholesky plan of implicit steps, the DOFs' names.
    fn compiled(compiled: CompiledScene) -> Result<Scene, CompileError> {
        let model = &compiled.model;
        let mass = MassModel::new(model);
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
        // Joint coordinate rows: `A.q` (one coordinate) or `A.q[k]`, as
        // observations read them; a free joint's displacement and rotation
        // vector from the initial pose, `A.free[0..6]`.
        for b in &model.bodies {
            let Some(att) = &b.joint else { continue };
            let coords = att.coordinates() as usize;
            for k in 0..coords {
                let name = if att.joints.iter().any(|j| j.kind == JointKind::Free) {
                    format!("{}.free[{k}]", b.name)
                } else if coords == 1 {
                    format!("{}.q", b.name)
                } else {
                    format!("{}.q[{k}]", b.name)
                };
                if let Some(slot) = dof_names.get_mut(att.coord as usize + k) {
                    *slot = name;
                }
            }
        }
        let tree = Tree::new(model, &mass, |k| compiled.kernels.get(k))?;
        let direct = (tree.is_none() && model.settings.integrator.is_implicit())
            .then(|| {
                Direct::plan(
                    compiled.layout().dofs,
                    &mass,
                    |k| compiled.kernels.get(k),
                    step::DIRECT_FLOP_LIMIT,
                )
            })
            .flatten();
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
        let outputs_read_prev = {
            let ir = compiled.kernels.get(KernelKind::Outputs);
            ir.reads(State::PrevPos) || ir.reads(State::PrevVel)
        };
        let holds = KernelKind::ALL
            .iter()
            .any(|k| compiled.kernels.get(*k).reads(State::Held));
        let start = Start::new(model);
        let mass_scales = MassScales::new(model);
        Ok(Scene {
            compiled,
            mass,
            direct,
            dof_names,
            explicit_reads_prev,
            outputs_read_prev,
            holds,
            tree,
            surrogate: None,
            start,
            mass_scales,
        })
    }

    /// Why gradients through this scene are not available, if they are not:
    /// symplectic Euler and `rk4` in joint coordinates have no adjoint yet,
    /// and implicit Euler with linear kinematics (MuJoCo's Euler) has one
    /// for scenes of joint trees alone, whose masses read no params.
    pub fn gradients_unavailable(&self) -> Option<&'static str> {
        let tree = self.tree.as_ref()?;
        match self.model().settings.integrator {
            Integrator::ImplicitEuler {
                kinematics: Kinematics::Linear,
                ..
            } if tree.n != tree.joint_coords || self.holds || !self.mass_scales.is_empty() => Some(
                "gradients through implicit Euler with linear kinematics (MuJoCo's Euler) are built for scenes of joint trees alone, without held values or masses that read params: drop `kinematics = linear` from `implicit_euler(..)` in `settings` to differentiate this scene",
            ),
            Integrator::SymplecticEuler => Some(
                "gradients through symplectic Euler in joint coordinates are not built yet: set `integrator = implicit_euler(..)` in `settings` to differentiate this scene",
            ),
            Integrator::RungeKutta4 { .. } => Some(
                "gradients through `rk4` are not built yet: use `integrator = implicit_euler(..)` in `settings` to differentiate this scene",
            ),
            Integrator::ImplicitEuler { .. } => None,
        }
    }

    /// The plan of the scene's joint trees, if any body has a joint.
    pub fn tree(&self) -> Option<&Tree> {
        self.tree.as_ref()
    }

    /// Warnings about the compiled scene (f32 constants that round to 0 or
    /// infinity): diagnostics without spans (see
    /// [`joule_compiler::kernels::Kernels::precision_warnings`]); the CLI prints them.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.compiled.warnings
    }

    /// The resolved model.
    pub fn model(&self) -> &Model {
        &self.compiled.model
    }

    /// The substep length `dt / substeps`.
    pub fn substep(&self) -> f64 {
        self.compiled.model.settings.substep()
    }

    /// Substeps per step (at least 1).
    pub fn substeps(&self) -> usize {
        self.compiled.model.settings.substep_count()
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
    /// `jitter()` added to every particle velocity component, every body's
    /// linear and angular velocity component and every joint rate (for
    /// randomised resets; `|| 0.0` gives the model's own state). Fields that
    /// read parameters take their values at the declared parameters.
    pub fn initial_dofs(&self, jitter: impl FnMut() -> f64) -> (Vec<f64>, Vec<f64>) {
        self.start.dofs(self.model(), None, jitter)
    }

    /// The initial state with these parameters (one per declared parameter):
    /// [`Scene::initial_dofs`] with the fields that read parameters
    /// evaluated from `params`.
    pub fn start_dofs(&self, params: &[f64], jitter: impl FnMut() -> f64) -> (Vec<f64>, Vec<f64>) {
        self.start.dofs(self.model(), Some(params), jitter)
    }

    /// The initial state as a function of the parameters.
    pub(crate) fn start(&self) -> &Start {
        &self.start
    }

    /// The scales of the masses that read parameters in an explicit step.
    pub(crate) fn mass_scales(&self) -> &MassScales {
        &self.mass_scales
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

    /// A batch split into `threads` partitions (fewer if it has fewer SIMD
    /// vectors), or a multiple of that where a partition would leave the
    /// cache (at most 256 KiB of storage each for implicit scenes, and
    /// at least 8 lanes; see [`crate::sim`]); rayon runs them in parallel.
    pub fn batch_threads(&self, batch: usize, threads: usize) -> Sim<'_> {
        Sim::new(self, batch, threads)
    }

    /// The most environments one batch of this scene may hold: as many as
    /// [`MAX_BATCH_BYTES`] of simulator storage take (at least one). A
    /// command checks its batch against it before allocating.
    pub fn max_batch(&self) -> usize {
        (MAX_BATCH_BYTES / self.lane_bytes().max(1) as u64).clamp(1, usize::MAX as u64) as usize
    }

    /// Bytes one environment occupies in a partition's storage: the kernel
    /// buffers (in the scene's precision), the integrator's f64 vectors and
    /// the sparse factor.
    pub fn lane_bytes(&self) -> usize {
        let l = self.compiled.layout();
        let kernel = match self.model().settings.precision {
            Precision::F64 => Buffers::<f64>::lane_bytes(l),
            Precision::F32 => Buffers::<f32>::lane_bytes(l),
        };
        let solver = self.direct.as_ref().map_or(6 * self.dofs(), |d| d.nnz());
        kernel + 8 * (8 * self.dofs() + solver)
    }
}
