//! `rk4`: MuJoCo's `RK4` over joint coordinates. The classic fourth-order
//! Runge-Kutta method on the state `(z, zdot)`, whose accelerations at a
//! state are those of the constraint solve there: each stage is the solve
//! of implicit Euler with linear kinematics (`reduced`, [`Part::reduced_solve`])
//! from the stage's state, and its acceleration `(lin - h zdot) / h^2` (the
//! coordinates' damping, stiffness and actuators at the stage's state, as
//! forces, and no implicit damping: MuJoCo's forward dynamics). Stage `i`
//! starts at `z_0 (+) h sum_j A_ij zdot_j` with rates `zdot_0 + h sum_j
//! A_ij a_j`, and the step ends at `z_0 (+) h sum_j B_j zdot_j` with rates
//! `zdot_0 + h sum_j B_j a_j`.
//!
//! A ball's or free joint's rotation sums its rates and accelerations as
//! MuJoCo does, in the body's frame: each stage's are turned into the frame
//! of its own rotation `R_j` (`R_j^T w`), summed, and turned back, by the
//! start's rotation for the step (`exp(R_0 phi) R_0 = R_0 exp(phi)`) and by
//! the stage's for its rates. (A rotation's rate in its own frame
//! changes only by its acceleration: `R^T w`'s derivative is `R^T wdot`.)
//! Free rows outside the trees are summed as they are.

use super::reduced::Reduced;
use super::{load, store, Part, Scratch};
use crate::joints::Tree;
use crate::Scene;
use glam::DVec3;
use joule_compiler::abi::Real;
use joule_compiler::model::JointKind;

/// The tableau: stage `i` (1..4) moves by `A[i - 1][j]` of the stages
/// before it, the step by `B[j]` of all four.
const A: [[f64; 3]; 3] = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]];
const B: [f64; 4] = [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0];

impl<T: Real> Part<T> {
    /// One `rk4` substep (see the module docs) of a scene with joint trees.
    pub(super) fn runge_kutta(
        &mut self,
        scene: &Scene,
        h: f64,
        iterations: u32,
        tol: f64,
        step: usize,
    ) {
        let tree = scene.tree().expect("rk4 is refused without joint trees");
        let (n, s, nz) = (scene.dofs(), self.stride(), tree.n);
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        let mut red = self.reduced.take().expect("a reduced workspace");
        red.linear = true;
        load(&mut red.rk_x, &self.b.x[..n * s]);
        load(&mut red.rk_v, &self.b.v[..n * s]);
        for stage in 0..4 {
            if stage > 0 {
                // The stage's state from the start and the stages before it.
                let weights = &A[stage - 1][..stage];
                for e in 0..self.len {
                    self.place_stage(tree, &mut red, e, weights, h);
                }
            }
            self.reduced_solve(
                scene,
                tree,
                &mut red,
                &mut w,
                (h, iterations, tol),
                step,
                None,
            );
            // The stage's rates and accelerations, in their rotations' frames
            // (the first stage's state is the step's start).
            for e in 0..self.len {
                let lane = &mut red.lanes[e];
                if stage == 0 {
                    lane.rk_start.copy_from_slice(&lane.start);
                }
                let (rates, accel) = (
                    &mut lane.rk_rates[stage * nz..(stage + 1) * nz],
                    &mut lane.rk_accel[stage * nz..(stage + 1) * nz],
                );
                for z in 0..tree.joint_coords {
                    rates[z] = lane.zdot[z];
                    accel[z] = (lane.lin[z] - h * lane.zdot[z]) / (h * h);
                }
                for (z, row) in tree.row_of.iter().enumerate() {
                    if let Some(r) = row {
                        let i = r * s + e;
                        let v = self.b.v[i].to_f64();
                        rates[z] = v;
                        accel[z] = (self.b.x[i].to_f64() - w.x_t[i] - h * v) / (h * h);
                    }
                }
                for_rotations(tree, |j, k| {
                    let to_own = lane.start[j].r.transpose();
                    let (r, a) = (to_own * get3(rates, k), to_own * get3(accel, k));
                    set3(rates, k, r);
                    set3(accel, k, a);
                });
            }
        }
        for e in 0..self.len {
            self.place_stage(tree, &mut red, e, &B, h);
        }
        // `prev(..)` reads the step's start.
        store(&mut self.b.prev_x[..n * s], &red.rk_x);
        store(&mut self.b.prev_v[..n * s], &red.rk_v);
        self.reduced = Some(red);
        self.scratch = w;
    }

