//! MuJoCo's inverse weights of the bodies at `qpos0` (`body_invweight0`),
//! the scale of its soft constraints: a contact's regulariser
//! `R = (1 - imp) / imp * A`, where `A` approximates the contact's row of
//! `J M^-1 J^T` by the inverse weights of the two bodies it touches.

use super::{Body, JointKind, Mjcf};
use crate::math::*;
use nalgebra::{DMatrix, Matrix6xX};

/// Per MJCF body, MuJoCo's `body_invweight0`: the mean of the diagonal of
/// the translational and of the rotational block of `J M^-1 J^T`, `J` the
/// Jacobian of the body's centre of mass (translation and rotation) and
/// `M` the joint-space mass matrix (armature included) in the reference
/// pose, where every coordinate is 0 (MuJoCo's `qpos0`). Bodies that no
/// joint moves weigh nothing (0). `None` when `M` is singular.
pub fn invweight0(m: &Mjcf) -> Option<Vec<[f64; 2]>> {
    // The degrees of freedom: (the body whose joint it is, its twist, its armature).
    let dofs: Vec<(usize, [f64; 6], f64)> = (m.bodies.iter().enumerate())
        .flat_map(|(b, body)| twists(body).into_iter().map(move |(t, a)| (b, t, a)))
        .collect();
    let nv = dofs.len();
    // Whether body `a` is `b` or one of its ancestors.
    let moves = |a: usize, mut b: usize| loop {
        if a == b {
            return true;
        }
        if b == 0 {
            return false;
        }
        b = m.bodies[b].parent;
    };
    // The Jacobian (6 x nv: translation, rotation) of the point `p` of body `b`.
    let jacobian = |b: usize, p: V3| {
        let mut j = Matrix6xX::<f64>::zeros(nv);
        for (k, &(owner, t, _)) in dofs.iter().enumerate() {
            if moves(owner, b) {
                let w = [t[0], t[1], t[2]];
                let lin = add([t[3], t[4], t[5]], cross(w, p));
                for i in 0..3 {
                    j[(i, k)] = lin[i];
                    j[(i + 3, k)] = w[i];
                }
            }
        }
        j
    };
    // Whether a joint moves body `b` (else it is welded to the world).
    let moves_at_all = |b: usize| dofs.iter().any(|&(owner, ..)| moves(owner, b));
    let mut mass = DMatrix::<f64>::zeros(nv, nv);
    let mut jacobians = Vec::with_capacity(m.bodies.len());
    for (b, body) in m.bodies.iter().enumerate() {
        let com = add(body.xpos, rotate(body.xquat, body.mass.com));
        let j = jacobian(b, com);
        let inertia = rotate_tensor(&qmat(body.xquat), &body.mass.inertia);
        let mut spatial = nalgebra::Matrix6::<f64>::zeros();
        for i in 0..3 {
            spatial[(i, i)] = body.mass.mass;
            for k in 0..3 {
                spatial[(i + 3, k + 3)] = inertia[i][k];
            }
        }
        mass += j.transpose() * spatial * &j;
        jacobians.push(j);
    }
    for (k, dof) in dofs.iter().enumerate() {
        mass[(k, k)] += dof.2;
    }
    let factor = mass.cholesky()?;
    Some(
        jacobians
            .iter()
            .enumerate()
            .map(|(b, j)| {
                if b == 0 || nv == 0 || !moves_at_all(b) {
                    return [0.0; 2];
                }
                if slides_only(m, b) {
                    return [1.0 / m.bodies[b].mass.mass.max(1e-15), 0.0];
                }
                let a = j * factor.solve(&j.transpose());
                [
                    (a[(0, 0)] + a[(1, 1)] + a[(2, 2)]) / 3.0,
                    (a[(3, 3)] + a[(4, 4)] + a[(5, 5)]) / 3.0,
                ]
            })
            .collect(),
    )
}

/// Whether MuJoCo takes body `b` for a simple body of slides only (its
/// `body_simple` 2), whose inverse weights are `1 / mass` and 0: a leaf
/// whose mass frame is its own, moved by slides alone, along its frame's
/// axes, through its origin, that hangs from the world or from a jointless
/// child of the world.
fn slides_only(m: &Mjcf, b: usize) -> bool {
    const EPS: f64 = 1e-6;
    let body = &m.bodies[b];
    let i = &body.mass.inertia;
    let same_frame = body.mass.com.iter().all(|c| c.abs() < 1e-12)
        && (0..3).all(|r| (0..3).all(|c| r == c || i[r][c].abs() < 1e-12));
    let parent = &m.bodies[body.parent];
    let hangs = body.parent == 0 || (parent.parent == 0 && parent.joints.is_empty());
    let leaf = m.bodies.iter().skip(1).all(|c| c.parent != b);
    let slides = !body.joints.is_empty()
        && body.joints.iter().all(|j| {
            j.kind == JointKind::Slide
                && j.pos.iter().all(|p| p.abs() < 1e-12)
                && j.axis.iter().filter(|a| a.abs() > EPS).count() == 1
        });
    same_frame && hangs && leaf && slides
}

/// The motions of a body's joints in the reference pose, as twists
/// (angular velocity, velocity of the world origin) per coordinate, each
/// with its joint's armature.
pub(super) fn twists(b: &Body) -> Vec<([f64; 6], f64)> {
    const AXES: [V3; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let mut out = vec![];
    for j in &b.joints {
        let at = add(b.xpos, rotate(b.xquat, j.pos));
        let axis = rotate(b.xquat, j.axis);
        let turn = |n: V3| {
            let v = cross(at, n);
            ([n[0], n[1], n[2], v[0], v[1], v[2]], j.armature)
        };
        let slide = |a: V3| ([0.0, 0.0, 0.0, a[0], a[1], a[2]], j.armature);
        match j.kind {
            JointKind::Hinge => out.push(turn(axis)),
            JointKind::Slide => out.push(slide(axis)),
            JointKind::Ball => out.extend(AXES.map(turn)),
            JointKind::Free => out.extend(AXES.map(slide).into_iter().chain(AXES.map(turn))),
        }
    }
    out
}
