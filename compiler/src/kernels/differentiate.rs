//! Pass 5 (`diff`): each kernel's derivatives of its lowered loops, by
//! [`crate::diff`] (gradients, Hessian-vector products, Hessian blocks,
//! VJPs), then every loop's graph compacted to what its results need.

use super::guard::guard;
use super::lower::{Lowered, LoweredLoop, LoweredValues};
use super::{Dest, KernelIr, KernelKind, Kernels, LoopIr};
use crate::diff;
use crate::ir::{At, Graph, Id, Leaf, Op};
use crate::model::*;

/// Adds to every lowered loop the derivatives its kernel computes: the
/// kernels' final IR.
pub fn differentiate(model: &Model, lowered: Lowered) -> Kernels {
    let Lowered {
        layout,
        has_surrogates,
        implicit_step,
        rows,
        block_base,
        kernels,
    } = lowered;
    let kernels = kernels
        .into_iter()
        .map(|(kind, loops)| KernelIr {
            kind,
            loops: loops
                .into_iter()
                .map(|LoweredLoop { graph, values }| match values {
                    LoweredValues::Template { index, value } => {
                        let t = &model.templates[index];
                        let (g, outputs) = template_loop(t, graph, value, kind, implicit_step);
                        finish(
                            t.name.clone(),
                            &g,
                            &outputs,
                            t,
                            &rows[index],
                            block_base[index],
                        )
                    }
                    LoweredValues::Outputs(comps) => outputs_loop(graph, &comps, kind),
                })
                .collect(),
        })
        .collect();
    Kernels {
        layout,
        kernels,
        has_surrogates,
    }
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

/// A template loop's results for `kind`, from its lowered potential `e`.
fn template_loop(
    t: &Template,
    mut g: Graph,
    e: Id,
    kind: KernelKind,
    implicit_step: Option<f64>,
) -> (Graph, Vec<(Id, Dest)>) {
    // Explicit: dissipations are differentiated in velocities. Implicit:
    // everything is a function of positions.
    let primary = if t.kind == EnergyKind::Energy || implicit_step.is_some() {
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
    (g, outputs)
}

/// A template's loop: its compacted graph and its instance tables.
fn finish(
    name: String,
    g: &Graph,
    outputs: &[(Id, Dest)],
    t: &Template,
    rows: &[u32],
    block_base: usize,
) -> LoopIr {
    let (graph, outputs) = compact(g, outputs);
    let guard = guard(&graph, &roots(&outputs));
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
        guard,
    }
}

/// The `outputs` loop of `kind`: the components themselves, or the VJP of
/// `out_seed . outputs`.
fn outputs_loop(mut g: Graph, comps: &[Id], kind: KernelKind) -> LoopIr {
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
    let (graph, outputs) = compact(&g, &outputs);
    let guard = guard(&graph, &roots(&outputs));
    LoopIr {
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
        guard,
    }
}

fn roots(outputs: &[(Id, Dest)]) -> Vec<Id> {
    outputs.iter().map(|(id, _)| *id).collect()
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
