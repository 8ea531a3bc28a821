//! MuJoCo's tendon equalities as a spring and a damper on the tendon's
//! violation. MuJoCo's soft constraint moves its violation `r` as `r'' =
//! (1 - d) a0 + d a_ref`, `a_ref = -b r' - k d r` (`b = 2 / (dmax t)`, `k =
//! 1 / (dmax t zeta)^2` from `solref = (t, zeta)`, `d` the impedance of
//! `solimp`), on the effective mass `1 / (J M^-1 J^T)` of the reference
//! pose (MuJoCo's `tendon_invweight0`). The importer writes the force `m d
//! a_ref` of that motion: the spring `m d^2 k` and the damper `m d b`,
//! with `d` the impedance at no violation (`solimp`'s first value). What
//! it leaves out is the part `-d a0` that cancels the other forces along
//! the tendon: under a steady load the imported constraint gives way
//! `1 / (1 - d)` times as far as MuJoCo's (both are small: the constraint
//! is stiff).

use super::sensors::{tendon_value, Place};
use super::write::{num, plus};
use super::*;
use crate::math::*;
use nalgebra::{DMatrix, DVector};
use std::collections::HashMap;
use std::fmt::Write;

/// The rate of change of each degree of freedom at a point: an angular
/// velocity about `at` (hinges) or a velocity (slides).
enum Dof {
    Turn { axis: V3, at: V3 },
    Slide { axis: V3 },
}

impl Dof {
    /// The velocity of `point` and the angular velocity, per unit rate.
    fn motion(&self, point: V3) -> (V3, V3) {
        match *self {
            Dof::Turn { axis, at } => (cross(axis, sub(point, at)), axis),
            Dof::Slide { axis } => (axis, [0.0; 3]),
        }
    }
}

/// A degree of freedom of the model, with its armature and its body.
struct Coordinate {
    dof: Dof,
    armature: f64,
    body: usize,
}

/// The model's degrees of freedom in the reference pose, and each hinge's
/// and slide's index among them (by body and joint index).
fn dofs(m: &Mjcf) -> (Vec<Coordinate>, HashMap<(usize, usize), usize>) {
    const AXES: [V3; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let (mut out, mut index) = (vec![], HashMap::new());
    for (b, body) in m.bodies.iter().enumerate().skip(1) {
        for (ji, j) in body.joints.iter().enumerate() {
            let axis = rotate(body.xquat, j.axis);
            let at = add(body.xpos, rotate(body.xquat, j.pos));
            let of = |dof| Coordinate {
                dof,
                armature: j.armature,
                body: b,
            };
            match j.kind {
                JointKind::Hinge => {
                    index.insert((b, ji), out.len());
                    out.push(of(Dof::Turn { axis, at }));
                }
                JointKind::Slide => {
                    index.insert((b, ji), out.len());
                    out.push(of(Dof::Slide { axis }));
                }
                JointKind::Ball => {
                    out.extend(AXES.map(|axis| of(Dof::Turn { axis, at })));
                }
                JointKind::Free => {
                    out.extend(AXES.map(|axis| of(Dof::Slide { axis })));
                    let at = body.xpos;
                    out.extend(AXES.map(|axis| of(Dof::Turn { axis, at })));
                }
            }
        }
    }
    (out, index)
}

/// `J M^-1 J^T` of a fixed tendon in the reference pose (MuJoCo's
/// `tendon_invweight0`): `M` the joint-space mass matrix with armature,
/// `J` the tendon's coefficients; `None` where `M` is singular.
fn invweight(m: &Mjcf, t: &Tendon) -> Option<f64> {
    let (dofs, index) = dofs(m);
    let n = dofs.len();
    let mut mass = DMatrix::<f64>::zeros(n, n);
    let moves = |dof_body: usize, mut b: usize| loop {
        if b == dof_body {
            return true;
        }
        if b == 0 {
            return false;
        }
        b = m.bodies[b].parent;
    };
    for (b, body) in m.bodies.iter().enumerate().skip(1) {
        let mp = &body.mass;
        if mp.mass <= 0.0 {
            continue;
        }
        let r = qmat(body.xquat);
        let com = add(body.xpos, mul_mv(&r, mp.com));
        let inertia = rotate_tensor(&r, &mp.inertia);
        let on: Vec<(usize, (V3, V3))> = (dofs.iter().enumerate())
            .filter(|(_, d)| moves(d.body, b))
            .map(|(i, d)| (i, d.dof.motion(com)))
            .collect();
        for &(i, (vi, wi)) in &on {
            for &(j, (vj, wj)) in &on {
                mass[(i, j)] += mp.mass * dot(vi, vj) + dot(wi, mul_mv(&inertia, wj));
            }
        }
    }
    for (i, d) in dofs.iter().enumerate() {
        mass[(i, i)] += d.armature;
    }
    let mut j = DVector::<f64>::zeros(n);
    for &(joint, c) in &t.joints {
        j[index[&joint]] += c;
    }
    let x = mass.cholesky()?.solve(&j);
    Some(j.dot(&x))
}

/// The tendon equalities as energies and dissipations (appended to `out`);
/// a diagnostic for a tendon that does not move any mass.
pub(super) fn write_equalities(
    m: &Mjcf,
    places: &[Place],
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) -> Vec<Diagnostic> {
    let mut diags = vec![];
    if !m.equalities.is_empty() {
        writeln!(
            out,
            "\n// Tendon equalities: MuJoCo's soft constraint as a spring m d^2 k and a damper m d b\n// on the tendon's length (m its effective mass in the reference pose)."
        )
        .ok();
    }
    for e in &m.equalities {
        let t = &m.tendons[e.tendon];
        let w = match invweight(m, t) {
            Some(w) if w > 0.0 && w.is_finite() => w,
            _ => {
                diags.push(
                    Diagnostic::error(
                        "mjcf::invalid",
                        format!("the equality's tendon `{}` moves no mass", t.name),
                        e.span,
                        "no effective mass",
                    )
                    .with_help(
                        "a tendon equality holds a tendon whose joints move bodies with mass",
                    ),
                );
                continue;
            }
        };
        let ((time, ratio), (d, dmax)) = (e.solref, e.solimp);
        let k = 1.0 / (dmax * time * ratio).powi(2);
        let b = 2.0 / (dmax * time);
        let (spring, damper) = (d * d * k / w, d * b / w);
        // The length in the reference pose: the joints at their `ref`.
        let reference: f64 = t
            .joints
            .iter()
            .map(|&((bi, ji), c)| c * m.bodies[bi].joints[ji].reference)
            .sum();
        let name = ident(&format!("{}_equality", t.name));
        writeln!(
            out,
            "energy {name}() = 0.5 * {} * ({}{})^2    // tendon {}: held at its reference length{}\n{name}()",
            num(spring),
            tendon_value(m, places, t, false),
            plus(-(reference + e.offset)),
            t.name,
            if e.offset == 0.0 { String::new() } else { format!(" + {}", num(e.offset)) },
        )
        .ok();
        let name = ident(&format!("{}_equality_damper", t.name));
        writeln!(
            out,
            "dissipation {name}() = 0.5 * {} * ({})^2\n{name}()",
            num(damper),
            tendon_value(m, places, t, true),
        )
        .ok();
    }
    diags
}
