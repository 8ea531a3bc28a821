//! MuJoCo's soft constraints on tendons, tendon equalities and tendon
//! limits, as energies of the tendon's length. MuJoCo's soft constraint
//! moves its violation `r` as `r'' = (1 - d) a0 + d a_ref` with `a_ref =
//! -b r' - k d r` (`b = 2 / (dmax t)`, `k = 1 / (dmax t zeta)^2` from
//! `solref = (t, zeta)`, `d` the impedance of `solimp` at the violation),
//! on the effective mass `m = 1 / (J M^-1 J^T)` of the reference pose
//! (MuJoCo's `tendon_invweight0`), `a0` the acceleration the other forces
//! give the tendon. Times `m / (1 - d)`, that is the motion of a tendon
//! whose inertia is `m / (1 - d)` (its own `m` and `m d / (1 - d)` more)
//! under the other forces and the spring `m d^2 k / (1 - d)` and damper `m
//! d b / (1 - d)`: what the importer writes, the added inertia as its
//! implicit step's potential `1/2 I / h^2 (L - L_t - h Ldot_t)^2` and `d`
//! read at the violation of the step's start (MuJoCo computes it at the
//! state it steps from). It is exact for the motion along the tendon in
//! the importer's implicit Euler (an explicit step cannot take the added
//! inertia). An equality is two-sided; a limit acts where it is violated
//! at the step's start, its damper over the step as the ground's soft
//! contact's (`ground_soft` in the prelude: one spring toward a lagged
//! target).

use super::sensors::{tendon_value, Place};
use super::write::{num, plus};
use super::*;
use crate::math::*;
use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
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

/// The model's joint-space mass matrix in the reference pose (with
/// armature), factored once for all the tendons' effective masses.
struct JointSpace<'m> {
    m: &'m Mjcf,
    dofs: Vec<Coordinate>,
    index: HashMap<(usize, usize), usize>,
    /// `None` where the matrix is singular.
    factor: Option<Cholesky<f64, Dyn>>,
}

