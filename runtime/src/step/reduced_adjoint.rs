//! The adjoint of a reduced substep (`reduced`): the implicit function
//! theorem in joint coordinates.
//!
//! At the solution `z*` (in the chart centred there) the step's outputs are
//! the link rows `y* = K(z*)` and their velocities `(y* - y_t)/h`, the
//! hinge and slider rows `q*` and `(q* - q_t)/h`, the ball and free rows'
//! rotation vectors and `log(R* R_t^T)/h`, and the free rows outside the
//! trees. With `Lbar` the derivative of the loss by `z*` through all of them,
//! `H_z lambda = Lbar` (the surrogates' Hessian) and the maximal seed
//! `s = J lambda`, the VJP kernel gives the mixed partials of
//! `s . grad E` by the start rows, params and controls, as in the maximal
//! adjoint (rows outside the trees: the prediction `x_t + h v_t` reads
//! their velocities, whose adjoint is `M s / h - d_prev_v`); the rest is
//! the start's own kinematics: `y_t = K(z_t)` (through `J_t^T`), the links'
//! prediction `3 K(z_1) - K(z_2) - y_t` (through `J_1^T`, `J_2^T` and the
//! retraction `z_k = retract(z_t, k h zdot_t)`: for a rotation,
//! `exp(k h w)^T` to the start's and `k h J_l(k h w)^T` to the rate), a
//! floating tree's momentum shift, the joint terms' dependence on `q_t`,
//! `qdot_t`, and the rotation vectors the ball and free rows store (through
//! SO(3)'s left Jacobian).

use super::held::held_adjoint_settled;
use super::potential::Lanes;
use super::reduced::{cholesky_solve, shifted_cholesky_solve, soft_limit, DRIFTS};
use super::{set_seed, Adjoint, Part, Scratch, Snapshot};
use crate::joints::kinematics::{exp, left_jacobian, left_jacobian_inverse, log, Twist};
use crate::joints::{Pose, Tree, TreeJoint};
use crate::Scene;
use glam::DVec3;
use joule_compiler::abi::Real;
use joule_compiler::kernels::KernelKind;
use joule_compiler::model::JointKind;

