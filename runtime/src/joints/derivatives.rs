//! Second and third derivatives of the links' rows by the joint
//! coordinates, contracted with a covector of the rows: what the adjoint of
//! a step with linear kinematics (MuJoCo's Euler, `step/linear_adjoint.rs`)
//! differentiates its Jacobians, mass matrix and velocity-product forces
//! with.
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
//! meets a slider before the last index is 0): the outer derivative is the
//! earlier coordinate's. A ball's or free joint's rotation is one
//! exponential `exp(theta) R` of its three coordinates about the state `R`
//! (`retract`), not a product of three: among its own coordinates the
//! derivatives at `theta = 0` are symmetrised (`(S_a S_b + S_b S_a) / 2`, the
//! exponential's second derivative), and a derivative by the state itself
//! (the base `R` moved to `exp(delta) R`, as the step's start is) comes
//! inside them (`exp(theta) exp(delta) R`): the order is by chain position,
//! and within one rotation the base's derivative is the innermost. Hinges
//! and sliders have neither case, so there every derivative is symmetric.

use super::kinematics::Twist;
use super::{Link, Pose, Tree};
use glam::DVec3;

/// Per link, the tables every contracted derivative is read from, for
/// chain positions `p`, `q` and the four row slots: `S_p y`, `v x w_p` and
/// `(v x w_p) x w_q`, so that `v . (w_p x (S_q y)) = (v x w_p) . S_q y` and
/// `v . (w_p x (w_q x (S_r y))) = ((v x w_p) x w_q) . S_r y`; and each
/// position's group (the first position of its ball's or free joint's
/// rotation, or itself). Sized once for the longest chain.
#[derive(Clone, Default)]
pub(crate) struct ChainTables {
    moved: Vec<[DVec3; 4]>,
    outer: Vec<[DVec3; 4]>,
    pair: Vec<[DVec3; 4]>,
    group: Vec<usize>,
}

impl ChainTables {
    /// Tables for chains of up to `m` coordinates.
    pub(crate) fn new(m: usize) -> Self {
        ChainTables {
            moved: vec![[DVec3::ZERO; 4]; m],
            outer: vec![[DVec3::ZERO; 4]; m],
            pair: vec![[DVec3::ZERO; 4]; m * m],
            group: vec![0; m],
        }
    }

    /// Fills the tables of `link` at `pose` for the covector `v` (the
    /// pairs' only with `pairs`).
    fn fill(
        &mut self,
        tree: &Tree,
        link: &Link,
        pose: &Pose,
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        pairs: bool,
    ) {
        let (ys, vs) = rows(link.row, pose, v);
        let chain = &link.chain;
        let m = chain.len();
        for (p, &k) in chain.iter().enumerate() {
            let t = &twists[k];
            self.moved[p] = std::array::from_fn(|slot| moved(t, ys[slot], slot));
            self.outer[p] = std::array::from_fn(|slot| vs[slot].cross(t.w));
            self.group[p] = match tree.rotation_of[k] {
                Some(r) => chain
                    .iter()
                    .position(|&c| tree.rotation_of[c] == Some(r))
                    .expect("on the chain"),
                None => p,
            };
        }
        if pairs {
            for p in 0..m {
                for q in 0..m {
                    let w = twists[chain[q]].w;
                    self.pair[p * m + q] = std::array::from_fn(|slot| self.outer[p][slot].cross(w));
                }
            }
        }
    }

    /// `v . d2y/dz_a dz_c` for chain positions `a` (a coordinate's own) and
    /// `c` (the base's when `base`): the earlier group outer; within one
    /// rotation the base's inner, else symmetrised.
    fn second(&self, a: usize, c: usize, base: bool) -> f64 {
        let dot = |o: usize, i: usize| -> f64 {
            let (p, q) = (&self.outer[o], &self.moved[i]);
            p[0].dot(q[0]) + p[1].dot(q[1]) + p[2].dot(q[2]) + p[3].dot(q[3])
        };
        let (ga, gc) = (self.group[a], self.group[c]);
        if ga < gc || (ga == gc && base) {
            dot(a, c)
        } else if ga > gc {
            dot(c, a)
        } else {
            0.5 * (dot(a, c) + dot(c, a))
        }
    }