impl<'m> JointSpace<'m> {
    fn new(m: &'m Mjcf) -> JointSpace<'m> {
        let (dofs, index) = dofs(m);
        let n = dofs.len();
        let mut mass = DMatrix::<f64>::zeros(n, n);
        for (b, body) in m.bodies.iter().enumerate().skip(1) {
            let mp = &body.mass;
            if mp.mass <= 0.0 {
                continue;
            }
            let r = qmat(body.xquat);
            let com = add(body.xpos, mul_mv(&r, mp.com));
            let inertia = rotate_tensor(&r, &mp.inertia);
            let on: Vec<(usize, (V3, V3))> = (dofs.iter().enumerate())
                .filter(|(_, d)| in_subtree(&m.bodies, d.body, b))
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
        JointSpace {
            m,
            dofs,
            index,
            factor: mass.cholesky(),
        }
    }

    /// `J M^-1 J^T` of a tendon (MuJoCo's `tendon_invweight0`): `J` the
    /// tendon length's derivative (a fixed tendon's coefficients; a spatial
    /// tendon's segments' directions on its sites' velocities); `None`
    /// where `M` is singular.
    fn invweight(&self, t: &Tendon) -> Option<f64> {
        let bodies = &self.m.bodies;
        let mut j = DVector::<f64>::zeros(self.dofs.len());
        match &t.path {
            Path::Fixed(joints) => {
                for &(joint, c) in joints {
                    j[self.index[&joint]] += c;
                }
            }
            Path::Spatial(sites) => {
                for w in sites.windows(2) {
                    let (a, b) = (site_position(bodies, w[0]), site_position(bodies, w[1]));
                    let Some(u) = normalize(sub(b, a)) else {
                        continue;
                    };
                    for (i, d) in self.dofs.iter().enumerate() {
                        let v = |(site_body, _): (usize, usize), p: V3| {
                            if in_subtree(bodies, d.body, site_body) {
                                d.dof.motion(p).0
                            } else {
                                [0.0; 3]
                            }
                        };
                        j[i] += dot(u, sub(v(w[1], b), v(w[0], a)));
                    }
                }
            }
        }
        let x = self.factor.as_ref()?.solve(&j);
        Some(j.dot(&x))
    }
}

/// A tendon's length in the reference pose (the joints at their `ref`).
fn reference_length(m: &Mjcf, t: &Tendon) -> f64 {
    match &t.path {
        Path::Fixed(joints) => joints
            .iter()
            .map(|&((bi, ji), c)| c * m.bodies[bi].joints[ji].reference)
            .sum(),
        Path::Spatial(sites) => spatial_length(&m.bodies, sites),
    }
}

/// A soft constraint on a tendon of inverse effective mass `w`, written
/// with its impedance at the violation of the step's start (MuJoCo's, at
/// the state it steps from): its violation `r` then moves as `(m / (1 -
/// d)) r'' = F0 - m d b / (1 - d) r' - m d^2 k / (1 - d) r` under the force
/// `F0` along it (the module docs' motion times `m / (1 - d)`), so it is a
/// spring, a damper and an inertia `m d / (1 - d)` added to the tendon's
/// own `m`.
struct Soft {
    /// `m = 1 / w`, `k = 1 / (dmax t zeta)^2`, `b = 2 / (dmax t)`.
    m: f64,
    k: f64,
    b: f64,
    /// `solimp`, clamped as MuJoCo clamps it.
    imp: [f64; 5],
}

impl Soft {
    fn new(w: f64, (time, ratio): (f64, f64), solimp: [f64; 5]) -> Soft {
        let [d0, dmax, width, mid, power] = solimp;
        let imp = |d: f64| d.clamp(1e-4, 0.9999);
        let (d0, dmax) = (imp(d0), imp(dmax));
        Soft {
            m: 1.0 / w,
            k: 1.0 / (dmax * time * ratio).powi(2),
            b: 2.0 / (dmax * time),
            imp: [
                d0,
                dmax,
                width.max(1e-10),
                mid.clamp(1e-4, 0.9999),
                power.max(1.0),
            ],
        }
    }

    /// `let` lines (indented) defining `d`, MuJoCo's impedance at the
    /// violation `violation` (a Joule expression), and `s = m / (1 - d)`.
    fn impedance(&self, violation: &str) -> String {
        let [d0, dmax, width, mid, p] = self.imp;
        let curve = if p == 1.0 {
            "x".to_string()
        } else {
            format!(
                "select(x < {mid}, {} * x^{p}, 1 - {} * (1 - x)^{p})",
                num(mid.powf(1.0 - p)),
                num((1.0 - mid).powf(1.0 - p)),
                mid = num(mid),
                p = num(p)
            )
        };
        format!(
            "    let x = min(abs({violation}) / {}, 1)\n    let d = {} + {} * {curve}\n    let s = {} / (1 - d)\n",
            num(width),
            num(d0),
            num(dmax - d0),
            num(self.m)
        )
    }
}

/// The tendon equalities and limits as energies and dissipations
/// (appended to `out`); a diagnostic for a tendon that moves no mass.
pub(super) fn write_constraints(
    m: &Mjcf,
    places: &[Place],
    ident: &mut dyn FnMut(&str) -> String,
    out: &mut String,
) -> Vec<Diagnostic> {
    let mut diags = vec![];
    if m.equalities.is_empty() && m.tendons.iter().all(|t| t.limit.is_none()) {
        return diags;
    }
    let space = JointSpace::new(m);
    let mut weight = |t: &Tendon, span: Span, what: &str| match space.invweight(t) {
        Some(w) if w > 0.0 && w.is_finite() => Some(w),
        _ => {
            diags.push(
                Diagnostic::error(
                    "mjcf::invalid",
                    format!("the tendon `{}` of a {what} moves no mass", t.name),
                    span,
                    "no effective mass",
                )
                .with_help(format!(
                    "a tendon {what} acts on a tendon whose joints move bodies with mass"
                )),
            );
            None
        }
    };
    if !m.equalities.is_empty() {
        writeln!(
            out,
            "\n// Tendon equalities: MuJoCo's soft constraint on the tendon's length, with s = m / (1 - d)\n// (m its effective mass in the reference pose, d the impedance at the step's start): the\n// spring s d^2 k, the damper s d b and the inertia s d added to the length's."
        )
        .ok();
    }
    for e in &m.equalities {
        let t = &m.tendons[e.tendon];
        let Some(w) = weight(t, e.span, "equality") else {
            continue;
        };
        let c = Soft::new(w, e.solref, e.solimp);
        let (length, rate) = (
            tendon_value(m, places, t, false),
            tendon_value(m, places, t, true),
        );
        let r = format!("{length}{}", plus(-(reference_length(m, t) + e.offset)));
        let name = ident(&format!("{}_equality", t.name));
        writeln!(
            out,
            "// tendon {}: held at its reference length{}\nenergy {name}() {{\n{}    0.5 * s * d^2 * {} * ({r})^2 + {}\n}}\n{name}()",
            t.name,
            if e.offset == 0.0 { String::new() } else { format!(" + {}", num(e.offset)) },
            c.impedance(&format!("prev({r})")),
            num(c.k),
            inertia(m.timestep, &length, &rate),
        )
        .ok();
        let name = ident(&format!("{}_equality_damper", t.name));
        writeln!(
            out,
            "dissipation {name}() {{\n{}    0.5 * s * d * {} * ({rate})^2\n}}\n{name}()",
            c.impedance(&format!("prev({r})")),
            num(c.b),
        )
        .ok();
    }
    let limited: Vec<(&Tendon, &Limit)> = (m.tendons.iter())
        .filter_map(|t| t.limit.as_ref().map(|l| (t, l)))
        .collect();
    if !limited.is_empty() {
        writeln!(
            out,
            "\n// Tendon limits: MuJoCo's soft limit where violated at the step's start, pushing only: the\n// spring s d^2 k and damper s d b over the step as one spring k toward a lagged gap, and the\n// inertia s d (s = m / (1 - d) as for equalities)."
        )
        .ok();
    }
    for (t, l) in limited {
        let Some(w) = weight(t, t.span, "limit") else {
            continue;
        };
        let c = Soft::new(w, l.solref, l.solimp);
        let h = m.timestep;
        let (length, rate) = (
            tendon_value(m, places, t, false),
            tendon_value(m, places, t, true),
        );
        // A spatial tendon's length is never negative: no lower limit at 0.
        let lower = !(matches!(t.path, Path::Spatial(_)) && l.lo <= 0.0);
        let gaps = [
            (
                lower,
                "lower",
                format!("{length}{}", plus(-l.lo)),
                rate.clone(),
            ),
            (
                true,
                "upper",
                format!("{} - ({length})", num(l.hi)),
                format!("-({rate})"),
            ),
        ];
        for (_, side, gap, gap_rate) in gaps.iter().filter(|g| g.0) {
            let name = ident(&format!("{}_{side}_limit", t.name));
            writeln!(
                out,
                "// tendon {}: its {side} limit\nenergy {name}() {{\n    let g_t = prev({gap})\n{}    let kd = s * d * {} / {}\n    let k = s * d^2 * {} + kd\n    penalty({gap} - min(kd / k * g_t, 0), k) + select(g_t < 0, {}, 0)\n}}\n{name}()",
                t.name,
                c.impedance("g_t"),
                num(c.b),
                num(h),
                num(c.k),
                inertia(h, gap, gap_rate),
            )
            .ok();
        }
    }
    diags
}

/// The incremental potential `1/2 s d / h^2 (x - x_t - h xdot_t)^2` of
/// the inertia `s d` (the `let`s of [`Soft::impedance`]) added to the
/// quantity `x` (its rate `xdot`) over a step `h`.
fn inertia(h: f64, x: &str, xdot: &str) -> String {
    format!(
        "0.5 * s * d * {} * ({x} - prev({x}) - {} * prev({xdot}))^2",
        num(1.0 / (h * h)),
        num(h)
    )
}