impl<T: Real> Part<T> {
    /// Adjoint of one reduced substep from `start` to `end` (see
    /// [`Part::substep_adjoint`], which calls it for scenes with joint trees).
    pub(super) fn reduced_adjoint(
        &mut self,
        scene: &Scene,
        start: &Snapshot,
        end: &Snapshot,
        adj: &mut Adjoint,
    ) {
        let tree = scene.tree().expect("a scene with joint trees");
        let h = scene.substep();
        let (n, s) = (scene.dofs(), self.stride());
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        let mut red = self.reduced.take().expect("a reduced workspace");
        self.restore(start);
        self.reduced_start(scene, tree, &mut red, &mut w, h);
        // The solution: its joint state, link rows and velocities as the
        // kernels saw them.
        let k = end.x.len();
        super::store(&mut self.b.x[..k], &end.x);
        for e in 0..s {
            let lane = &mut red.lanes[e];
            let x = &self.b.x;
            tree.read_state(|r| x[r * s + e].to_f64(), &mut lane.state);
            tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
            let xb = &mut self.b.x;
            tree.write_rows(&lane.poses, |r, v| xb[r * s + e] = T::from_f64(v));
        }
        self.hold(scene);
        self.potential_gradient(scene, &mut w, h, Lanes::All);
        for e in 0..s {
            w.active[e] = e < self.len;
            if w.active[e] {
                let lane = &mut red.lanes[e];
                let g = &w.g;
                tree.moments(&lane.poses, |r| g[r * s + e], &mut lane.moments);
            }
        }
        self.reduced_blocks(scene, tree, &mut red, h, true, |_| true);
        tree.reduced_hessians(&mut red, &w.active, true, |e, l| {
            self.link_hessian_mass(scene, tree, l, e, h * h)
        });
        // lambda = H_z^-1 Lbar, and the seed s = J lambda.
        for i in 0..n * s {
            w.rhs[i] = adj.x[i] + adj.v[i] / h;
        }
        w.dx.fill(0.0);
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let (mut lbar, mut hz) = (std::mem::take(&mut lane.g), std::mem::take(&mut lane.h));
            lbar.fill(0.0); // the joint terms' gradient, not needed here
            let controls = &self.b.controls;
            let u = |c: u32| controls[c as usize * s + e].to_f64();
            tree.joint_terms(lane, h, true, u, Some((&mut lbar, &mut hz)));
            // Lbar: the link rows through J^T, the coordinate rows, free rows.
            let rhs = &w.rhs;
            tree.moments(&lane.poses, |r| rhs[r * s + e], &mut lane.moments);
            lbar.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lbar);
            for (j, jt) in tree.joints.iter().enumerate() {
                let row = |k: usize| (jt.row + k) * s + e;
                let v3 = |b: &[f64], k: usize| DVec3::new(b[row(k)], b[row(k + 1)], b[row(k + 2)]);
                let (now, was) = (&lane.state[j], &lane.start[j]);
                match jt.kind {
                    JointKind::Hinge | JointKind::Slider => lbar[jt.z] += w.rhs[row(0)],
                    JointKind::Ball => {
                        let d = left_jacobian_inverse(log(now.r)).transpose() * v3(&adj.x, 0)
                            + left_jacobian_inverse(log(now.r * was.r.transpose())).transpose()
                                * v3(&adj.v, 0)
                                / h;
                        add3(&mut lbar, jt.z, d);
                    }
                    JointKind::Free => {
                        add3(&mut lbar, jt.z, v3(&adj.x, 0) + v3(&adj.v, 0) / h);
                        let d = left_jacobian_inverse(log(now.r * jt.initial.r.transpose()))
                            .transpose()
                            * v3(&adj.x, 3)
                            + left_jacobian_inverse(log(now.r * was.r.transpose())).transpose()
                                * v3(&adj.v, 3)
                                / h;
                        add3(&mut lbar, jt.z + 3, d);
                    }
                }
            }
            for (z, row) in tree.row_of.iter().enumerate() {
                if let Some(r) = row {
                    lbar[z] = w.rhs[r * s + e];
                }
            }
            lane.dz.copy_from_slice(&lbar);
            if !shifted_cholesky_solve(&mut hz, tree.n, &mut lane.dz, &mut red.work) {
                lane.dz.fill(f64::NAN);
            }
            lane.g = lbar;
            lane.h = hz;
            let (lane, dx) = (&red.lanes[e], &mut w.dx);
            tree.seed(&lane.poses, &lane.twists, &lane.dz, |r, v| {
                dx[r * s + e] = v
            });
        }
        if scene.holds {
            self.reduced_held_adjoint(scene, tree, &mut red, &mut w);
        }
        set_seed(&mut self.b, &w.dx);
        self.vjp(scene, KernelKind::Adjoint);
        scene.mass.mul(&w.dx, &mut w.md, s);
        if !scene.mass_scales().is_empty() {
            // A link's inertia term `W(p) (y - y~) / h^2`, met by the seed.
            let (x, xt) = (&self.b.x, &w.xt);
            let mut dvalues =
                self.inertia_value_seeds(scene, &w.dx, &w.md, |i| x[i].to_f64() - xt[i], h);
            self.param_mass_rows(scene, &w.dx, &mut w.md);
            self.floating_shift_adjoint(scene, tree, &w.md, h, &mut dvalues);
            self.mass_scales_to_params(scene, &dvalues, &mut adj.params);
        }
        // ybar_t (w.d): the start rows' adjoint through the mass term, the
        // kernels and the velocities' secants (not of the ball and free rows,
        // whose velocities are rotation vectors).
        for i in 0..n * s {
            w.d[i] = w.md[i] / (h * h) - self.b.d_prev_x[i].to_f64() - adj.v[i] / h;
        }
        // The floating trees' shift: `rbar = M T (T^T P) / m` (into `w.dx`)
        // for the prediction's adjoint `P = M s / h^2` on their links' rows.
        w.rhs.fill(0.0);
        tree.add_floating_mean(&w.md, h * h, &mut w.rhs, s, self.len, |l, e| {
            self.link_mass(scene, tree, l, e)
        });
        scene.mass.mul(&w.rhs, &mut w.dx, s);
        if !scene.mass_scales().is_empty() {
            self.param_mass_rows(scene, &w.rhs, &mut w.dx);
        }
        // The links' prediction reads their start rows with weight -1 (not
        // +1 and their velocities, as the other rows' `x_t + h v_t` does),
        // and through the shift's `2 y_t - K(z_-1) - y~` with weight 3.
        for link in &tree.links {
            for k in 0..12 {
                for e in 0..s {
                    let i = (link.row + k) * s + e;
                    w.d[i] += 3.0 * w.dx[i] - 2.0 * w.md[i] / (h * h);
                }
            }
        }
        for jt in &tree.joints {
            if matches!(jt.kind, JointKind::Ball | JointKind::Free) {
                for k in 0..jt.kind.dofs() {
                    for e in 0..s {
                        let i = (jt.row + k) * s + e;
                        w.d[i] += adj.v[i] / h;
                    }
                }
            }
        }
        for e in 0..s {
            let lane = &mut red.lanes[e];
            let zbar = &mut lane.zbar;
            zbar.fill(0.0);
            if e < self.len {
                // J_t^T ybar_t.
                let d = &w.d;
                tree.moments(&lane.poses_t, |r| d[r * s + e], &mut lane.moments);
                tree.reduce_gradient(&lane.twists_t, &lane.moments, zbar);
            }
            // zdot_t's adjoint: the armature's (the links' prediction's is
            // added below).
            let zdotbar = &mut lane.g;
            zdotbar.fill(0.0);
            for (j, jt) in tree.joints.iter().enumerate() {
                let row = |k: usize| (jt.row + k) * s + e;
                let lambda = lane.dz[jt.z];
                let (now, was) = (&lane.state[j], &lane.start[j]);
                match jt.kind {
                    JointKind::Hinge | JointKind::Slider => {
                        // The soft range's force depends on q_t and qdot_t too.
                        let [.., cross, cross_v] = soft_limit(lane.ends[j], now.q);
                        zbar[jt.z] +=
                            w.d[row(0)] + lambda * (jt.armature / (h * h) + jt.damping / h - cross);
                        zdotbar[jt.z] += lambda * (jt.armature / h - cross_v);
                        // The actuators' forces -gear u and -kp u: dL/du = -lambda dG/du.
                        if e < self.len {
                            for (c, k) in jt.motor.into_iter().chain(jt.servo) {
                                adj.controls[c as usize * s + e] += lambda * k;
                            }
                        }
                    }
                    JointKind::Ball => {
                        let vbar = DVec3::new(adj.v[row(0)], adj.v[row(1)], adj.v[row(2)]);
                        let d = -(left_jacobian_inverse(log(now.r * was.r.transpose())) * vbar) / h;
                        add3(zbar, jt.z, d);
                    }
                    JointKind::Free => {
                        let vt = DVec3::new(adj.v[row(0)], adj.v[row(1)], adj.v[row(2)]);
                        add3(zbar, jt.z, -vt / h);
                        let vr = DVec3::new(adj.v[row(3)], adj.v[row(4)], adj.v[row(5)]);
                        let d = -(left_jacobian_inverse(log(now.r * was.r.transpose())) * vr) / h;
                        add3(zbar, jt.z + 3, d);
                    }
                }
            }
        }
        // The links' prediction `3 K(z_1) - K(z_2)` and the shift's
        // `-K(z_-1)`: through each drift point's kinematics and its
        // retraction `z_k = retract(z_t, k h zdot_t)`. Weights of `P` (`M s /
        // h^2`) and of the shift's `rbar` per drift point.
        let used = 2 + !tree.floating.is_empty() as usize;
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            for ((d, k), (wp, wr)) in lane.drifts.iter().zip(DRIFTS).zip(DRIFT_WEIGHTS).take(used) {
                let tau = k * h;
                let (md, shift) = (&w.md, &w.dx);
                let p = |r: usize| wp * md[r * s + e] / (h * h) - wr * shift[r * s + e];
                tree.moments(&d.poses, p, &mut lane.moments);
                lane.drift_bar.fill(0.0);
                tree.reduce_gradient(&d.twists, &lane.moments, &mut lane.drift_bar);
                let (gz, zbar, zdotbar) = (&lane.drift_bar, &mut lane.zbar, &mut lane.g);
                let v3 = |b: &[f64], k: usize| DVec3::new(b[k], b[k + 1], b[k + 2]);
                for jt in &tree.joints {
                    let rotation = |k: usize, zbar: &mut [f64], zdotbar: &mut [f64]| {
                        let phi = v3(&lane.zdot, k) * tau;
                        add3(zbar, k, exp(phi).transpose() * v3(gz, k));
                        add3(zdotbar, k, left_jacobian(phi).transpose() * v3(gz, k) * tau);
                    };
                    match jt.kind {
                        JointKind::Hinge | JointKind::Slider => {
                            zbar[jt.z] += gz[jt.z];
                            zdotbar[jt.z] += tau * gz[jt.z];
                        }
                        JointKind::Ball => rotation(jt.z, zbar, zdotbar),
                        JointKind::Free => {
                            add3(zbar, jt.z, v3(gz, jt.z));
                            add3(zdotbar, jt.z, v3(gz, jt.z) * tau);
                            rotation(jt.z + 3, zbar, zdotbar);
                        }
                    }
                }
            }
        }
        // The start rows' adjoints.
        for i in 0..n * s {
            adj.v[i] = -self.b.d_prev_v[i].to_f64();
        }
        for e in 0..s {
            let lane = &mut red.lanes[e];
            for link in &tree.links {
                for k in 0..12 {
                    adj.x[(link.row + k) * s + e] = 0.0;
                }
            }
            for r in tree.row_of.iter().flatten() {
                let i = r * s + e;
                adj.x[i] = w.d[i];
                adj.v[i] += w.md[i] / h;
            }
            for jt in &tree.joints {
                self.start_coordinates_adjoint(tree, jt, &lane.zbar, &lane.g, start, adj, e);
            }
        }
        self.accumulate(adj, -1.0);
        self.reduced = Some(red);
        self.scratch = w;
    }
}