    /// `v . d/dbase_c d2y/dz_a dz_b` for chain positions `a`, `b` (own, in
    /// this order where they share a rotation) and `c` (the base's), of a
    /// chain of `m`: sorted by group, the base innermost within its group.
    fn third(&self, a: usize, b: usize, c: usize, m: usize) -> f64 {
        let g = &self.group;
        // The own pair by group (a first on a tie), then the base after
        // every own index of its group or an earlier one.
        let (x, y) = if g[b] < g[a] { (b, a) } else { (a, b) };
        let (o1, o2, o3) = if g[y] <= g[c] {
            (x, y, c)
        } else if g[x] <= g[c] {
            (x, c, y)
        } else {
            (c, x, y)
        };
        let (p, q) = (&self.pair[o1 * m + o2], &self.moved[o3]);
        p[0].dot(q[0]) + p[1].dot(q[1]) + p[2].dot(q[2]) + p[3].dot(q[3])
    }
}

impl Tree {
    /// The longest chain of the trees' links.
    pub(crate) fn longest_chain(&self) -> usize {
        self.links.iter().map(|l| l.chain.len()).max().unwrap_or(0)
    }

    /// `out[k] += sum_i u[i] v . d/dbase_k (J u)_i` over the links' rows
    /// (`v(row)` the covector), at `poses` with the coordinates' `twists`
    /// there: the derivative of `v . J u` by the state the Jacobian is taken
    /// at (`J_t` by the step's start), `u` held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn curvature_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
        tables: &mut ChainTables,
    ) {
        self.second_product(poses, twists, v, u, out, tables, true);
    }

    /// `out[k] += sum_i u[i] v . d2y/dz_i dz_k` over the links' rows with
    /// the coordinates' own second derivatives (symmetric, the
    /// exponential's within a rotation): `d (v . Jdot u)/du / 2`, the
    /// velocity-product accelerations' derivative by the rates.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn symmetric_curvature_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
        tables: &mut ChainTables,
    ) {
        self.second_product(poses, twists, v, u, out, tables, false);
    }

    /// The second derivatives contracted with `v` and `u`, the free index
    /// the base's (`base`) or a coordinate's own.
    #[allow(clippy::too_many_arguments)]
    fn second_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
        tables: &mut ChainTables,
        base: bool,
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            tables.fill(self, link, pose, twists, &v, false);
            let chain = &link.chain;
            for (k, &kk) in chain.iter().enumerate() {
                let mut sum = 0.0;
                for (a, &ka) in chain.iter().enumerate() {
                    if u[ka] != 0.0 {
                        sum += u[ka] * tables.second(a, k, base);
                    }
                }
                out[kk] += sum;
            }
        }
    }

    /// `out[k] += sum_ij u[i] u[j] v . d/dbase_k (Jdot u)` over the links'
    /// rows, `Jdot u = sum_ij u_i u_j d2y/dz_i dz_j` (the velocity-product
    /// accelerations `Tree::bias_accelerations` computes) held at the rates
    /// `u`: its derivative by the state it is taken at.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn third_product(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        v: impl Fn(usize) -> f64,
        u: &[f64],
        out: &mut [f64],
        tables: &mut ChainTables,
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            tables.fill(self, link, pose, twists, &v, true);
            let chain = &link.chain;
            let m = chain.len();
            for (c, &kc) in chain.iter().enumerate() {
                let mut sum = 0.0;
                for (a, &ka) in chain.iter().enumerate() {
                    if u[ka] == 0.0 {
                        continue;
                    }
                    for (b, &kb) in chain.iter().enumerate() {
                        if u[kb] != 0.0 {
                            sum += u[ka] * u[kb] * tables.third(a, b, c, m);
                        }
                    }
                }
                out[kc] += sum;
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
    //! kinematics itself, on two branching trees: hinges (two in sequence on
    //! one body) and sliders, and one with free and ball joints among them.
    use super::*;
    use crate::joints::kinematics::JointState;
    use crate::joints::test_trees::{self, tree, Rng};
    use joule_compiler::model::JointKind;

    fn specs() -> Vec<Vec<(Option<u32>, Vec<JointKind>)>> {
        use JointKind::*;
        vec![
            vec![
                (None, vec![Slider, Slider, Hinge]),
                (Some(0), vec![Hinge, Hinge]),
                (Some(1), vec![Hinge]),
                (Some(2), vec![Slider]),
                (Some(0), vec![Hinge]),
                (None, vec![Hinge]),
            ],
            vec![
                (None, vec![Free]),
                (Some(0), vec![Hinge, Hinge]),
                (Some(1), vec![Ball]),
                (Some(2), vec![Slider]),
                (Some(0), vec![Ball]),
                (None, vec![Hinge]),
            ],
        ]
    }

    /// Poses and twists at `retract(base, dz)`.
    fn at(t: &Tree, base: &[JointState], dz: &[f64]) -> (Vec<Pose>, Vec<Twist>) {
        let mut state = base.to_vec();
        t.retract(base, dz, 1.0, &mut state);
        let mut poses = vec![Pose::IDENTITY; t.links.len()];
        let mut twists = vec![Twist::default(); t.joint_coords];
        t.forward(&state, &mut poses, &mut twists);
        (poses, twists)
    }

    #[test]
    fn curvature_and_third_products_match_central_differences() {
        let mut rng = Rng(0x2545f4914f6cdd1d);
        for spec in specs() {
            for _ in 0..3 {
                let m = test_trees::model(&spec, None, &mut rng);
                let t = tree(&m);
                let (n, nz) = (m.dof_count, t.joint_coords);
                // A base away from the initial pose.
                let mut initial = vec![JointState::default(); t.joints.len()];
                t.initial_state(&mut initial);
                let z0: Vec<f64> = (0..nz).map(|_| rng.next()).collect();
                let mut base = initial.clone();
                t.retract(&initial, &z0, 1.0, &mut base);
                let random =
                    |rng: &mut Rng, k: usize| (0..k).map(|_| rng.next()).collect::<Vec<f64>>();
                let (u, w, v) = (
                    random(&mut rng, nz),
                    random(&mut rng, nz),
                    random(&mut rng, n),
                );
                let zero = vec![0.0; nz];
                // v . J u at the base moved by dz.
                let ju = |dz: &[f64]| {
                    let (poses, twists) = at(&t, &base, dz);
                    let mut s = 0.0;
                    t.tangent_velocities(&poses, &twists, &u, |r, d| s += v[r] * d);
                    s
                };
                // v . y along the coordinates about the base.
                let vy = |dz: &[f64]| {
                    let (poses, _) = at(&t, &base, dz);
                    let mut s = 0.0;
                    t.write_rows(&poses, |r, y| s += v[r] * y);
                    s
                };
                // The symmetric curvature's quadratic form u . C(v) u at the base moved by dz.
                let quad = |dz: &[f64], a: &[f64]| {
                    let (poses, twists) = at(&t, &base, dz);
                    let mut c = vec![0.0; nz];
                    t.symmetric_curvature_product(
                        &poses,
                        &twists,
                        |r| v[r],
                        a,
                        &mut c,
                        &mut ChainTables::new(t.longest_chain()),
                    );
                    c.iter().zip(a).map(|(x, y)| x * y).sum::<f64>()
                };
                let (poses, twists) = at(&t, &base, &zero);
                let (mut curvature, mut third) = (vec![0.0; nz], vec![0.0; nz]);
                let mut tables = ChainTables::new(t.longest_chain());
                t.curvature_product(&poses, &twists, |r| v[r], &u, &mut curvature, &mut tables);
                t.third_product(&poses, &twists, |r| v[r], &u, &mut third, &mut tables);
                let eps = 1e-5;
                for k in 0..nz {
                    let e = |d: f64| {
                        (0..nz)
                            .map(|i| if i == k { d } else { 0.0 })
                            .collect::<Vec<_>>()
                    };
                    let fd = (ju(&e(eps)) - ju(&e(-eps))) / (2.0 * eps);
                    assert!(
                        (fd - curvature[k]).abs() < 1e-8 * (1.0 + fd.abs()),
                        "{spec:?}: curvature[{k}]: {} vs {fd}",
                        curvature[k]
                    );
                    let fd = (quad(&e(eps), &u) - quad(&e(-eps), &u)) / (2.0 * eps);
                    assert!(
                        (fd - third[k]).abs() < 1e-8 * (1.0 + fd.abs()),
                        "{spec:?}: third[{k}]: {} vs {fd}",
                        third[k]
                    );
                }
                // The symmetric curvature: the second derivative of v . y
                // along u, w and u + w (polarised: 2 w . C u).
                let second = |a: &[f64]| {
                    let h = 1e-4;
                    let s = |x: f64| a.iter().map(|y| x * y).collect::<Vec<_>>();
                    (vy(&s(h)) - 2.0 * vy(&zero) + vy(&s(-h))) / (h * h)
                };
                let sum: Vec<f64> = u.iter().zip(&w).map(|(a, b)| a + b).collect();
                let fd = (second(&sum) - second(&u) - second(&w)) / 2.0;
                let mut cu = vec![0.0; nz];
                t.symmetric_curvature_product(&poses, &twists, |r| v[r], &u, &mut cu, &mut tables);
                let exact: f64 = cu.iter().zip(&w).map(|(a, b)| a * b).sum();
                assert!(
                    (fd - exact).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{spec:?}: w . C u: {exact} vs {fd}"
                );
                // Not all zero: the check has something to compare.
                assert!(third.iter().any(|d| d.abs() > 1e-3), "{third:?}");
            }
        }
    }
}
