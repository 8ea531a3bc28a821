//! Kernel IR: for each kernel, one loop per template over its instance table,
//! each with a scalar IR graph and where its results go. Two passes build it
//! (see [`crate::passes`]): [`lower()`] lays out the buffers and lowers every
//! loop's terms to IR, [`differentiate()`] adds the derivatives each kernel
//! computes. The interpreter and the Cranelift backend both execute exactly
//! these loops.

mod differentiate;
mod guard;
mod lower;

pub use differentiate::differentiate;
pub use guard::{cone, Guard};
pub use lower::{lower, Lowered};

use crate::ir::{At, Graph, Id, Leaf, Op};
use crate::model::*;
use joule_grammar::{Diagnostic, Severity};
use std::fmt::Write;

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
    /// The kind's position in [`KernelKind::ALL`] (its declaration order).
    pub const fn index(self) -> usize {
        self as usize
    }

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
    /// A mask under which every result is zero ([`Guard`]): an instance
    /// may be skipped on the lanes where it says so.
    pub guard: Option<Guard>,
}

impl LoopIr {
    /// Where instance `i` of a guarded loop of a Hessian-block kernel flags
    /// whether its guard has it engaged: the row of its block's first row,
    /// second entry (upper triangle, which holds nothing else), 1 on each
    /// lane where the guard has the instance engaged, 0 where it does not
    /// (its block is then zero there). `None` for other loops and for
    /// one-DOF instances (no spare entry).
    pub fn engaged_row(&self, i: usize) -> Option<usize> {
        let w = self.dof_width;
        // A Hessian-block kernel's loops write blocks and nothing else.
        let blocks = matches!(self.outputs.first(), Some((_, Dest::Block(_))));
        (self.guard.is_some() && w >= 2 && blocks).then_some(self.block_base + i * w * w + 1)
    }
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
            // Entries whose derivative simplified to the constant 0.
            let mut zero = vec![true; w * w];
            for (id, dest) in &lp.outputs {
                if let Dest::Block(k) = dest {
                    zero[*k as usize] = lp.graph.value(*id) == Some(0.0);
                }
            }
            let zero = std::rc::Rc::new(zero);
            (0..lp.count).flat_map(move |i| {
                let dofs = &lp.dofs[i * w..(i + 1) * w];
                let zero = zero.clone();
                (0..w).flat_map(move |a| {
                    let zero = zero.clone();
                    (0..=a).map(move |c| BlockEntry {
                        row: lp.block_base + i * w * w + a * w + c,
                        a: dofs[a] as usize,
                        c: dofs[c] as usize,
                        mirrored: a != c,
                        zero: zero[a * w + c],
                        engaged: lp.engaged_row(i),
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
    /// The kernel's expression for it is the constant 0 (the energy does not
    /// couple these two state entries at all).
    pub zero: bool,
    /// Its instance's engagement flag ([`LoopIr::engaged_row`]): where it
    /// is 0 on a lane, the whole block is zero there.
    pub engaged: Option<usize>,
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

/// All kernel IR of a model.
pub struct Kernels {
    /// Buffer layout.
    pub layout: Layout,
    /// Kernels in [`KernelKind::ALL`] order.
    pub kernels: Vec<KernelIr>,
    /// Whether any template has a `backward =` surrogate. Without one, the
    /// surrogate kernels are empty and their forward twins are used instead.
    pub has_surrogates: bool,
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

    /// Warnings about the kernels at `precision`: under f32, the constants
    /// [`Kernels::beyond_f32`] finds. The warning has no span (a constant of
    /// the IR may come from the prelude, a `rest(...)` site or folding, and
    /// the precision may be the command line's, not the scene's `settings`).
    pub fn precision_warnings(&self, precision: Precision) -> Vec<Diagnostic> {
        let lost = match precision {
            Precision::F32 => self.beyond_f32(),
            Precision::F64 => return vec![],
        };
        if lost.is_empty() {
            return vec![];
        }
        let shown: Vec<String> = lost.iter().take(5).map(|x| format!("{x:e}")).collect();
        vec![Diagnostic::without_span(
            Severity::Warning,
            "joule::f32_constant",
            format!(
                "{} constant{} of this scene's energies and outputs cannot be held in f32 ({}{}): each rounds to 0 or to infinity under `precision = f32`",
                lost.len(),
                if lost.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if lost.len() > 5 { ", ..." } else { "" }
            ),
        )
        .with_help("use constants within 1.2e-38..3.4e38, or f64")]
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

/// Both passes, [`lower()`] then [`differentiate()`]: the IR of every kernel
/// of a model (for `--emit` and tests; [`crate::passes::compile`] times them).
pub fn build(model: &Model) -> Kernels {
    differentiate(model, lower(model))
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
            if let Some(g) = lp.guard {
                let _ = writeln!(out, "  zero where %{} is {}", g.mask, g.zero_when);
            }
            for (id, d) in &lp.outputs {
                let _ = writeln!(out, "  {d:?} <- %{id}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::KernelKind;

    #[test]
    fn every_kind_sits_at_its_index_in_all() {
        for (k, kind) in KernelKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), k, "{kind:?}");
        }
    }
}
