//! The symplectic (semi-implicit) Euler substep of scenes with joint trees,
//! MuJoCo's `Euler` on the same coordinates: Lagrange's equations reduced
//! through the kinematics,
//!
//! `(M_z + h D_z) zddot = -J^T (grad E + grad D - f + M Jdot zdot) + joint forces`,
//! `zdot' = zdot + h zddot`, `z' = z (+) h zdot'`,
//!
//! with `M_z = J^T M J` (plus armature) assembled like the implicit step's
//! reduced Hessian from the mass matrix alone, `Jdot zdot` the links' rows'
//! velocity-product accelerations (`sum_ij zdot_i zdot_j d2y/dz_i dz_j`, from
//! the twists as the curvature is), and the joint forces of the coordinates'
//! stiffness, damping, motors, servos and soft ranges (barrier ranges are not enforced here: a
//! barrier is far too stiff for an explicit step); the coordinates'
//! damping `D_z` is also taken implicitly, as MuJoCo's Euler does (its
//! trajectories are matched to rounding: tests/mjcf.rs). Free rows outside
//! the trees take the maximal symplectic update. Link rows' velocities are
//! the tangent `J zdot`. Gradients through it are not built (refused).

use super::reduced::{shifted_cholesky_solve, Reduced};
use super::{Part, Scratch};
use crate::joints::kinematics::Twist;
use crate::joints::{Pose, Tree};
use crate::Scene;
use glam::DVec3;
use joule_compiler::abi::Real;
use joule_compiler::model::JointKind;

impl Tree {
    /// The links' rows' velocity-product accelerations `Jdot zdot` (`set(row,
    /// value)`): `sum_ij zdot_i zdot_j w_i x dy/dz_j` over coordinates `i`
    /// before `j` on the chain (both orders of a pair, once each, and `i =
    /// j`), symmetrised within a ball's or free joint's rotation. Summed per
    /// coordinate `j` as `zdot_j Omega_j x dy/dz_j`, `Omega_j` twice the
    /// rate-weighted angular velocities of the coordinates in the chain's
    /// earlier joints plus those of `j`'s own rotation (or `j`'s alone):
    /// linear in the chain's length.
    fn bias_accelerations(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        zdot: &[f64],
        mut set: impl FnMut(usize, f64),
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            let vectors = [pose.p, pose.r.col(0), pose.r.col(1), pose.r.col(2)];
            let mut a = [DVec3::ZERO; 4];
            // Sum of zdot w over the earlier groups of coordinates.
            let mut before = DVec3::ZERO;
            let mut ci = 0;
            while ci < link.chain.len() {
                // The group starting at `ci`: one ball's or free joint's
                // rotation, else the coordinate alone.
                let first = link.chain[ci];
                let end = match self.rotation_of[first] {
                    Some(r) => {
                        ci + link.chain[ci..]
                            .iter()
                            .take_while(|&&k| self.rotation_of[k] == Some(r))
                            .count()
                    }
                    None => ci + 1,
                };
                let group: DVec3 = link.chain[ci..end]
                    .iter()
                    .map(|&k| twists[k].w * zdot[k])
                    .sum();
                let omega = 2.0 * before + group;
                for &j in &link.chain[ci..end] {
                    if zdot[j] == 0.0 {
                        continue;
                    }
                    let t = twists[j];
                    for (slot, d) in vectors.iter().enumerate() {
                        let jv = t.w.cross(*d) + if slot == 0 { t.v } else { DVec3::ZERO };
                        a[slot] += zdot[j] * omega.cross(jv);
                    }
                }
                before += group;
                ci = end;
            }
            for (slot, a) in a.iter().enumerate() {
                for c in 0..3 {
                    set(link.row + 3 * slot + c, a[c]);
                }
            }
        }
    }
}

impl<T: Real> Part<T> {
    /// The links' rows of `M Jdot zdot` into `w.md` (`Jdot zdot` in `w.d`),
    /// from every lane's poses, twists and coordinate rates: the
    /// velocity-product forces, for masses that read params too (whose
    /// values must be loaded).
    pub(super) fn bias_forces(&self, scene: &Scene, tree: &Tree, red: &Reduced, w: &mut Scratch) {
        let s = self.stride();
        w.d.fill(0.0);
        // Padding lanes are never stepped: their rows stay 0.
        for e in 0..self.len {
            let lane = &red.lanes[e];
            let d = &mut w.d;
            tree.bias_accelerations(&lane.poses, &lane.twists, &lane.zdot, |r, v| {
                d[r * s + e] = v
            });
        }
        scene.mass.mul(&w.d, &mut w.md, s);
        if !scene.mass_scales().is_empty() {
            self.param_mass_rows(scene, &w.d, &mut w.md);
        }
    }

