//! The adjoint of a reduced substep with linear kinematics (`kinematics =
//! linear`, MuJoCo's Euler: `reduced`'s module docs), for scenes of joint
//! trees with no free rows beside them (`Scene::gradients_unavailable`
//! refuses the rest). Coordinates add on hinges, slides and translations;
//! a ball's or free joint's rotation is taken in the chart at the step's
//! start, `exp(lin) R_t`.
//!
//! The forward substep, from the start's coordinates `z_t`, rates
//! `zdot_t` and kinematics (`J_t`, the links' rows `y_t`):
//!
//! 1. the prediction `pred = h zdot_t + h^2 a_0`, `M_z a_0 = -(b + f)`,
//!    with `M_z = J_t^T M J_t + A` (armature), `b = J_t^T M (Jdot zdot)`
//!    the velocity-product forces and `f` the coordinates' damping at
//!    `zdot_t`, stiffness at `q_t` and actuators;
//! 2. the step `lin` minimising the potential over `x = y_t + J_t lin`
//!    (link rows; a hinge's or slider's row `q_t + lin`): its gradient
//!    `G = J_t^T r + r_q + A (lin - pred) / h^2 + ranges' = 0`, `r = M (x -
//!    x~) / h^2 + grad E + grad D` with `x~ = y_t + J_t pred + h^2 g`;
//! 3. the damping made implicit: `a' = (M_z + h D)^-1 M_z a`, `a = (lin -
//!    h zdot_t) / h^2`, `lin' = h zdot_t + h^2 a'`;
//! 4. the end `z' = z_t + lin'`, its links' rows `K(z')` moving at `J(z')
//!    zdot'`, `zdot' = lin' / h`, and the coordinate rows.
//!
//! The adjoint runs them backwards: the end through `J(z')^T` and the
//! curvature of the kinematics at `z'` (the velocity rows' `d (J zdot)/dz`),
//! the damping's solve, then the implicit function theorem at `lin` (`H
//! lambda = linbar`, `H` Newton's Hessian there; seed `s = J_t lambda`, whose
//! VJP kernel gives `H_y s` and the mixed partials by the start rows,
//! params and controls), and `-lambda . dG/d(z_t, zdot_t, u)` through every
//! place the start enters: `J_t` (curvature products with `r`, with `H_y s`
//! against `lin`, with `M s / h^2` against `lin - pred`), the start rows
//! the energies read, the prediction (`predbar = M_z lambda / h^2`), the
//! mass matrix's and the velocity-product forces' dependence on `z_t` and
//! `zdot_t` (the kinematics' second and third derivatives,
//! `joints/derivatives.rs`), and the joint forces and ranges.

use super::potential::Lanes;
use super::reduced::{shifted_cholesky_solve, soft_limit, Reduced};
use super::reduced_adjoint::add3;
use super::{set_seed, Adjoint, Part, Scratch, Snapshot};
use crate::joints::kinematics::{exp, left_jacobian, left_jacobian_inverse, log};
use crate::joints::{ChainTables, Tree};
use crate::Scene;
use glam::DVec3;
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::JointKind;

/// One lane's vectors of the linear step's adjoint (joint coordinates).
#[derive(Clone)]
pub(super) struct LinearBar {
    /// The prediction's acceleration `a_0`.
    a0: Vec<f64>,
    /// The solve's acceleration `a` (before the damping's correction), and
    /// `a - a'`.
    a: Vec<f64>,
    delta: Vec<f64>,
    /// `(M_z + h D)^-1 a'bar`.
    mu: Vec<f64>,
    /// The adjoint by the start's rates.
    zdotbar: Vec<f64>,
    /// The kinematics' derivatives' tables.
    tables: ChainTables,
}

impl LinearBar {
    /// Vectors for `n` joint coordinates on chains of up to `m`.
    pub(super) fn new(n: usize, m: usize) -> Self {
        LinearBar {
            a0: vec![0.0; n],
            a: vec![0.0; n],
            delta: vec![0.0; n],
            mu: vec![0.0; n],
            zdotbar: vec![0.0; n],
            tables: ChainTables::new(m),
        }
    }
}