impl<T: Real> Part<T> {
    /// Joint `jt`'s start rows' adjoints in lane `e` from the reduced
    /// coordinates' (`zbar` by the coordinates, `zdotbar` by their rates):
    /// its coordinate rows through their charts, less what the kernels read
    /// of a rotation vector's rows directly (a hinge's or slider's reads
    /// are in `zbar` already), and its rate rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_coordinates_adjoint(
        &self,
        tree: &Tree,
        jt: &TreeJoint,
        zbar: &[f64],
        zdotbar: &[f64],
        start: &Snapshot,
        adj: &mut Adjoint,
        e: usize,
    ) {
        let s = self.stride();
        let row = |k: usize| (jt.row + k) * s + e;
        let d = tree.coordinate_rows_adjoint(jt, zbar, |k| start.x[row(k)]);
        let direct = !matches!(jt.kind, JointKind::Hinge | JointKind::Slider);
        for (k, d) in d.iter().enumerate().take(jt.kind.dofs()) {
            let read = if direct {
                self.b.d_prev_x[row(k)].to_f64()
            } else {
                0.0
            };
            adj.x[row(k)] = d - read;
            adj.v[row(k)] += zdotbar[jt.z + k];
        }
    }

    /// Pulls what the objective read directly of the links' rows at the
    /// initial state `initial` (outputs' `prev(..)` at the first step: the
    /// entries of `xbar` on link rows) back onto the joint coordinates
    /// through forward kinematics, and clears them: a state set from
    /// outside places the links by their coordinates (`Sim::set_state`), so
    /// the links' rows are not independent of them.
    /// The adjoint through the held values in joint coordinates (see
    /// `Part::held_adjoint`, its maximal form): `lambda <- H_z^-1 (Lbar - J^T
    /// (dG/dx_h)^T J lambda)` from `lambda = H_z^-1 Lbar` (in the lanes' `dz`,
    /// with `Lbar` in `g` and `H_z`'s factor in `h`), the seed `J lambda`
    /// kept in `w.dx`.
    fn reduced_held_adjoint(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut super::reduced::Reduced,
        w: &mut Scratch,
    ) {
        let s = self.stride();
        for e in 0..s {
            w.active[e] = e < self.len && red.lanes[e].dz.iter().all(|d| d.is_finite());
        }
        self.held_adjoint_iterations(scene, w, |part, mixing, w| {
            for e in 0..part.len {
                if !w.active[e] {
                    continue;
                }
                let lane = &mut red.lanes[e];
                let d = &part.b.d_held_x;
                let mut c = std::mem::take(&mut lane.zbar);
                pull_positions(tree, lane, |r| d[r * s + e].to_f64(), &mut c);
                for (c, l) in c.iter_mut().zip(&lane.g) {
                    *c = l - *c;
                }
                cholesky_solve(&lane.h, tree.n, &mut c);
                let change = c
                    .iter()
                    .zip(&lane.dz)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                let size = c.iter().map(|a| a.abs()).fold(0.0, f64::max);
                if held_adjoint_settled(change, size) {
                    w.active[e] = false;
                    lane.dz.copy_from_slice(&c);
                } else {
                    let (u, next) = (&lane.dz, &mut w.d);
                    mixing.update(
                        e,
                        tree.n,
                        |r| u[r],
                        |r| c[r],
                        1.0,
                        |r, v| next[r * s + e] = v,
                    );
                    for (r, dz) in lane.dz.iter_mut().enumerate() {
                        *dz = w.d[r * s + e];
                    }
                }
                lane.zbar = c;
                let (lane, dx) = (&red.lanes[e], &mut w.dx);
                tree.seed(&lane.poses, &lane.twists, &lane.dz, |r, v| {
                    dx[r * s + e] = v
                });
            }
        });
    }

    pub(crate) fn pull_initial_links(&mut self, tree: &Tree, initial: &Snapshot, xbar: &mut [f64]) {
        let s = self.stride();
        let mut red = self.reduced.take().expect("a reduced workspace");
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            tree.read_state(|r| initial.x[r * s + e], &mut lane.state);
            tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
            tree.moments(&lane.poses, |r| xbar[r * s + e], &mut lane.moments);
            lane.zbar.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.zbar);
            for link in &tree.links {
                for k in 0..12 {
                    xbar[(link.row + k) * s + e] = 0.0;
                }
            }
            for jt in &tree.joints {
                let row = |k: usize| (jt.row + k) * s + e;
                let d = tree.coordinate_rows_adjoint(jt, &lane.zbar, |k| initial.x[row(k)]);
                for (k, d) in d.iter().enumerate().take(jt.kind.dofs()) {
                    xbar[row(k)] += d;
                }
            }
        }
        self.reduced = Some(red);
    }
}

