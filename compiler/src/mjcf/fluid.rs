//! MuJoCo's inertia-based fluid model (`option density`, `viscosity`,
//! `wind`) as the prelude's `fluid_drag` dissipation on every moving body:
//! each MJCF body with mass is the box of its inertia (full sides
//! `sqrt(6 (I_j + I_k - I_i) / m)` along its principal axes), as MuJoCo's
//! `mj_passive` takes it.

use super::sensors::Place;
use super::write::{num, v3};
use super::*;
use crate::math::*;
use nalgebra::{Matrix3, SymmetricEigen};
use std::fmt::Write;

/// The principal moments and axes (columns, body frame) of a body's inertia
/// about its centre of mass. MuJoCo takes a body's inertial frame from its
/// one geom when that geom's frame diagonalises the inertia (the axes in a
/// plane of equal moments then matter to the quadratic drag): the first
/// massive geom whose frame does so gives the axes; otherwise the
/// eigenvectors.
fn principal(body: &Body) -> (V3, [V3; 3]) {
    let t = body.mass.inertia;
    let scale = t.iter().flatten().fold(0.0, |a: f64, x| a.max(x.abs()));
    for g in body.geoms.iter().filter(|g| g.mass > 0.0) {
        let r = qmat(g.quat);
        let local = mul_mm(&transpose(&r), &mul_mm(&t, &r));
        let off = [local[0][1], local[0][2], local[1][2]];
        if off.iter().all(|x| x.abs() <= 1e-12 * scale) {
            return ([local[0][0], local[1][1], local[2][2]], transpose(&r));
        }
    }
    let e = SymmetricEigen::new(Matrix3::from_fn(|i, j| t[i][j]));
    let axes = [0, 1, 2].map(|i| {
        let c = e.eigenvectors.column(i);
        [c[0], c[1], c[2]]
    });
    ([e.eigenvalues[0], e.eigenvalues[1], e.eigenvalues[2]], axes)
}

/// The `fluid_drag` dissipations of `fluid` on the moving bodies (appended
/// to `out`), or with `explicit` its `fluid_force` energies: the forces at
/// the step's start, as MuJoCo's Euler and RK4 take them.
pub(super) fn write_fluid(
    m: &Mjcf,
    fluid: &Fluid,
    places: &[Place],
    explicit: bool,
    out: &mut String,
) {
    let (name, how) = if explicit {
        (
            "fluid_force",
            ", at the step's start as MuJoCo's step takes it",
        )
    } else {
        ("fluid_drag", "")
    };
    writeln!(
        out,
        "\n// Fluid (density {}, viscosity {}): MuJoCo's drag on each body's inertia box{how}.",
        num(fluid.density),
        num(fluid.viscosity)
    )
    .ok();
    for (b, body) in m.bodies.iter().enumerate() {
        let (mass, p) = (body.mass.mass, &places[b]);
        if p.world || mass <= 0.0 {
            continue;
        }
        let (moments, axes) = principal(body);
        let size = [0, 1, 2].map(|i| {
            let (j, k) = ((i + 1) % 3, (i + 2) % 3);
            // MuJoCo's floor (mjMINVAL) for a flat body's side.
            ((moments[j] + moments[k] - moments[i]).max(1e-15) / mass * 6.0).sqrt()
        });
        let com = p.at(body.mass.com);
        let axes = axes.map(|a| v3(rotate(p.quat, a)));
        writeln!(
            out,
            "{name}({}, {}, mat3({}, {}, {}), {}, {}, {}, {})    // {}",
            p.body,
            v3(com),
            axes[0],
            axes[1],
            axes[2],
            v3(size),
            num(fluid.density),
            num(fluid.viscosity),
            v3(fluid.wind),
            body.name
        )
        .ok();
    }
}
