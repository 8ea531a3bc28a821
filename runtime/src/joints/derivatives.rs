//! Second and third derivatives of the links' rows by the joint
//! coordinates, contracted with a covector of the rows: what the adjoint of
//! a step with linear kinematics (MuJoCo's Euler, `step/linear_adjoint.rs`)
//! differentiates its Jacobians, mass matrix and velocity-product forces
//! with. Trees of hinges and sliders only (the case that adjoint covers).
//!
//! With every coordinate's world twist `S_k = (w_k, v_k)` at the pose
//! (`kinematics`), a link row `y` (its origin `p`, or a column `d` of its
//! rotation) moves by `S_c y = w_c x p + v_c` (or `w_c x d`) per unit of a
//! coordinate `c` on its chain. A twist depends only on the coordinates
//! before it on the chain (`dS_c/dz_b = [S_b, S_c]` for `b` before `c`),
//! so a product of exponentials has, for chain positions `a <= b <= c`,
//!
//! `d2y / dz_a dz_b = w_a x (S_b y)`,
//! `d3y / dz_a dz_b dz_c = w_a x (w_b x (S_c y))`
//!
//! (by the Jacobi identity; a slider's `w` is 0, so any derivative that
//! meets a slider before the last index is 0), symmetric in the indices.

use super::kinematics::Twist;
use super::{Pose, Tree};
use glam::DVec3;
use joule_compiler::model::JointKind;

impl Tree {
    /// Whether every joint is a hinge or a slider (the coordinates add, and
    /// the derivatives above are the whole story).
    pub(crate) fn hinges_and_sliders(&self) -> bool {
        self.joints
            .iter()
            .all(|j| matches!(j.kind, JointKind::Hinge | JointKind::Slider))
    }

    /// `out[k] += sum_i u[i] v . d2y/dz_i dz_k` over the links' rows (`v(row)`
    /// the covector), at `poses` with the coordinates' `twists` there: the
    /// curvature of the kinematics applied to `u`, `d (J^T v)/dz u` (which
    /// is also `(d (J u)/dz)^T v`).
    pub(crate) fn curvature_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            let (ys, vs) = rows(link.row, pose, &v);
            let chain = &link.chain;
            for (b, &cb) in chain.iter().enumerate() {
                for (a, &ca) in chain.iter().enumerate().take(b + 1) {
                    // d2y/dz_ca dz_cb, a <= b on the chain.
                    let d: f64 = (0..4)
                        .map(|k| vs[k].dot(twists[ca].w.cross(moved(&twists[cb], ys[k], k))))
                        .sum();
                    out[cb] += u[ca] * d;
                    if a != b {
                        out[ca] += u[cb] * d;
                    }
                }
            }
        }
    }

    /// `out[k] += sum_ij u[i] u[j] v . d3y/dz_i dz_j dz_k` over the links'
    /// rows: the derivative by the coordinates of `v . (Jdot u)` with `Jdot
    /// u = sum_ij u_i u_j d2y/dz_i dz_j` held at the rates `u` (the
    /// velocity-product accelerations `Tree::bias_accelerations` computes).
    pub(crate) fn third_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            let (ys, vs) = rows(link.row, pose, &v);
            let chain = &link.chain;
            let m = chain.len();
            // Every sorted triple a <= b <= c of chain positions, weighted by
            // the ordered (i, j, k) that sort to it with k the free index.
            for c in 0..m {
                let moved_c: [DVec3; 4] =
                    std::array::from_fn(|k| moved(&twists[chain[c]], ys[k], k));
                for b in 0..=c {
                    let wb = twists[chain[b]].w;
                    let inner: [DVec3; 4] = std::array::from_fn(|k| wb.cross(moved_c[k]));
                    for a in 0..=b {
                        let wa = twists[chain[a]].w;
                        let d: f64 = (0..4).map(|k| vs[k].dot(wa.cross(inner[k]))).sum();
                        if d == 0.0 {
                            continue;
                        }
                        let idx = [chain[a], chain[b], chain[c]];
                        for (free, &k) in idx.iter().enumerate() {
                            // The other two indices, in their orders (i, j) and
                            // (j, i) when they differ; once each distinct k.
                            if idx[..free].contains(&k) {
                                continue;
                            }
                            let rest = [idx[(free + 1) % 3], idx[(free + 2) % 3]];
                            let pairs = if rest[0] == rest[1] { 1.0 } else { 2.0 };
                            out[k] += pairs * u[rest[0]] * u[rest[1]] * d;
                        }
                    }
                }
            }
        }
    }
}