    /// Writes lane `e`'s state `z_0 (+) h sum_j c_j zdot_j`, rates `zdot_0 +
    /// h sum_j c_j a_j` (`c`: the weights of the stages `0..c.len()`) into
    /// the rows: the coordinate rows, the links' poses by forward
    /// kinematics and their velocities at the tangent `J zdot`, free rows
    /// outside the trees.
    fn place_stage(&mut self, tree: &Tree, red: &mut Reduced, e: usize, c: &[f64], h: f64) {
        let (s, nz, jc) = (self.stride(), tree.n, tree.joint_coords);
        let lane = &mut red.lanes[e];
        // Sums in the rotations' own frames: `lin` the step, `pred` the rates.
        let (step, rates) = (&mut lane.lin, &mut lane.pred);
        let sum = |z: usize| {
            let (mut dq, mut dv) = (0.0, 0.0);
            for (j, cj) in c.iter().enumerate() {
                dq += cj * lane.rk_rates[j * nz + z];
                dv += cj * lane.rk_accel[j * nz + z];
            }
            (h * dq, h * dv)
        };
        for z in 0..jc {
            let (dq, dv) = sum(z);
            step[z] = dq;
            rates[z] = lane.rk_rates[z] + dv;
        }
        for (z, row) in tree.row_of.iter().enumerate() {
            if let Some(r) = row {
                let (dq, dv) = sum(z);
                let i = r * s + e;
                self.b.x[i] = T::from_f64(red.rk_x[i] + dq);
                self.b.v[i] = T::from_f64(red.rk_v[i] + dv);
            }
        }
        // The step about the start's rotations, the rates in the stage's.
        for_rotations(tree, |j, k| {
            let d = lane.rk_start[j].r * get3(step, k);
            set3(step, k, d);
        });
        tree.retract(&lane.rk_start, step, 1.0, &mut lane.state);
        for_rotations(tree, |j, k| {
            let d = lane.state[j].r * get3(rates, k);
            set3(rates, k, d);
        });
        tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
        let b = &mut self.b;
        tree.write_rows(&lane.poses, |r, v| b.x[r * s + e] = T::from_f64(v));
        tree.tangent_velocities(&lane.poses, &lane.twists, &rates[..jc], |r, v| {
            b.v[r * s + e] = T::from_f64(v)
        });
        for (j, jt) in tree.joints.iter().enumerate() {
            let x = tree.coordinate_values(j, &lane.state[j]);
            for k in 0..jt.kind.dofs() {
                b.x[(jt.row + k) * s + e] = T::from_f64(x[k]);
            }
        }
        for (k, rate) in rates.iter().enumerate().take(jc) {
            b.v[tree.coordinate_row(k) * s + e] = T::from_f64(*rate);
        }
    }
}

/// Calls `f(j, k)` for every ball's and free joint's rotation: its joint
/// and its first reduced coordinate.
fn for_rotations(tree: &Tree, mut f: impl FnMut(usize, usize)) {
    for (j, jt) in tree.joints.iter().enumerate() {
        match jt.kind {
            JointKind::Ball => f(j, jt.z),
            JointKind::Free => f(j, jt.z + 3),
            JointKind::Hinge | JointKind::Slider => {}
        }
    }
}

fn get3(v: &[f64], k: usize) -> DVec3 {
    DVec3::new(v[k], v[k + 1], v[k + 2])
}

fn set3(v: &mut [f64], k: usize, d: DVec3) {
    v[k..k + 3].copy_from_slice(&d.to_array());
}
