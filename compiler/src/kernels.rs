//! Kernel IR: for each kernel, one loop per template over its instance table,
//! each with a scalar IR graph and where its results go. Lowering (Term to IR)
//! and differentiation happen here; the interpreter and the Cranelift backend
//! both execute exactly these loops.

use crate::diff;
use crate::ir::lower::Lowerer;
use crate::ir::{At, Graph, Id, Leaf, Op};
use crate::model::*;
use joule_grammar::ast::{EnergyKind, ObjectiveKind};
use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The kernels a compiled scene provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Total potential energy per environment (`energy` += E).
    Energy,
    /// `grad` += dE/dx.
    Gradient,
    /// `grad` += dE/dx and `hv` += (d2E/dx2) `seed`.
    GradHvp,
    /// Per-instance Hessian blocks d2E/dx2 into `blocks`: the lower triangle
    /// of each (see [`KernelIr::block_entries`]).
    Hessian,
    /// Total dissipation potential D(v) per environment (`energy` += D). In
    /// implicit scenes velocities are `(x - prev_x)/h` and this kernel (and its
    /// derivatives, in positions) computes `h D`.
    Dissipation,
    /// `grad` += dD/dv (implicit scenes: d(h D)/dx).
    DissipationGradient,
    /// `grad` += dD/dv and `hv` += (d2D/dv2) `seed`.
    DissipationGradHvp,
    /// Per-instance Hessian blocks d2D/dv2 into `blocks`: the lower triangle
    /// of each (see [`KernelIr::block_entries`]).
    DissipationHessian,
    /// Adjoint VJPs: for s = seed . dE/dx + seed . dD/dv (surrogate bodies where given),
    /// ds/d(x, v, prev_x, prev_v) into `d_*` rows and ds/d(params, controls).
    Adjoint,
    /// Observations, rewards, losses and `done` masks into `outputs`.
    Outputs,
    /// VJP of the outputs: for s = out_seed . outputs, ds/d(state, params, controls).
    OutputsVjp,
    /// [`KernelKind::GradHvp`] of the `backward =` surrogates (for adjoint solves).
    SurrogateGradHvp,
    /// [`KernelKind::Hessian`] of the surrogates.
    SurrogateHessian,
    /// [`KernelKind::DissipationGradHvp`] of the surrogates.
    SurrogateDissipationGradHvp,
    /// [`KernelKind::DissipationHessian`] of the surrogates.
    SurrogateDissipationHessian,
}

impl KernelKind {
    /// Every kernel, in the order they are compiled.
    pub const ALL: [KernelKind; 15] = [
        KernelKind::Energy,
        KernelKind::Gradient,
        KernelKind::GradHvp,
        KernelKind::Hessian,
        KernelKind::Dissipation,
        KernelKind::DissipationGradient,
        KernelKind::DissipationGradHvp,
        KernelKind::DissipationHessian,
        KernelKind::Adjoint,
        KernelKind::Outputs,
        KernelKind::OutputsVjp,
        KernelKind::SurrogateGradHvp,
        KernelKind::SurrogateHessian,
        KernelKind::SurrogateDissipationGradHvp,
        KernelKind::SurrogateDissipationHessian,
    ];

    /// The forward kernel a surrogate kernel mirrors (itself for the others).
    pub fn base(self) -> KernelKind {
        match self {
            KernelKind::SurrogateGradHvp => KernelKind::GradHvp,
            KernelKind::SurrogateHessian => KernelKind::Hessian,
            KernelKind::SurrogateDissipationGradHvp => KernelKind::DissipationGradHvp,
            KernelKind::SurrogateDissipationHessian => KernelKind::DissipationHessian,
            k => k,
        }
    }