    /// One symplectic Euler substep in joint coordinates (see the module docs).
    pub(super) fn explicit_reduced(&mut self, scene: &Scene, h: f64) {
        let tree = scene.tree().expect("a scene with joint trees");
        let (n, s) = (scene.dofs(), self.stride());
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        let mut red = self.reduced.take().expect("a reduced workspace");
        // The state: joint coordinates and rates, link rows and their tangent velocities.
        self.reduced_load(tree, &mut red);
        for e in 0..s {
            let lane = &red.lanes[e];
            let vb = &mut self.b.v;
            tree.tangent_velocities(&lane.poses, &lane.twists, &lane.zdot, |r, v| {
                vb[r * s + e] = T::from_f64(v)
            });
        }
        if scene.explicit_reads_prev {
            self.begin_substep(n);
        }
        self.hold(scene);
        self.forces(scene, |_| true);
        // Loads the masses' values too (`bias_forces` below reads them).
        self.scale_forces(scene);
        self.bias_forces(scene, tree, &red, &mut w);
        // The weight `M a_g` (into `w.xt`; links' masses that read params
        // set their rows of it as of `M Jdot zdot`).
        let force = &scene.mass.force;
        for (r, f) in force.iter().enumerate() {
            w.xt[r * s..(r + 1) * s].fill(*f);
        }
        if !scene.mass_scales().is_empty() {
            let accel = scene.mass.gravity_acceleration();
            for (r, a) in accel.iter().enumerate() {
                w.x_t[r * s..(r + 1) * s].fill(*a);
            }
            self.param_mass_rows(scene, &w.x_t, &mut w.xt);
        }
        // M_z = J^T M J.
        self.mass_matrices(scene, tree, &mut red, &mut w);
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let (grad, md, force) = (&self.b.grad, &w.md, &w.xt);
            let g = |r: usize| grad[r * s + e].to_f64() - force[r * s + e] + md[r * s + e];
            tree.moments(&lane.poses, g, &mut lane.moments);
            lane.g.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.g);
            for (j, jt) in tree.joints.iter().enumerate() {
                if !matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                    continue;
                }
                let z = jt.z;
                let (q, qd) = (lane.state[j].q, lane.zdot[z]);
                let u = |c: u32| self.b.controls[c as usize * s + e].to_f64();
                // A soft range pushes with its spring-damper force at the
                // step's start (clamped to push only).
                let limit = jt.soft_force(q, qd);
                let f = -g(jt.row) - jt.springs(q, u).1 + limit - jt.damping * qd;
                lane.g[z] -= f;
                // Damping taken implicitly, as MuJoCo's Euler does: (M + h D) zddot.
                lane.h[z * tree.n + z] += jt.armature + h * jt.damping;
            }
            // zddot = M_z^-1 Q, with Q = -lane.g.
            for (d, gz) in lane.dz.iter_mut().zip(&lane.g) {
                *d = -gz;
            }
            if !shifted_cholesky_solve(&mut lane.h, tree.n, &mut lane.dz, &mut red.work) {
                lane.dz.fill(f64::NAN);
            }
            for k in 0..tree.joint_coords {
                lane.zdot[k] += h * lane.dz[k];
                lane.dz[k] = h * lane.zdot[k];
            }
            tree.retract(&lane.start, &lane.dz, 1.0, &mut lane.state);
        }
        // Free rows outside the trees: the maximal update (link and
        // coordinate rows are overwritten below).
        let b = &mut self.b;
        scene.mass.explicit_update(
            &b.grad[..n * s],
            &mut w.rhs,
            &mut w.dx,
            &mut b.v[..n * s],
            &mut b.x[..n * s],
            h,
            s,
        );
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
            let (xb, vb) = (&mut self.b.x, &mut self.b.v);
            tree.write_rows(&lane.poses, |r, v| xb[r * s + e] = T::from_f64(v));
            tree.tangent_velocities(&lane.poses, &lane.twists, &lane.zdot, |r, v| {
                vb[r * s + e] = T::from_f64(v)
            });
            for (j, jt) in tree.joints.iter().enumerate() {
                let x = tree.coordinate_values(j, &lane.state[j]);
                for k in 0..jt.kind.dofs() {
                    let r = (jt.row + k) * s + e;
                    xb[r] = T::from_f64(x[k]);
                    vb[r] = T::from_f64(lane.zdot[jt.z + k]);
                }
            }
        }
        self.reduced = Some(red);
        self.scratch = w;
    }
}
