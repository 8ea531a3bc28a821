//! Pass 4 (`ir`): the buffer layout, and every kernel's loops with their
//! terms lowered to scalar IR (one graph per kernel and template, the
//! template's body or its `backward =` surrogate). [`super::differentiate()`]
//! adds the derivatives to these graphs.

use super::{KernelKind, Layout, OutputInfo};
use crate::ir::lower::Lowerer;
use crate::ir::{At, Graph, Id, Leaf};
use crate::model::*;
use std::collections::HashMap;

/// Every kernel's loops lowered to IR, not yet differentiated: the input of
/// [`super::differentiate()`].
pub struct Lowered {
    /// Buffer layout.
    pub(super) layout: Layout,
    /// Whether any template has a `backward =` surrogate.
    pub(super) has_surrogates: bool,
    /// Implicit integration's substep: velocities became position differences.
    pub(super) implicit_step: Option<f64>,
    /// Per template, its instances' state rows (pinned rows for fixed DOFs).
    pub(super) rows: Vec<Vec<u32>>,
    /// Per template, the first row of its Hessian blocks.
    pub(super) block_base: Vec<usize>,
    /// Per kernel, in [`KernelKind::ALL`] order, its lowered loops.
    pub(super) kernels: Vec<(KernelKind, Vec<LoweredLoop>)>,
}

/// One loop's graph after lowering, and what in it the kernel differentiates.
pub(super) struct LoweredLoop {
    /// The graph so far.
    pub(super) graph: Graph,
    /// Which loop it is, and its lowered values.
    pub(super) values: LoweredValues,
}

/// The lowered values of a loop.
pub(super) enum LoweredValues {
    /// Template `index`'s (scaled) potential, a scalar.
    Template { index: usize, value: Id },
    /// Every component of every objective, in output-row order (masks as 1/0).
    Outputs(Vec<Id>),
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

/// Lays out the buffers of a model and lowers every kernel's loops to IR.
pub fn lower(model: &Model) -> Lowered {
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
    let implicit_step = model
        .settings
        .integrator
        .is_implicit()
        .then(|| model.settings.substep());
    let has_surrogates = model.templates.iter().any(|t| t.backward.is_some());
    let kernels = KernelKind::ALL
        .iter()
        .map(|&kind| {
            let loops = match kind {
                k if k.base() != k && !has_surrogates => vec![],
                KernelKind::Outputs | KernelKind::OutputsVjp => {
                    outputs_loop(model).into_iter().collect()
                }
                _ => model
                    .templates
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| wants(kind, t.kind))
                    .map(|(i, t)| template_loop(t, i, kind, implicit_step))
                    .collect(),
            };
            (kind, loops)
        })
        .collect();
    Lowered {
        layout,
        has_surrogates,
        implicit_step,
        rows,
        block_base,
        kernels,
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

/// Template `index`'s body (or surrogate, for surrogate kernels) lowered for
/// `kind`; dissipations of implicit scenes scaled by the substep.
fn template_loop(
    t: &Template,
    index: usize,
    kind: KernelKind,
    implicit_step: Option<f64>,
) -> LoweredLoop {
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
        // Rows read by name: the last slots of the instance's DOF table.
        Input::Dof {
            at: DofAt::Global(g),
            state,
        } => match t.globals.binary_search(&g) {
            Ok(k) => Leaf::State(state, At::Slot(d + k as u16)),
            Err(_) => Leaf::State(state, At::Row(g)),
        },
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
    let mut g = Graph::new();
    let mut lowerer = Lowerer::new(&mut g, leaf);
    if let Some(h) = implicit_step {
        lowerer = lowerer.velocities_from_positions(h);
    }
    let mut e = lowerer.lower(body)[0];
    if let (Some(h), EnergyKind::Dissipation) = (implicit_step, t.kind) {
        // The incremental potential holds h D((x - x_t) / h).
        let hh = g.constant(h);
        e = g.mul(hh, e);
    }
    LoweredLoop {
        graph: g,
        values: LoweredValues::Template { index, value: e },
    }
}

/// Every objective lowered into one graph (none without objectives).
fn outputs_loop(model: &Model) -> Option<LoweredLoop> {
    if model.objectives.is_empty() {
        return None;
    }
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
    Some(LoweredLoop {
        graph: g,
        values: LoweredValues::Outputs(comps),
    })
}