    /// Whether the kernel differentiates `backward =` surrogates instead of bodies.
    pub fn surrogate(self) -> bool {
        self == KernelKind::Adjoint || self.base() != self
    }

    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Energy => "energy",
            KernelKind::Gradient => "gradient",
            KernelKind::GradHvp => "grad_hvp",
            KernelKind::Hessian => "hessian",
            KernelKind::Dissipation => "dissipation",
            KernelKind::DissipationGradient => "dissipation_gradient",
            KernelKind::DissipationGradHvp => "dissipation_grad_hvp",
            KernelKind::DissipationHessian => "dissipation_hessian",
            KernelKind::Adjoint => "adjoint",
            KernelKind::Outputs => "outputs",
            KernelKind::OutputsVjp => "outputs_vjp",
            KernelKind::SurrogateGradHvp => "surrogate_grad_hvp",
            KernelKind::SurrogateHessian => "surrogate_hessian",
            KernelKind::SurrogateDissipationGradHvp => "surrogate_dissipation_grad_hvp",
            KernelKind::SurrogateDissipationHessian => "surrogate_dissipation_hessian",
        }
    }
}

/// Where a loop result is accumulated (`+=`) or stored (`=`, blocks and outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// `energy[env] +=`.
    Energy,
    /// `grad[row] +=`.
    Grad(At),
    /// `hv[row] +=`.
    Hv(At),
    /// `blocks[block_base + instance * w * w + k] =`.
    Block(u32),
    /// `d_state[row] +=` for the given state copy.
    DState(State, At),
    /// `d_params[p] +=`.
    DParam(u32),
    /// `d_controls[c] +=`.
    DControl(At),
    /// `outputs[k] =`.
    Output(u32),
}

/// One loop of a kernel: a template's graph run for each of its instances.
#[derive(Debug, Clone)]
pub struct LoopIr {
    /// The template (or `outputs`).
    pub name: String,
    /// The scalar graph (dead code removed).
    pub graph: Graph,
    /// Results and their destinations.
    pub outputs: Vec<(Id, Dest)>,
    /// Instances.
    pub count: usize,
    /// State rows per instance (`At::Slot(k)` reads entry k), row-major.
    pub dofs: Vec<u32>,
    /// Entries per instance in `dofs`.
    pub dof_width: usize,
    /// Control indices per instance, row-major.
    pub controls: Vec<u32>,
    /// Entries per instance in `controls`.
    pub control_width: usize,
    /// Constants per instance, row-major.
    pub consts: Vec<f64>,
    /// Entries per instance in `consts`.
    pub const_width: usize,
    /// First row of this loop's Hessian blocks.
    pub block_base: usize,
}

/// A kernel: its loops, run one after another on the same environment range.
#[derive(Debug, Clone)]
pub struct KernelIr {
    /// Which kernel.
    pub kind: KernelKind,
    /// The loops.
    pub loops: Vec<LoopIr>,
}

impl KernelIr {
    /// Whether some loop reads a row of the state buffer `state`.
    pub fn reads(&self, state: State) -> bool {
        self.loops.iter().any(|lp| {
            lp.graph
                .nodes()
                .iter()
                .any(|op| matches!(op, Op::Leaf(Leaf::State(s, _)) if *s == state))
        })
    }

    /// The entries a Hessian-block kernel writes: for every instance, the
    /// lower triangle of its `w x w` block in the instance's own DOF order
    /// (the block is symmetric).
    pub fn block_entries(&self) -> impl Iterator<Item = BlockEntry> + '_ {
        self.loops.iter().flat_map(|lp| {
            let w = lp.dof_width;
            (0..lp.count).flat_map(move |i| {
                let dofs = &lp.dofs[i * w..(i + 1) * w];
                (0..w).flat_map(move |a| {
                    (0..=a).map(move |c| BlockEntry {
                        row: lp.block_base + i * w * w + a * w + c,
                        a: dofs[a] as usize,
                        c: dofs[c] as usize,
                        mirrored: a != c,
                    })
                })
            })
        })
    }
}

/// One entry of an instance's Hessian block (see [`KernelIr::block_entries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEntry {
    /// Its row in the `blocks` buffer.
    pub row: usize,
    /// The state row of the entry's row.
    pub a: usize,
    /// The state row of the entry's column.
    pub c: usize,
    /// Off the block's diagonal: the entry is both `H[a, c]` and `H[c, a]`.
    pub mirrored: bool,
}

/// One named output (observation, reward, loss, done) in the `outputs` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputInfo {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ObjectiveKind,
    /// First row.
    pub offset: usize,
    /// Components.
    pub len: usize,
}