/// Per drift point of [`DRIFTS`], the weights of the prediction's adjoint
/// `P` and of the floating trees' shift `rbar` in its kinematics' adjoint:
/// `3 K(z_1)` and `-K(z_2)` carry `P - rbar`, `-K(z_-1)` carries `-rbar`.
const DRIFT_WEIGHTS: [(f64, f64); 3] = [(3.0, 3.0), (-1.0, -1.0), (0.0, 1.0)];

/// `J^T d` for a covector `d` of the maximal position rows at the lane's
/// state (its links' rows through the chain, the coordinate rows through
/// their own charts, free rows outside the trees as they are) into `out`.
fn pull_positions(
    tree: &Tree,
    lane: &mut super::reduced::Lane,
    d: impl Fn(usize) -> f64,
    out: &mut [f64],
) {
    tree.moments(&lane.poses, &d, &mut lane.moments);
    out.fill(0.0);
    tree.reduce_gradient(&lane.twists, &lane.moments, out);
    let v3 = |r: usize| DVec3::new(d(r), d(r + 1), d(r + 2));
    for (j, jt) in tree.joints.iter().enumerate() {
        let now = &lane.state[j];
        match jt.kind {
            JointKind::Hinge | JointKind::Slider => out[jt.z] += d(jt.row),
            JointKind::Ball => {
                add3(
                    out,
                    jt.z,
                    left_jacobian_inverse(log(now.r)).transpose() * v3(jt.row),
                );
            }
            JointKind::Free => {
                add3(out, jt.z, v3(jt.row));
                let r = now.r * jt.initial.r.transpose();
                add3(
                    out,
                    jt.z + 3,
                    left_jacobian_inverse(log(r)).transpose() * v3(jt.row + 3),
                );
            }
        }
    }
    for (z, row) in tree.row_of.iter().enumerate() {
        if let Some(r) = row {
            out[z] = d(*r);
        }
    }
}