impl<T: Real> Part<T> {
    /// Adjoint of one substep with linear kinematics from `start` to `end`
    /// (see the module docs; [`Part::substep_adjoint`] calls it).
    pub(super) fn linear_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        end: &Snapshot,
        adj: &mut Adjoint,
    ) {
        let tree = scene.tree().expect("a scene with joint trees");
        let h = scene.substep();
        let (n, s) = (scene.dofs(), self.stride());
        let nz = tree.n;
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        let mut red = self.reduced.take().expect("a reduced workspace");
        red.linear = true;
        self.restore(start);
        // The start, its kinematics, mass matrix and prediction.
        self.reduced_start(scene, tree, &mut red, &mut w, h);
        let damped = tree.joints.iter().any(|j| j.damping != 0.0);
        // The end: its adjoint pulled back to the step `lin'`.
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let b = &mut lane.lin_bar;
            for k in 0..nz {
                b.a0[k] = (lane.pred[k] - h * lane.zdot[k]) / (h * h);
            }
            tree.read_state(|r| end.x[r * s + e], &mut lane.state);
            for (j, jt) in tree.joints.iter().enumerate() {
                let rates = tree.coordinate_rates(j, &lane.state[j], &lane.start[j], h);
                for k in 0..jt.kind.dofs() {
                    lane.lin[jt.z + k] = h * rates[k];
                }
            }
            tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
            // zbar' (in the chart at z') = J'^T xbar' + d/dz' (J' zdot') . vbar'
            // + the coordinate rows' (a rotation vector's through SO(3)'s
            // left Jacobian).
            tree.moments(&lane.poses, |r| adj.x[r * s + e], &mut lane.moments);
            lane.zbar.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.zbar);
            for (d, l) in b.delta.iter_mut().zip(&lane.lin) {
                *d = l / h;
            }
            tree.curvature_product(
                &lane.poses,
                &lane.twists,
                |r| adj.v[r * s + e],
                &b.delta,
                &mut lane.zbar,
                &mut b.tables,
            );
            // zdotbar' = J'^T vbar' + the coordinate rows' (their rates are
            // lin' / h).
            tree.moments(&lane.poses, |r| adj.v[r * s + e], &mut lane.moments);
            lane.g.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.g);
            for (j, jt) in tree.joints.iter().enumerate() {
                let row = |k: usize| (jt.row + k) * s + e;
                for k in 0..jt.kind.dofs() {
                    lane.g[jt.z + k] += adj.v[row(k)];
                }
                let v3 = |k: usize| DVec3::new(adj.x[row(k)], adj.x[row(k + 1)], adj.x[row(k + 2)]);
                let now = &lane.state[j];
                match jt.kind {
                    JointKind::Hinge | JointKind::Slider => lane.zbar[jt.z] += adj.x[row(0)],
                    JointKind::Ball => {
                        let d = left_jacobian_inverse(log(now.r)).transpose() * v3(0);
                        add3(&mut lane.zbar, jt.z, d);
                    }
                    JointKind::Free => {
                        add3(&mut lane.zbar, jt.z, v3(0));
                        let phi = log(now.r * jt.initial.r.transpose());
                        add3(
                            &mut lane.zbar,
                            jt.z + 3,
                            left_jacobian_inverse(phi).transpose() * v3(3),
                        );
                    }
                }
            }
            // lin'bar (in `dz`) and z_t's adjoint (in `zbar`): z' = z_t (+)
            // lin' adds on hinges, slides and translations; a rotation's
            // exp(lin') exp(delta) R_t is exp(J_l(lin') dlin' + exp(lin')
            // delta) R', so lin'bar = J_l(lin')^T zbar' and deltabar =
            // exp(lin')^T zbar'.
            for ((d, z), g) in lane.dz.iter_mut().zip(&lane.zbar).zip(&lane.g) {
                *d = z + g / h;
            }
            for jt in &tree.joints {
                let k = match jt.kind {
                    JointKind::Ball => jt.z,
                    JointKind::Free => jt.z + 3,
                    JointKind::Hinge | JointKind::Slider => continue,
                };
                let phi = DVec3::new(lane.lin[k], lane.lin[k + 1], lane.lin[k + 2]);
                let zb = DVec3::new(lane.zbar[k], lane.zbar[k + 1], lane.zbar[k + 2]);
                let gb = DVec3::new(lane.g[k], lane.g[k + 1], lane.g[k + 2]);
                let (d, z) = (
                    left_jacobian(phi).transpose() * zb + gb / h,
                    exp(phi).transpose() * zb,
                );
                for c in 0..3 {
                    lane.dz[k + c] = d[c];
                    lane.zbar[k + c] = z[c];
                }
            }
            b.zdotbar.fill(0.0);
            if !damped {
                continue;
            }
            // The damping's correction: a' = (lin' - h zdot) / h^2, a = a' +
            // h M_z^-1 D a', and mu = (M_z + h D)^-1 h^2 lin'bar.
            b.delta.fill(0.0);
            for jt in &tree.joints {
                if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                    let (l, zd) = (lane.lin[jt.z], lane.zdot[jt.z]);
                    b.delta[jt.z] = h * jt.damping * (l - h * zd) / (h * h);
                }
            }
            lane.h[..nz * nz].copy_from_slice(&lane.mass_z);
            if !shifted_cholesky_solve(&mut lane.h, nz, &mut b.delta, &mut red.work) {
                b.delta.fill(f64::NAN);
            }
            for (((a, l), zd), d) in b.a.iter_mut().zip(&lane.lin).zip(&lane.zdot).zip(&b.delta) {
                *a = (l - h * zd) / (h * h) + d;
            }
            tree.damped_mass(&lane.mass_z, h, &mut lane.h[..nz * nz]);
            for ((m, d), zb) in b.mu.iter_mut().zip(&lane.dz).zip(b.zdotbar.iter_mut()) {
                *m = h * h * d;
                *zb += h * d;
            }
            if !shifted_cholesky_solve(&mut lane.h, nz, &mut b.mu, &mut red.work) {
                b.mu.fill(f64::NAN);
            }
            // abar = M_z mu: linbar = abar / h^2, and zdot's -abar / h.
            for i in 0..nz {
                let abar: f64 = (0..nz).map(|k| lane.mass_z[i * nz + k] * b.mu[k]).sum();
                lane.dz[i] = abar / (h * h);
                b.zdotbar[i] -= abar / h;
            }
            // The step before the correction.
            for ((l, a), zd) in lane.lin.iter_mut().zip(&b.a).zip(&lane.zdot) {
                *l = h * zd + h * h * a;
            }
        }
        if damped {
            // mu . dM_z/dz (a - a'): the curvature products with M J delta
            // and M J mu.
            self.mass_jacobian_rows(scene, tree, &red, &mut w, |b| &b.delta);
            std::mem::swap(&mut w.md, &mut w.x0);
            self.mass_jacobian_rows(scene, tree, &red, &mut w, |b| &b.mu);
            for e in 0..self.len {
                let lane = &mut red.lanes[e];
                let b = &mut lane.lin_bar;
                let (mdelta, mmu) = (&w.x0, &w.md);
                tree.curvature_product(
                    &lane.poses_t,
                    &lane.twists_t,
                    |r| mdelta[r * s + e],
                    &b.mu,
                    &mut lane.zbar,
                    &mut b.tables,
                );
                tree.curvature_product(
                    &lane.poses_t,
                    &lane.twists_t,
                    |r| mmu[r * s + e],
                    &b.delta,
                    &mut lane.zbar,
                    &mut b.tables,
                );
            }
        }
        // The solve's point: its rows as the kernels saw them, the gradient
        // there and Newton's Hessian.
        for lane in red.lanes.iter_mut().take(self.len) {
            tree.retract(&lane.start, &lane.lin, 1.0, &mut lane.state);
            lane.poses.copy_from_slice(&lane.poses_t);
            lane.twists.copy_from_slice(&lane.twists_t);
        }
        let rows = std::mem::take(&mut w.x_t);
        self.reduced_write(tree, &red, &rows, None);
        w.x_t = rows;
        self.potential_gradient(scene, &mut w, h, Lanes::All);
        self.reduced_blocks(scene, tree, &mut red, h, true, |_| true);
        for e in 0..s {
            w.active[e] = e < self.len;
        }
        tree.reduced_hessians(&mut red, &w.active, false, |e, l| {
            self.link_hessian_mass(scene, tree, l, e, h * h)
        });
        // lambda = H^-1 linbar, and the seed s = J_t lambda.
        w.dx.fill(0.0);
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let controls = &self.b.controls;
            let u = |c: u32| controls[c as usize * s + e].to_f64();
            let (mut g, mut hz) = (std::mem::take(&mut lane.g), std::mem::take(&mut lane.h));
            tree.joint_terms(lane, h, false, u, Some((&mut g, &mut hz)));
            if !shifted_cholesky_solve(&mut hz, nz, &mut lane.dz, &mut red.work) {
                lane.dz.fill(f64::NAN);
            }
            lane.g = g;
            lane.h = hz;
            let dx = &mut w.dx;
            tree.seed(&lane.poses_t, &lane.twists_t, &lane.dz, |r, v| {
                dx[r * s + e] = v
            });
        }
        set_seed(&mut self.b, &w.dx);
        self.vjp(scene, KernelKind::Adjoint);
        // The rows the start's dependence reads: M c (the velocity-product
        // accelerations c = Jdot zdot) into x0, M J a_0 into rhs, M s into md.
        self.bias_forces(scene, tree, &red, &mut w);
        std::mem::swap(&mut w.md, &mut w.x0);
        self.mass_jacobian_rows(scene, tree, &red, &mut w, |b| &b.a0);
        std::mem::swap(&mut w.md, &mut w.rhs);
        scene.mass.mul(&w.dx, &mut w.md, s);
        for e in 0..self.len {
            self.linear_start_adjoint(tree, &mut red, &w, e, h);
        }
        // The start rows' adjoints: the links' are the coordinates'.
        for i in 0..n * s {
            adj.v[i] = -self.b.d_prev_v[i].to_f64();
        }
        for e in 0..s {
            for link in &tree.links {
                for k in 0..12 {
                    adj.x[(link.row + k) * s + e] = 0.0;
                }
            }
            if e >= self.len {
                continue;
            }
            let lane = &red.lanes[e];
            for jt in &tree.joints {
                let zdotbar = &lane.lin_bar.zdotbar;
                self.start_coordinates_adjoint(tree, jt, &lane.zbar, zdotbar, start, adj, e);
                // The actuators' forces -gear u and -kp u in the prediction.
                let lambda = lane.dz[jt.z];
                for (c, k) in jt.motor.into_iter().chain(jt.servo) {
                    adj.controls[c as usize * s + e] += lambda * k;
                }
            }
        }
        self.accumulate(adj, -1.0);
        self.reduced = Some(red);
        self.scratch = w;
    }

    /// `-lambda . dG/d(z_t, zdot_t)` of lane `e` into its `zbar` and
    /// `lin_bar.zdotbar` (the module docs), with `lambda` in its `dz`, the
    /// step `lin` in its `lin`, and the rows: the gradient `r` at the solve's
    /// point in `w.g`, `s = J_t lambda` in `w.dx`, `M s` in `w.md`, `M J_t
    /// a_0` in `w.rhs`, `M Jdot zdot` in `w.x0`, and the VJP kernel's `H_y s`
    /// and start-row partials in the buffers.
    fn linear_start_adjoint(&self, tree: &Tree, red: &mut Reduced, w: &Scratch, e: usize, h: f64) {
        let s = self.stride();
        let nz = tree.n;
        let lane = &mut red.lanes[e];
        let (poses, twists) = (&lane.poses_t, &lane.twists_t);
        let b = &mut lane.lin_bar;
        let lambda = &lane.dz;
        let (d_x, d_prev_x) = (&self.b.d_x, &self.b.d_prev_x);
        let row = |v: &[f64], r: usize| v[r * s + e];
        // Into `delta` (a scratch here): the negated z_t terms, subtracted at the end.
        let t = &mut b.delta;
        t.fill(0.0);
        // J_t^T r: its curvature against lambda.
        tree.curvature_product(poses, twists, |r| row(&w.g, r), lambda, t, &mut b.tables);
        // The energies at x = y_t + J_t lin (the coordinate rows q_t + lin)
        // and at the start rows: J_t^T (H_y s + their partials) and H_y s's
        // curvature against lin.
        let hs = |r: usize| d_x[r * s + e].to_f64();
        let both = |r: usize| hs(r) + d_prev_x[r * s + e].to_f64();
        tree.moments(poses, both, &mut lane.moments);
        lane.g.fill(0.0);
        tree.reduce_gradient(twists, &lane.moments, &mut lane.g);
        for (tk, gk) in t.iter_mut().zip(&lane.g) {
            *tk += gk;
        }
        for jt in &tree.joints {
            // A hinge's or slider's row is its coordinate (a rotation
            // vector's reads are pulled through its chart at the end).
            if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                t[jt.z] += both(jt.row);
            }
        }
        tree.curvature_product(poses, twists, hs, &lane.lin, t, &mut b.tables);
        // The inertia term's J_t (lin - pred) against M s / h^2; the mass
        // matrix of the prediction's a_0 = -M_z^-1 (b + f): lambda . dM_z a_0.
        for (d, (l, p)) in b.mu.iter_mut().zip(lane.lin.iter().zip(&lane.pred)) {
            *d = (l - p) / (h * h);
        }
        tree.curvature_product(poses, twists, |r| row(&w.md, r), &b.mu, t, &mut b.tables);
        tree.curvature_product(poses, twists, |r| row(&w.rhs, r), lambda, t, &mut b.tables);
        tree.curvature_product(poses, twists, |r| row(&w.md, r), &b.a0, t, &mut b.tables);
        // The velocity-product forces b = J^T M (Jdot zdot): by z_t, the
        // curvature against M Jdot zdot and the third derivatives against M s;
        // by zdot_t, 2 (d (J zdot)/dz)^T M s.
        tree.curvature_product(poses, twists, |r| row(&w.x0, r), lambda, t, &mut b.tables);
        tree.third_product(
            poses,
            twists,
            |r| row(&w.md, r),
            &lane.zdot,
            t,
            &mut b.tables,
        );
        b.mu.fill(0.0);
        tree.symmetric_curvature_product(
            poses,
            twists,
            |r| row(&w.md, r),
            &lane.zdot,
            &mut b.mu,
            &mut b.tables,
        );
        for (zb, m) in b.zdotbar.iter_mut().zip(&b.mu) {
            *zb -= 2.0 * m;
        }
        for (zb, t) in lane.zbar.iter_mut().zip(t.iter()) {
            *zb -= t;
        }
        // The prediction: predbar = M_z lambda / h^2, through pred = h zdot + h^2 a_0.
        for i in 0..nz {
            let m: f64 = (0..nz).map(|k| lane.mass_z[i * nz + k] * lambda[k]).sum();
            b.zdotbar[i] += m / h;
        }
        // The joint forces f (damping at zdot_t, stiffness and servos at
        // q_t), the ranges' dependence on the start, and a coordinate row's
        // own inertia term (its prediction q_t + h qdot_t).
        for (j, jt) in tree.joints.iter().enumerate() {
            if !matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                continue;
            }
            let (k, l) = (jt.z, lambda[jt.z]);
            let kp = jt.servo.map_or(0.0, |(_, kp)| kp);
            let q = lane.state[j].q;
            let [_, _, d2, .., cross, cross_v] = soft_limit(lane.ends[j], q);
            // The ranges at q = q_t + lin: by q_t directly (cross) and
            // through q (their curvature).
            let curvature = d2 + tree.barrier_curvature(j, q);
            lane.zbar[k] -= l * (jt.stiffness + kp + cross + curvature);
            b.zdotbar[k] -= l * (jt.damping + cross_v);
            b.zdotbar[k] += row(&w.md, jt.row) / h;
        }
    }

    /// The rows `M J_t x` into `w.md` (`J_t x` into `w.d`) for every stepped
    /// lane's vector `x` of its [`LinearBar`], at the start's kinematics.
    fn mass_jacobian_rows(
        &self,
        scene: &Scene,
        tree: &Tree,
        red: &Reduced,
        w: &mut Scratch,
        x: impl Fn(&LinearBar) -> &Vec<f64>,
    ) {
        let s = self.stride();
        w.d.fill(0.0);
        for e in 0..self.len {
            let lane = &red.lanes[e];
            let d = &mut w.d;
            tree.tangent_velocities(&lane.poses_t, &lane.twists_t, x(&lane.lin_bar), |r, v| {
                d[r * s + e] = v
            });
        }
        scene.mass.mul(&w.d, &mut w.md, s);
    }
}