/// Row counts of the buffers kernels read and write.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Free DOFs (rows `0..dofs` of state buffers).
    pub dofs: usize,
    /// Values of the pinned rows `dofs..dofs + pinned.len()` (fixed DOFs).
    pub pinned: Vec<f64>,
    /// Parameters.
    pub params: usize,
    /// Controls.
    pub controls: usize,
    /// Output rows.
    pub outputs: Vec<OutputInfo>,
    /// Hessian-block rows of the energy templates, then of the dissipations.
    pub block_rows: [usize; 2],
}

impl Layout {
    /// The output (observe, reward, loss or done) of this name.
    pub fn output(&self, name: &str) -> Option<&OutputInfo> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Rows of a state buffer (free and pinned).
    pub fn state_rows(&self) -> usize {
        self.dofs + self.pinned.len()
    }

    /// Rows of the output buffer.
    pub fn output_rows(&self) -> usize {
        self.outputs.iter().map(|o| o.len).sum()
    }
}

/// All kernel IR of a model, with the time spent lowering and differentiating.
pub struct Kernels {
    /// Buffer layout.
    pub layout: Layout,
    /// Kernels in [`KernelKind::ALL`] order.
    pub kernels: Vec<KernelIr>,
    /// Whether any template has a `backward =` surrogate. Without one, the
    /// surrogate kernels are empty and their forward twins are used instead.
    pub has_surrogates: bool,
    /// Time lowering terms to IR.
    pub lower_time: Duration,
    /// Time differentiating.
    pub diff_time: Duration,
}

impl Kernels {
    /// The nonzero constants of the kernels (in the code, or per instance)
    /// that f32 cannot hold: they round to 0 or overflow to infinity. In an
    /// f32 scene such a constant changes the physics silently (a guard
    /// `max(x, 1e-300)` becomes `max(x, 0)`, and a zero adjoint times an
    /// infinite derivative is NaN). Sorted, each once.
    pub fn beyond_f32(&self) -> Vec<f64> {
        let lost =
            |x: f64| x.is_finite() && x != 0.0 && ((x as f32) == 0.0 || !(x as f32).is_finite());
        let mut out: Vec<f64> = self
            .kernels
            .iter()
            .flat_map(|k| &k.loops)
            .flat_map(|lp| {
                let graph = &lp.graph;
                (0..graph.nodes().len())
                    .filter_map(move |id| graph.value(id as Id))
                    .chain(lp.consts.iter().copied())
            })
            .filter(|x| lost(*x))
            .collect();
        out.sort_by(f64::total_cmp);
        out.dedup();
        out
    }

    /// The IR of a kernel; without surrogates a surrogate kernel is its forward twin.
    pub fn get(&self, kind: KernelKind) -> &KernelIr {
        let kind = if self.has_surrogates {
            kind
        } else {
            kind.base()
        };
        self.kernels
            .iter()
            .find(|k| k.kind == kind)
            .expect("every kernel kind is built")
    }
}

/// Pinned rows for fixed DOFs, deduplicated by value.
struct Pins {
    first: usize,
    values: Vec<f64>,
    index: HashMap<u64, u32>,
}

impl Pins {
    fn row(&mut self, d: DofRef) -> u32 {
        match d {
            DofRef::Free(k) => k,
            DofRef::Fixed(v) => *self.index.entry(v.to_bits()).or_insert_with(|| {
                self.values.push(v);
                (self.first + self.values.len() - 1) as u32
            }),
        }
    }
}