/// Adds a 3-vector to `v[k..k + 3]`.
pub(super) fn add3(v: &mut [f64], k: usize, d: DVec3) {
    for c in 0..3 {
        v[k + c] += d[c];
    }
}

impl Tree {
    /// The adjoint of joint `jt`'s coordinate rows (the first `dofs()`
    /// entries) from `zbar`, the adjoint of the reduced coordinates: a
    /// hinge's, slider's or free joint's displacement as it is, a rotation
    /// vector `phi` (rows' values `row(k)`) through SO(3)'s left Jacobian
    /// (`theta = J_l(phi) dphi`, so `phibar = J_l(phi)^T thetabar`).
    pub(crate) fn coordinate_rows_adjoint(
        &self,
        jt: &TreeJoint,
        zbar: &[f64],
        row: impl Fn(usize) -> f64,
    ) -> [f64; 6] {
        let v3 = |k: usize| DVec3::new(zbar[k], zbar[k + 1], zbar[k + 2]);
        let phi = |k: usize| DVec3::new(row(k), row(k + 1), row(k + 2));
        match jt.kind {
            JointKind::Hinge | JointKind::Slider => [zbar[jt.z], 0.0, 0.0, 0.0, 0.0, 0.0],
            JointKind::Ball => {
                let d = left_jacobian(phi(0)).transpose() * v3(jt.z);
                [d.x, d.y, d.z, 0.0, 0.0, 0.0]
            }
            JointKind::Free => {
                let (t, d) = (v3(jt.z), left_jacobian(phi(3)).transpose() * v3(jt.z + 3));
                [t.x, t.y, t.z, d.x, d.y, d.z]
            }
        }
    }

    /// The maximal seed `J lambda`: link rows from the chains' twists at
    /// `poses`, hinge and slider rows and free rows outside the trees from
    /// their coordinate, 0 on the ball and free rows.
    pub(crate) fn seed(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        lambda: &[f64],
        mut set: impl FnMut(usize, f64),
    ) {
        self.tangent_velocities(poses, twists, lambda, &mut set);
        for jt in &self.joints {
            if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                set(jt.row, lambda[jt.z]);
            }
        }
        for (z, row) in self.row_of.iter().enumerate() {
            if let Some(r) = row {
                set(*r, lambda[z]);
            }
        }
    }
}