/// The link's four row vectors at `pose` (origin, rotation columns) and the
/// covector's four 3-vectors on its rows from `row`.
fn rows(row: usize, pose: &Pose, v: impl Fn(usize) -> f64) -> ([DVec3; 4], [DVec3; 4]) {
    let ys = [pose.p, pose.r.col(0), pose.r.col(1), pose.r.col(2)];
    let vs = std::array::from_fn(|k| {
        let r = row + 3 * k;
        DVec3::new(v(r), v(r + 1), v(r + 2))
    });
    (ys, vs)
}

/// `S y` for the twist `t`: `w x p + v` for the origin (slot 0), `w x d`
/// for a rotation column.
fn moved(t: &Twist, y: DVec3, slot: usize) -> DVec3 {
    t.w.cross(y) + if slot == 0 { t.v } else { DVec3::ZERO }
}

#[cfg(test)]
mod tests {
    //! The contracted derivatives against central differences of the
    //! kinematics' own first derivatives, on a branching tree of hinges
    //! (two in sequence on one body) and sliders, rooted at the world and at
    //! a slider.
    use super::*;
    use crate::joints::kinematics::JointState;
    use crate::joints::test_trees::{self, tree, Rng};

    fn model(rng: &mut Rng) -> joule_compiler::model::Model {
        use JointKind::*;
        let spec: Vec<(Option<u32>, Vec<JointKind>)> = vec![
            (None, vec![Slider, Slider, Hinge]),
            (Some(0), vec![Hinge, Hinge]),
            (Some(1), vec![Hinge]),
            (Some(2), vec![Slider]),
            (Some(0), vec![Hinge]),
            (None, vec![Hinge]),
        ];
        test_trees::model(&spec, None, rng)
    }

    /// Poses and twists at `z` from the initial state.
    fn at(t: &Tree, z: &[f64]) -> (Vec<Pose>, Vec<Twist>) {
        let mut start = vec![JointState::default(); t.joints.len()];
        t.initial_state(&mut start);
        let mut state = start.clone();
        t.retract(&start, z, 1.0, &mut state);
        let mut poses = vec![Pose::IDENTITY; t.links.len()];
        let mut twists = vec![Twist::default(); t.joint_coords];
        t.forward(&state, &mut poses, &mut twists);
        (poses, twists)
    }

    #[test]
    fn curvature_and_third_products_match_central_differences() {
        let mut rng = Rng(0x2545f4914f6cdd1d);
        for _ in 0..4 {
            let m = model(&mut rng);
            let t = tree(&m);
            assert!(t.hinges_and_sliders());
            let (n, nz) = (m.dof_count, t.joint_coords);
            let z: Vec<f64> = (0..nz).map(|_| rng.next()).collect();
            let u: Vec<f64> = (0..nz).map(|_| rng.next()).collect();
            let v: Vec<f64> = (0..n).map(|_| rng.next()).collect();
            // v . J(z) u, and u . (its curvature product), as functions of z.
            let ju = |z: &[f64]| {
                let (poses, twists) = at(&t, z);
                let mut s = 0.0;
                t.tangent_velocities(&poses, &twists, &u, |r, d| s += v[r] * d);
                s
            };
            let cu = |z: &[f64]| {
                let (poses, twists) = at(&t, z);
                let mut c = vec![0.0; nz];
                t.curvature_product(&poses, &twists, |r| v[r], &u, &mut c);
                c
            };
            let (poses, twists) = at(&t, &z);
            let mut third = vec![0.0; nz];
            t.third_product(&poses, &twists, |r| v[r], &u, &mut third);
            let curvature = cu(&z);
            let eps = 1e-5;
            for k in 0..nz {
                let shifted = |d: f64| {
                    let mut zk = z.clone();
                    zk[k] += d;
                    zk
                };
                let fd = (ju(&shifted(eps)) - ju(&shifted(-eps))) / (2.0 * eps);
                assert!(
                    (fd - curvature[k]).abs() < 1e-8 * (1.0 + fd.abs()),
                    "curvature[{k}]: {} vs {fd}",
                    curvature[k]
                );
                let dot = |c: Vec<f64>| c.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>();
                let fd = (dot(cu(&shifted(eps))) - dot(cu(&shifted(-eps)))) / (2.0 * eps);
                assert!(
                    (fd - third[k]).abs() < 1e-8 * (1.0 + fd.abs()),
                    "third[{k}]: {} vs {fd}",
                    third[k]
                );
            }
            // Not all zero: the check has something to compare.
            assert!(third.iter().any(|d| d.abs() > 1e-3), "{third:?}");
        }
    }
}