/// Builds the IR of every kernel of a model.
pub fn build(model: &Model) -> Kernels {
    let mut pins = Pins {
        first: model.dof_count,
        values: vec![],
        index: HashMap::new(),
    };
    let rows: Vec<Vec<u32>> = model
        .templates
        .iter()
        .map(|t| t.dofs.iter().map(|d| pins.row(*d)).collect())
        .collect();
    let mut outputs = vec![];
    let mut offset = 0;
    for o in &model.objectives {
        let len = o.value.shape.size();
        outputs.push(OutputInfo {
            name: o.name.clone(),
            kind: o.kind,
            offset,
            len,
        });
        offset += len;
    }
    let mut block_rows = [0usize; 2];
    let mut block_base = vec![0usize; model.templates.len()];
    for (i, t) in model.templates.iter().enumerate() {
        let k = (t.kind == EnergyKind::Dissipation) as usize;
        block_base[i] = block_rows[k];
        block_rows[k] += t.count * t.dof_width * t.dof_width;
    }
    let layout = Layout {
        dofs: model.dof_count,
        pinned: pins.values,
        params: model.params.len(),
        controls: model.controls.len(),
        outputs,
        block_rows,
    };
    let implicit_step = match model.settings.integrator {
        Integrator::ImplicitEuler { .. } => {
            Some(model.settings.dt / model.settings.substeps.max(1) as f64)
        }
        Integrator::SymplecticEuler => None,
    };
    let mut b = Builder {
        lower_time: Duration::ZERO,
        diff_time: Duration::ZERO,
        implicit_step,
    };
    let has_surrogates = model.templates.iter().any(|t| t.backward.is_some());
    let kernels = KernelKind::ALL
        .iter()
        .map(|&kind| {
            let loops = match kind {
                k if k.base() != k && !has_surrogates => vec![],
                KernelKind::Outputs | KernelKind::OutputsVjp => {
                    b.outputs_loop(model, kind).into_iter().collect()
                }
                _ => model
                    .templates
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| wants(kind, t.kind))
                    .map(|(i, t)| b.template_loop(t, &rows[i], block_base[i], kind))
                    .collect(),
            };
            KernelIr { kind, loops }
        })
        .collect();
    Kernels {
        layout,
        kernels,
        has_surrogates,
        lower_time: b.lower_time,
        diff_time: b.diff_time,
    }
}

/// Whether a kernel runs over templates of this kind.
fn wants(kernel: KernelKind, t: EnergyKind) -> bool {
    use KernelKind::*;
    match kernel.base() {
        Energy | Gradient | GradHvp | Hessian => t == EnergyKind::Energy,
        Dissipation | DissipationGradient | DissipationGradHvp | DissipationHessian => {
            t == EnergyKind::Dissipation
        }
        Adjoint => true,
        _ => false,
    }
}

struct Builder {
    lower_time: Duration,
    diff_time: Duration,
    /// Implicit integration's substep: velocities become position differences.
    implicit_step: Option<f64>,
}

/// Every state, param and control leaf of a graph (sorted, for stable order).
fn inputs(g: &Graph) -> Vec<Leaf> {
    let mut v: Vec<Leaf> = g
        .nodes()
        .iter()
        .filter_map(|op| match op {
            Op::Leaf(l @ (Leaf::State(..) | Leaf::Param(_) | Leaf::Control(_))) => Some(*l),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn d_dest(l: Leaf) -> Dest {
    match l {
        Leaf::State(s, at) => Dest::DState(s, at),
        Leaf::Param(p) => Dest::DParam(p),
        Leaf::Control(at) => Dest::DControl(at),
        _ => unreachable!("only state, param and control leaves have VJP destinations"),
    }
}

impl Builder {
    fn template_loop(
        &mut self,
        t: &Template,
        rows: &[u32],
        block_base: usize,
        kind: KernelKind,
    ) -> LoopIr {
        // Argument offsets into the instance's DOF and control rows.
        let mut dof_base = vec![0u16; t.args.len()];
        let mut ctl_slot = vec![0u16; t.args.len()];
        let (mut d, mut c) = (0u16, 0u16);
        for (i, a) in t.args.iter().enumerate() {
            match a.binding {
                ArgBinding::Handle { width, .. } => {
                    dof_base[i] = d;
                    d += width;
                }
                ArgBinding::Control => {
                    ctl_slot[i] = c;
                    c += 1;
                }
                _ => {}
            }
        }
        let leaf = |i: Input| match i {
            Input::Dof {
                at: DofAt::Arg { arg, offset },
                state,
            } => Leaf::State(state, At::Slot(dof_base[arg as usize] + offset)),
            Input::Dof {
                at: DofAt::Global(g),
                state,
            } => Leaf::State(state, At::Row(g)),
            Input::Param(p) => Leaf::Param(p),
            Input::Control(c) => Leaf::Control(At::Row(c)),
            Input::ArgControl(a) => Leaf::Control(At::Slot(ctl_slot[a as usize])),
            Input::Const(k) => Leaf::Const(k),
        };
        let surrogate = kind.surrogate();
        let body = match (&t.backward, surrogate) {
            (Some(b), true) => b,
            _ => &t.body,
        };
        let start = Instant::now();
        let mut g = Graph::new();
        let mut lowerer = Lowerer::new(&mut g, leaf);
        if let Some(h) = self.implicit_step {
            lowerer = lowerer.velocities_from_positions(h);
        }
        let mut e = lowerer.lower(body)[0];
        if let (Some(h), EnergyKind::Dissipation) = (self.implicit_step, t.kind) {
            // The incremental potential holds h D((x - x_t) / h).
            let hh = g.constant(h);
            e = g.mul(hh, e);
        }
        self.lower_time += start.elapsed();

        let start = Instant::now();
        // Explicit: dissipations are differentiated in velocities. Implicit:
        // everything is a function of positions.
        let primary = if t.kind == EnergyKind::Energy || self.implicit_step.is_some() {
            State::Pos
        } else {
            State::Vel
        };
        let w = t.dof_width;
        let wrt: Vec<Leaf> = (0..w as u16)
            .map(|k| Leaf::State(primary, At::Slot(k)))
            .collect();
        let mut outputs = vec![];
        match kind.base() {
            KernelKind::Energy | KernelKind::Dissipation => outputs.push((e, Dest::Energy)),
            KernelKind::Gradient | KernelKind::DissipationGradient => {
                let grad = diff::gradient(&mut g, e, &wrt);
                outputs.extend(
                    grad.iter()
                        .enumerate()
                        .map(|(k, id)| (*id, Dest::Grad(At::Slot(k as u16)))),
                );
            }
            KernelKind::GradHvp | KernelKind::DissipationGradHvp => {
                let grad = diff::gradient(&mut g, e, &wrt);
                let hv = diff::tangents(&mut g, &grad, |g, l| match l {
                    Leaf::State(s, at) if s == primary => Some(g.leaf(Leaf::Seed(at))),
                    _ => None,
                });
                for k in 0..w {
                    outputs.push((grad[k], Dest::Grad(At::Slot(k as u16))));
                    outputs.push((hv[k], Dest::Hv(At::Slot(k as u16))));
                }
            }
            KernelKind::Hessian | KernelKind::DissipationHessian => {
                let grad = diff::gradient(&mut g, e, &wrt);
                for (j, column) in wrt.iter().enumerate() {
                    let col = diff::tangents(&mut g, &grad, |g, l| {
                        (l == *column).then(|| g.constant(1.0))
                    });
                    // Blocks are symmetric: the lower triangle is the whole
                    // block, and the upper's own operations are never emitted.
                    for (i, h) in col.into_iter().enumerate().skip(j) {
                        outputs.push((h, Dest::Block((i * w + j) as u32)));
                    }
                }
            }
            KernelKind::Adjoint => {
                let grad = diff::gradient(&mut g, e, &wrt);
                let mut s = g.constant(0.0);
                for (k, gk) in grad.iter().enumerate() {
                    let seed = g.leaf(Leaf::Seed(At::Slot(k as u16)));
                    let p = g.mul(seed, *gk);
                    s = g.add(s, p);
                }
                let wrt_all = inputs(&g);
                let ds = diff::gradient(&mut g, s, &wrt_all);
                outputs.extend(
                    wrt_all
                        .into_iter()
                        .zip(ds)
                        .filter(|(_, d)| g.value(*d) != Some(0.0))
                        .map(|(l, d)| (d, d_dest(l))),
                );
            }
            _ => unreachable!("template kernels only"),
        }
        self.diff_time += start.elapsed();
        self.finish(t.name.clone(), g, outputs, t, rows, block_base)
    }

    fn finish(
        &mut self,
        name: String,
        g: Graph,
        outputs: Vec<(Id, Dest)>,
        t: &Template,
        rows: &[u32],
        block_base: usize,
    ) -> LoopIr {
        let (graph, outputs) = compact(&g, &outputs);
        LoopIr {
            name,
            graph,
            outputs,
            count: t.count,
            dofs: rows.to_vec(),
            dof_width: t.dof_width,
            controls: t.controls.clone(),
            control_width: t.control_width,
            consts: t.consts.clone(),
            const_width: t.const_names.len(),
            block_base,
        }
    }

    fn outputs_loop(&mut self, model: &Model, kind: KernelKind) -> Option<LoopIr> {
        if model.objectives.is_empty() {
            return None;
        }
        let start = Instant::now();
        let mut g = Graph::new();
        let mut comps = vec![];
        {
            let leaf = |i: Input| match i {
                Input::Dof {
                    at: DofAt::Global(r),
                    state,
                } => Leaf::State(state, At::Row(r)),
                Input::Param(p) => Leaf::Param(p),
                Input::Control(c) => Leaf::Control(At::Row(c)),
                other => unreachable!("objectives read global inputs only, not {other:?}"),
            };
            let mut l = Lowerer::new(&mut g, leaf);
            for o in &model.objectives {
                comps.extend(l.lower(&o.value));
            }
        }
        // Masks (`done`) become 1.0 / 0.0.
        for c in comps.iter_mut() {
            if g.op(*c).is_mask() {
                let (one, zero) = (g.constant(1.0), g.constant(0.0));
                *c = g.select(*c, one, zero);
            }
        }
        self.lower_time += start.elapsed();
        let start = Instant::now();
        let outputs: Vec<(Id, Dest)> = match kind {
            KernelKind::Outputs => comps
                .iter()
                .enumerate()
                .map(|(k, c)| (*c, Dest::Output(k as u32)))
                .collect(),
            _ => {
                let mut s = g.constant(0.0);
                for (k, c) in comps.iter().enumerate() {
                    let seed = g.leaf(Leaf::OutSeed(k as u32));
                    let p = g.mul(seed, *c);
                    s = g.add(s, p);
                }
                let wrt = inputs(&g);
                let ds = diff::gradient(&mut g, s, &wrt);
                wrt.into_iter()
                    .zip(ds)
                    .filter(|(_, d)| g.value(*d) != Some(0.0))
                    .map(|(l, d)| (d, d_dest(l)))
                    .collect()
            }
        };
        self.diff_time += start.elapsed();
        let (graph, outputs) = compact(&g, &outputs);
        Some(LoopIr {
            name: "outputs".into(),
            graph,
            outputs,
            count: 1,
            dofs: vec![],
            dof_width: 0,
            controls: vec![],
            control_width: 0,
            consts: vec![],
            const_width: 0,
            block_base: 0,
        })
    }
}

/// Removes dead nodes and orders results by the node that computes them, the
/// order in which every backend writes them (so accumulation order, and thus
/// rounding, is the same everywhere).
fn compact(g: &Graph, outputs: &[(Id, Dest)]) -> (Graph, Vec<(Id, Dest)>) {
    let roots: Vec<Id> = outputs.iter().map(|(id, _)| *id).collect();
    let (graph, roots) = g.extract(&roots);
    let mut out: Vec<(Id, Dest)> = roots
        .into_iter()
        .zip(outputs.iter().map(|(_, d)| *d))
        .collect();
    out.sort_by_key(|(id, _)| *id);
    (graph, out)
}

/// The text dump of some kernels (`--emit ir` shows `energy` and `outputs`,
/// `--emit grad-ir` the derivative kernels), all loops or those of one `template`.
pub fn dump(kernels: &Kernels, which: &[KernelKind], template: Option<&str>) -> String {
    let mut out = String::new();
    let l = &kernels.layout;
    let _ = writeln!(
        out,
        "layout dofs = {} pinned = {} params = {} controls = {} outputs = {} blocks = {:?}",
        l.dofs,
        l.pinned.len(),
        l.params,
        l.controls,
        l.output_rows(),
        l.block_rows
    );
    for k in kernels.kernels.iter().filter(|k| which.contains(&k.kind)) {
        let _ = writeln!(out, "kernel {}", k.kind.name());
        for lp in k
            .loops
            .iter()
            .filter(|lp| template.is_none_or(|t| lp.name == t))
        {
            let _ = writeln!(
                out,
                " loop {} x {} (dofs {}, controls {}, consts {}): {} nodes",
                lp.name,
                lp.count,
                lp.dof_width,
                lp.control_width,
                lp.const_width,
                lp.graph.len()
            );
            lp.graph.dump(&mut out);
            for (id, d) in &lp.outputs {
                let _ = writeln!(out, "  {d:?} <- %{id}");
            }
        }
    }
    out
}
