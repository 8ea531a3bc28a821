//! Per-lane kinematics of the joint trees: a lane's joint state, forward
//! kinematics (link poses and each coordinate's world twist), the retraction
//! that moves the state along a step, the Jacobian `J = dy/dz` per link, and
//! the two reductions of maximal quantities onto the coordinates: the
//! gradient `J^T g` and the curvature `sum_k g_k d2y_k/dz2`.
//!
//! Every coordinate `k` moves the links below it by a twist `(w_k, v_k)`:
//! a point `x` of such a link moves at `w_k x x + v_k` and a direction `r`
//! (a column of `R`) at `w_k x r` (a hinge: `w` its world axis, `v = c x w`
//! for its anchor `c`; a slider: `w = 0`, `v` its axis). Ball and free
//! rotations are incremental rotation vectors about the current orientation
//! (`R <- exp([theta]) R`, `theta = 0` at the current state), so no chart
//! comes near a singularity; their twists are the three axes of the frame
//! they rotate in.
//!
//! Second derivatives follow from the twists alone: for coordinates `i`
//! before `j` on a chain (or `i = j`), `d2y/dz_i dz_j = w_i x dy/dz_j`
//! (the Jacobi identity makes the motion of `j`'s axis and of the point
//! combine into one rotation); within one ball's or free joint's rotation
//! the exponential map symmetrises it. So with, per link subtree, the sums
//! `A = sum_d d g_d^T` and `F = sum g_x` over the rows' vectors `d` (origin
//! and rotation columns) and their gradient parts `g_d`, the curvature is
//! `w_i . S_j`, `S_j = (A - tr(A) I) w_j + v_j x F`, and the gradient
//! `w_j . tau + v_j . F` with `tau = sum_d d x g_d`.

use super::{Pose, Tree};
use glam::{DMat3, DQuat, DVec3};
use joule_compiler::model::JointKind;

/// A coordinate's world twist: points of the links it moves go at `w x x + v`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Twist {
    pub w: DVec3,
    pub v: DVec3,
}

/// One joint's state: `q` (hinge, slider), `r` (ball: rotation relative to
/// its frame; free: the body's rotation) and `p` (free: the body's origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JointState {
    pub q: f64,
    pub r: DMat3,
    pub p: DVec3,
}

impl Default for JointState {
    fn default() -> Self {
        JointState {
            q: 0.0,
            r: DMat3::IDENTITY,
            p: DVec3::ZERO,
        }
    }
}

/// Per link subtree: `A`, `tau`, `F` (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    pub a: DMat3,
    pub tau: DVec3,
    pub f: DVec3,
}

impl Default for Moments {
    /// All zero (glam's default matrix is the identity).
    fn default() -> Self {
        Moments {
            a: DMat3::ZERO,
            tau: DVec3::ZERO,
            f: DVec3::ZERO,
        }
    }
}

/// The rotation `exp([theta])`.
pub(crate) fn exp(theta: DVec3) -> DMat3 {
    DMat3::from_quat(DQuat::from_scaled_axis(theta))
}

/// The rotation vector of a rotation (`exp`'s inverse, angle in [0, pi]),
/// accurate for tiny angles too (`2 atan2(|v|, w)` of the quaternion, not
/// `acos(w)`, which loses an angle below 1e-8 to rounding).
pub(crate) fn log(r: DMat3) -> DVec3 {
    let q = DQuat::from_mat3(&r).normalize();
    let (v, w) = (DVec3::new(q.x, q.y, q.z), q.w);
    let (v, w) = if w < 0.0 { (-v, -w) } else { (v, w) };
    let n = v.length();
    if n < 1e-12 {
        // angle / sin(angle / 2) -> 2 (1 + n^2 / 6) / w to below rounding.
        v * (2.0 / w)
    } else {
        v * (2.0 * n.atan2(w) / n)
    }
}

/// `[a]`, the cross-product matrix.
fn hat(a: DVec3) -> DMat3 {
    DMat3::from_cols(
        DVec3::new(0.0, a.z, -a.y),
        DVec3::new(-a.z, 0.0, a.x),
        DVec3::new(a.y, -a.x, 0.0),
    )
}

/// SO(3)'s left Jacobian: `exp(phi + d) = exp([J_l(phi) d]) exp(phi)` to
/// first order in `d`.
pub(crate) fn left_jacobian(phi: DVec3) -> DMat3 {
    let (t2, k) = (phi.length_squared(), hat(phi));
    let t = t2.sqrt();
    // (1 - cos t) / t^2 and (t - sin t) / t^3, by their series near 0.
    let (a, b) = if t < 1e-4 {
        (0.5 - t2 / 24.0, 1.0 / 6.0 - t2 / 120.0)
    } else {
        ((1.0 - t.cos()) / t2, (t - t.sin()) / (t2 * t))
    };
    DMat3::IDENTITY + k * a + k * k * b
}

/// The inverse of [`left_jacobian`]: `log(exp([d]) exp(phi)) = phi +
/// J_l^-1(phi) d` to first order (`|phi| < pi`).
pub(crate) fn left_jacobian_inverse(phi: DVec3) -> DMat3 {
    let (t2, k) = (phi.length_squared(), hat(phi));
    let t = t2.sqrt();
    // 1/t^2 - (1 + cos t) / (2 t sin t), by its series near 0.
    let c = if t < 1e-4 {
        1.0 / 12.0 + t2 / 720.0
    } else {
        1.0 / t2 - (1.0 + t.cos()) / (2.0 * t * t.sin())
    };
    DMat3::IDENTITY - k * 0.5 + k * k * c
}

/// A rotation about `c` (in the same frame).
fn about(r: DMat3, c: DVec3) -> Pose {
    Pose { r, p: c - r * c }
}

const AXES: [DVec3; 3] = [DVec3::X, DVec3::Y, DVec3::Z];

impl Tree {
    /// The state at zero coordinates (the initial pose).
    pub(crate) fn initial_state(&self, state: &mut [JointState]) {
        for (s, j) in state.iter_mut().zip(&self.joints) {
            *s = JointState::default();
            if j.kind == JointKind::Free {
                s.r = j.initial.r;
                s.p = j.initial.p;
            }
        }
    }

    /// Forward kinematics: every link's pose and every coordinate's twist.
    pub(crate) fn forward(&self, state: &[JointState], poses: &mut [Pose], twists: &mut [Twist]) {
        for (l, link) in self.links.iter().enumerate() {
            let mut f = link.parent.map_or(link.base, |p| poses[p]);
            for j in link.joints.clone() {
                let (jt, s) = (&self.joints[j], &state[j]);
                match jt.kind {
                    JointKind::Hinge => {
                        let (w, c) = (f.r * jt.axis, f.point(jt.at));
                        twists[jt.z] = Twist { w, v: c.cross(w) };
                        f = f.mul(about(DMat3::from_axis_angle(jt.axis, s.q), jt.at));
                    }
                    JointKind::Slider => {
                        twists[jt.z] = Twist {
                            w: DVec3::ZERO,
                            v: f.r * jt.axis,
                        };
                        f = f.mul(Pose {
                            r: DMat3::IDENTITY,
                            p: jt.axis * s.q,
                        });
                    }
                    JointKind::Ball => {
                        let c = f.point(jt.at);
                        for (k, e) in AXES.iter().enumerate() {
                            let w = f.r * *e;
                            twists[jt.z + k] = Twist { w, v: c.cross(w) };
                        }
                        f = f.mul(about(s.r, jt.at));
                    }
                    JointKind::Free => {
                        for (k, e) in AXES.iter().enumerate() {
                            twists[jt.z + k] = Twist {
                                w: DVec3::ZERO,
                                v: *e,
                            };
                            twists[jt.z + 3 + k] = Twist {
                                w: *e,
                                v: s.p.cross(*e),
                            };
                        }
                        f = Pose { r: s.r, p: s.p };
                    }
                }
            }
            poses[l] = f.mul(link.offset);
        }
    }

    /// The state `alpha dz` away from `base` (`dz` over the joint coordinates).
    pub(crate) fn retract(
        &self,
        base: &[JointState],
        dz: &[f64],
        alpha: f64,
        out: &mut [JointState],
    ) {
        let v3 = |k: usize| DVec3::new(dz[k], dz[k + 1], dz[k + 2]) * alpha;
        for ((o, b), j) in out.iter_mut().zip(base).zip(&self.joints) {
            *o = *b;
            match j.kind {
                JointKind::Hinge | JointKind::Slider => o.q = b.q + alpha * dz[j.z],
                JointKind::Ball => o.r = exp(v3(j.z)) * b.r,
                JointKind::Free => {
                    o.p = b.p + v3(j.z);
                    o.r = exp(v3(j.z + 3)) * b.r;
                }
            }
        }
    }

    /// Reads a lane's joint state from the coordinate rows (`row(r)`: the
    /// value of maximal row `r`): hinge and slider coordinates, a ball's
    /// rotation vector (relative rotation `exp(phi)`), a free joint's
    /// displacement and rotation vector from the initial pose. Link rows are
    /// never read: forward kinematics writes them.
    pub(crate) fn read_state(&self, row: impl Fn(usize) -> f64, state: &mut [JointState]) {
        for (s, jt) in state.iter_mut().zip(&self.joints) {
            let v3 =
                |k: usize| DVec3::new(row(jt.row + k), row(jt.row + k + 1), row(jt.row + k + 2));
            match jt.kind {
                JointKind::Hinge | JointKind::Slider => s.q = row(jt.row),
                JointKind::Ball => s.r = exp(v3(0)),
                JointKind::Free => {
                    s.p = jt.initial.p + v3(0);
                    s.r = exp(v3(3)) * jt.initial.r;
                }
            }
        }
    }

    /// Joint `j`'s coordinate rows' values at its state `now` (the first
    /// `dofs()` entries): a hinge's or slider's coordinate, a ball's rotation
    /// vector, a free joint's displacement and rotation vector from the
    /// initial pose.
    pub(crate) fn coordinate_values(&self, j: usize, now: &JointState) -> [f64; 6] {
        let jt = &self.joints[j];
        let mut out = [0.0; 6];
        match jt.kind {
            JointKind::Hinge | JointKind::Slider => out[0] = now.q,
            JointKind::Ball => out[..3].copy_from_slice(&log(now.r).to_array()),
            JointKind::Free => {
                out[..3].copy_from_slice(&(now.p - jt.initial.p).to_array());
                out[3..].copy_from_slice(&log(now.r * jt.initial.r.transpose()).to_array());
            }
        }
        out
    }

    /// Joint `j`'s rates that take its state `was` to `now` in time `h`
    /// (the retraction's inverse over `h`: the incremental rotation's vector
    /// for ball and free joints).
    pub(crate) fn coordinate_rates(
        &self,
        j: usize,
        now: &JointState,
        was: &JointState,
        h: f64,
    ) -> [f64; 6] {
        let mut out = [0.0; 6];
        match self.joints[j].kind {
            JointKind::Hinge | JointKind::Slider => out[0] = (now.q - was.q) / h,
            JointKind::Ball => {
                out[..3].copy_from_slice(&(log(now.r * was.r.transpose()) / h).to_array())
            }
            JointKind::Free => {
                out[..3].copy_from_slice(&((now.p - was.p) / h).to_array());
                out[3..].copy_from_slice(&(log(now.r * was.r.transpose()) / h).to_array());
            }
        }
        out
    }

    /// Writes link poses into maximal rows (origin, then `R`'s columns).
    pub(crate) fn write_rows(&self, poses: &[Pose], mut set: impl FnMut(usize, f64)) {
        for (link, pose) in self.links.iter().zip(poses) {
            for k in 0..3 {
                set(link.row + k, pose.p[k]);
                for c in 0..3 {
                    set(link.row + 3 + 3 * c + k, pose.r.col(c)[k]);
                }
            }
        }
    }

    /// For every tree hanging from a free joint, lane `e < len` and axis `k`:
    /// adds `sum_l v[l] / div / m` (the sum over the tree's links of `v` on
    /// their origin row `row + k`, `m` the tree's mass, each link's
    /// `mass(link, lane)`) to `out` on each of those rows (`v`,
    /// `out`: rows of stride `s`). The prediction's shift of a floating
    /// tree's centre of mass, and its adjoint.
    pub(crate) fn add_floating_mean(
        &self,
        v: &[f64],
        div: f64,
        out: &mut [f64],
        s: usize,
        len: usize,
        mass: impl Fn(usize, usize) -> f64,
    ) {
        for (links, _) in &self.floating {
            for e in 0..len {
                let mass = self.floating_mass(links, |l| mass(l, e));
                for k in 0..3 {
                    let row = |l: &usize| (self.links[*l].row + k) * s + e;
                    let c = links.iter().map(|l| v[row(l)]).sum::<f64>() / div / mass;
                    for l in links {
                        out[row(l)] += c;
                    }
                }
            }
        }
    }

    /// The mass of a floating tree's `links`, each link's `mass(link)` (the
    /// sum in link order, as the plan's total).
    pub(crate) fn floating_mass(&self, links: &[usize], mass: impl Fn(usize) -> f64) -> f64 {
        links.iter().fold(0.0, |m, &l| m + mass(l))
    }

    /// Link `l`'s declared mass.
    pub(crate) fn declared_mass(&self, l: usize) -> f64 {
        self.link_mass[l][0][0]
    }

    /// Per link subtree, the moments of the maximal gradient `g(r)` (row
    /// `r`'s entry) about the links' current poses.
    pub(crate) fn moments(&self, poses: &[Pose], g: impl Fn(usize) -> f64, out: &mut [Moments]) {
        for (l, link) in self.links.iter().enumerate() {
            let v3 = |r: usize| DVec3::new(g(r), g(r + 1), g(r + 2));
            let (gx, pose) = (v3(link.row), poses[l]);
            let mut m = Moments {
                a: outer(pose.p, gx),
                tau: pose.p.cross(gx),
                f: gx,
            };
            for c in 0..3 {
                let (d, gd) = (pose.r.col(c), v3(link.row + 3 + 3 * c));
                m.a += outer(d, gd);
                m.tau += d.cross(gd);
            }
            out[l] = m;
        }
        for l in (0..self.links.len()).rev() {
            if let Some(p) = self.links[l].parent {
                let m = out[l];
                out[p].a += m.a;
                out[p].tau += m.tau;
                out[p].f += m.f;
            }
        }
    }

    /// `J^T g` on the joint coordinates from the subtree moments.
    pub(crate) fn reduce_gradient(&self, twists: &[Twist], moments: &[Moments], gz: &mut [f64]) {
        for (l, link) in self.links.iter().enumerate() {
            let m = &moments[l];
            for j in link.joints.clone() {
                let jt = &self.joints[j];
                for k in jt.z..jt.z + jt.kind.dofs() {
                    gz[k] = twists[k].w.dot(m.tau) + twists[k].v.dot(m.f);
                }
            }
        }
    }

    /// Adds the curvature `sum_r g_r d2y_r / dz_i dz_j` to the dense `n x n`
    /// matrix `hz` (row-major) over the joint coordinates.
    pub(crate) fn add_curvature(&self, twists: &[Twist], moments: &[Moments], hz: &mut [f64]) {
        let n = self.n;
        for (l, link) in self.links.iter().enumerate() {
            let m = &moments[l];
            let trace = m.a.x_axis.x + m.a.y_axis.y + m.a.z_axis.z;
            let s = |t: &Twist| m.a * t.w - t.w * trace + t.v.cross(m.f);
            for j in link.joints.clone() {
                let jt = &self.joints[j];
                for k in jt.z..jt.z + jt.kind.dofs() {
                    let sk = s(&twists[k]);
                    for &i in &link.chain {
                        if i > k {
                            break;
                        }
                        // Symmetrised within a ball's or free joint's rotation.
                        let c = if self.same_rotation(i, k) {
                            0.5 * (twists[i].w.dot(sk) + twists[k].w.dot(s(&twists[i])))
                        } else {
                            twists[i].w.dot(sk)
                        };
                        hz[i * n + k] += c;
                        if i != k {
                            hz[k * n + i] += c;
                        }
                    }
                }
            }
        }
    }

    /// The link rows' velocities `J zdot` (`set(row, value)`) for rates
    /// `zdot` of the joint coordinates: each link moves by the sum of its
    /// chain's twists, its origin at `w x p + v`, its columns at `w x r`.
    pub(crate) fn tangent_velocities(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        zdot: &[f64],
        mut set: impl FnMut(usize, f64),
    ) {
        self.link_motion(poses, twists, zdot, |r, _, d| set(r, d));
    }

    /// The link rows of the kinematics linear about `poses` (`twists` the
    /// coordinates' there), `y + J dz` (`set(row, value)`): the rows of
    /// a step whose kinematics are linear over it.
    pub(crate) fn linear_rows(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        dz: &[f64],
        mut set: impl FnMut(usize, f64),
    ) {
        self.link_motion(poses, twists, dz, |r, y, d| set(r, y + d));
    }

    /// Every link row's value at `poses` and its change `J dz`
    /// (`set(row, value, change)`).
    fn link_motion(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        dz: &[f64],
        mut set: impl FnMut(usize, f64, f64),
    ) {
        for (link, pose) in self.links.iter().zip(poses) {
            let (mut w, mut v) = (DVec3::ZERO, DVec3::ZERO);
            for &k in &link.chain {
                w += twists[k].w * dz[k];
                v += twists[k].v * dz[k];
            }
            let dx = w.cross(pose.p) + v;
            for a in 0..3 {
                set(link.row + a, pose.p[a], dx[a]);
                for c in 0..3 {
                    let col = pose.r.col(c);
                    set(link.row + 3 + 3 * c + a, col[a], w.cross(col)[a]);
                }
            }
        }
    }
}

/// A 6x6 matrix on twists `(w, v)` (row-major, `w` first): the pull-back
/// `A_g^T B A_h` of a 12x12 block of the maximal Hessian between two links,
/// where `A` maps a twist to a link's row velocities (origin `w x p + v`,
/// columns `w x r`), so that `J_g^T B J_h = S_g^T (A_g^T B A_h) S_h` with
/// `S` the chains' twists.
pub(crate) type Spatial = [[f64; 6]; 6];

/// A twist as the 6-vector `(w, v)`.
fn six(t: &Twist) -> [f64; 6] {
    [t.w.x, t.w.y, t.w.z, t.v.x, t.v.y, t.v.z]
}

/// `K t`.
pub(crate) fn apply(k: &Spatial, t: &Twist) -> [f64; 6] {
    let t = six(t);
    let mut out = [0.0; 6];
    for (o, row) in out.iter_mut().zip(k) {
        *o = row[0] * t[0]
            + row[1] * t[1]
            + row[2] * t[2]
            + row[3] * t[3]
            + row[4] * t[4]
            + row[5] * t[5];
    }
    out
}

/// `t . f`.
pub(crate) fn dot(t: &Twist, f: &[f64; 6]) -> f64 {
    t.w.x * f[0] + t.w.y * f[1] + t.w.z * f[2] + t.v.x * f[3] + t.v.y * f[4] + t.v.z * f[5]
}

/// A link's row vectors: origin, then `R`'s columns.
fn vectors(pose: &Pose) -> [DVec3; 4] {
    [pose.p, pose.r.col(0), pose.r.col(1), pose.r.col(2)]
}

/// `scale` times the rigid inertia of a link with affine mass matrix `W`
/// (over origin and columns, `compiler::mass`) at `pose`, on twists about
/// the world origin: `t^T K t = sum_ab W_ab d_a' . d_b'` with `d_a'` the
/// rows' velocities, i.e. `m I` on `v`, `[m c]` between `w` and `v` (`m c =
/// sum_a W_a0 d_a`) and `tr(G) I - G` on `w` (`G = sum_ab W_ab d_a d_b^T`).
pub(crate) fn rigid_inertia(w: &[[f64; 4]; 4], pose: &Pose, scale: f64) -> Spatial {
    let d = vectors(pose);
    let mut mc = DVec3::ZERO;
    let mut g = DMat3::ZERO;
    for a in 0..4 {
        mc += d[a] * w[a][0];
        let mut row = DVec3::ZERO;
        for b in 0..4 {
            row += d[b] * w[a][b];
        }
        g += outer(d[a], row);
    }
    let trace = g.x_axis.x + g.y_axis.y + g.z_axis.z;
    let mut k = [[0.0; 6]; 6];
    for r in 0..3 {
        for c in 0..3 {
            k[r][c] = scale * ((if r == c { trace } else { 0.0 }) - g.col(c)[r]);
        }
        k[3 + r][3 + r] = scale * w[0][0];
    }
    let cx = hat(mc * scale);
    for r in 0..3 {
        for c in 0..3 {
            k[r][3 + c] = cx.col(c)[r];
            k[3 + c][r] = cx.col(c)[r];
        }
    }
    k
}

/// `A_g^T B A_h` for the 12x12 block `b(r, c)` between links at poses `pg`
/// and `ph` (see [`Spatial`]).
pub(crate) fn pull_block(pg: &Pose, ph: &Pose, b: impl Fn(usize, usize) -> f64) -> Spatial {
    let (dg, dh) = (vectors(pg), vectors(ph));
    // X = B A_h, row by row: a row x of B gives (sum_b d_b x x_b, x_0).
    let mut x = [[0.0; 6]; 12];
    for (r, xr) in x.iter_mut().enumerate() {
        let part = |k: usize| DVec3::new(b(r, 3 * k), b(r, 3 * k + 1), b(r, 3 * k + 2));
        let mut w = DVec3::ZERO;
        for (k, d) in dh.iter().enumerate() {
            w += d.cross(part(k));
        }
        let v = part(0);
        *xr = [w.x, w.y, w.z, v.x, v.y, v.z];
    }
    // A_g^T X, column by column: (sum_a d_a x y_a, y_0).
    let mut k = [[0.0; 6]; 6];
    for c in 0..6 {
        let part = |a: usize| DVec3::new(x[3 * a][c], x[3 * a + 1][c], x[3 * a + 2][c]);
        let mut w = DVec3::ZERO;
        for (a, d) in dg.iter().enumerate() {
            w += d.cross(part(a));
        }
        let v = part(0);
        for (r, value) in [w.x, w.y, w.z, v.x, v.y, v.z].into_iter().enumerate() {
            k[r][c] = value;
        }
    }
    k
}

/// `A^T b` for the 12 rows `b(r)` of a link at `pose`: `(sum_a d_a x b_a, b_0)`.
pub(crate) fn pull_rows(pose: &Pose, b: impl Fn(usize) -> f64) -> [f64; 6] {
    let mut w = DVec3::ZERO;
    for (a, d) in vectors(pose).iter().enumerate() {
        w += d.cross(DVec3::new(b(3 * a), b(3 * a + 1), b(3 * a + 2)));
    }
    [w.x, w.y, w.z, b(0), b(1), b(2)]
}

/// The outer product `a b^T`.
fn outer(a: DVec3, b: DVec3) -> DMat3 {
    DMat3::from_cols(a * b.x, a * b.y, a * b.z)
}

#[cfg(test)]
mod tests {
    //! Forward kinematics' derivatives against central differences of the
    //! kinematics itself, on a tree with every joint kind, a sequence of two
    //! hinges, a weld, two roots and a fixed base.
    use super::*;
    use crate::joints::test_trees::{self, tree, Rng};
    use crate::joints::{Group, Pair, Tree};
    use crate::mass::MassModel;
    use joule_compiler::model::Model;

    /// The test tree: (parent, joints) per body; body 6 is fixed.
    fn model(rng: &mut Rng) -> Model {
        use JointKind::*;
        let spec: Vec<(Option<u32>, Vec<JointKind>)> = vec![
            (None, vec![Free]),
            (Some(0), vec![Hinge, Hinge]),
            (Some(1), vec![Ball]),
            (Some(2), vec![Slider]),
            (None, vec![Hinge]),
            (Some(1), vec![]),
            (None, vec![]),
            (Some(6), vec![Hinge]),
        ];
        test_trees::model(&spec, Some(6), rng)
    }

    /// The maximal rows at `state`.
    fn rows(t: &Tree, state: &[JointState], n: usize) -> Vec<f64> {
        let mut poses = vec![Pose::IDENTITY; t.links.len()];
        let mut twists = vec![Twist::default(); t.joint_coords];
        t.forward(state, &mut poses, &mut twists);
        let mut y = vec![0.0; n];
        t.write_rows(&poses, |r, v| y[r] = v);
        y
    }

    /// `g . y` at `dz` from `base` (along the retraction).
    fn phi(t: &Tree, base: &[JointState], dz: &[f64], g: &[f64]) -> f64 {
        let mut s = base.to_vec();
        t.retract(base, dz, 1.0, &mut s);
        rows(t, &s, g.len()).iter().zip(g).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn jacobian_gradient_and_curvature_match_central_differences() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for _ in 0..5 {
            let m = model(&mut rng);
            let t = tree(&m);
            let (n, nz) = (m.dof_count, t.joint_coords);
            assert_eq!(nz, 6 + 2 + 3 + 1 + 1 + 1);
            // A random state away from the initial pose.
            let mut base = vec![JointState::default(); t.joints.len()];
            t.initial_state(&mut base);
            let start = base.clone();
            let dz0: Vec<f64> = (0..nz).map(|_| rng.next()).collect();
            t.retract(&start, &dz0, 1.0, &mut base);
            let g: Vec<f64> = (0..n).map(|_| rng.next()).collect();
            let mut poses = vec![Pose::IDENTITY; t.links.len()];
            let mut twists = vec![Twist::default(); nz];
            t.forward(&base, &mut poses, &mut twists);
            let jac = jacobian(&t, &poses, &twists, n);
            let mut moments = vec![Moments::default(); t.links.len()];
            t.moments(&poses, |r| g[r], &mut moments);
            let mut gz = vec![0.0; nz];
            t.reduce_gradient(&twists, &moments, &mut gz);
            let mut hz = vec![0.0; t.n * t.n];
            t.add_curvature(&twists, &moments, &mut hz);
            let eps = 1e-5;
            let e = |k: usize, s: f64| -> Vec<f64> {
                (0..nz).map(|i| if i == k { s } else { 0.0 }).collect()
            };
            for k in 0..nz {
                // J's column k, link by link.
                let (yp, ym) = {
                    let mut sp = base.clone();
                    let mut sm = base.clone();
                    t.retract(&base, &e(k, eps), 1.0, &mut sp);
                    t.retract(&base, &e(k, -eps), 1.0, &mut sm);
                    (rows(&t, &sp, n), rows(&t, &sm, n))
                };
                for link in &t.links {
                    for a in 0..12 {
                        let fd = (yp[link.row + a] - ym[link.row + a]) / (2.0 * eps);
                        let exact = jac[k][link.row + a];
                        assert!(
                            (fd - exact).abs() < 1e-8,
                            "J[{}][{k}]: {exact} vs {fd}",
                            link.row + a
                        );
                    }
                }
                // J^T g.
                let fd = (phi(&t, &base, &e(k, eps), &g) - phi(&t, &base, &e(k, -eps), &g))
                    / (2.0 * eps);
                assert!(
                    (fd - gz[k]).abs() < 1e-7 * (1.0 + fd.abs()),
                    "g[{k}]: {} vs {fd}",
                    gz[k]
                );
                // The curvature's row k.
                for i in 0..nz {
                    let eps = 1e-4;
                    let d = |a: f64, b: f64| {
                        let mut v = vec![0.0; nz];
                        v[k] += a;
                        v[i] += b;
                        phi(&t, &base, &v, &g)
                    };
                    let fd = (d(eps, eps) - d(eps, -eps) - d(-eps, eps) + d(-eps, -eps))
                        / (4.0 * eps * eps);
                    let exact = hz[k * t.n + i];
                    assert!(
                        (fd - exact).abs() < 1e-5 * (1.0 + fd.abs()),
                        "C[{k}][{i}]: {exact} vs {fd}"
                    );
                }
            }
        }
    }

    /// `J`'s columns over the maximal rows (link rows only), from the rows'
    /// velocities at unit rates.
    fn jacobian(t: &Tree, poses: &[Pose], twists: &[Twist], n: usize) -> Vec<Vec<f64>> {
        (0..t.joint_coords)
            .map(|k| {
                let zdot: Vec<f64> = (0..t.joint_coords).map(|i| (i == k) as u8 as f64).collect();
                let mut col = vec![0.0; n];
                t.tangent_velocities(poses, twists, &zdot, |r, v| col[r] = v);
                col
            })
            .collect()
    }

    #[test]
    fn reduced_hessian_is_the_jacobians_product() {
        // Random symmetric blocks on every group pair of the plan, and the
        // mass matrix: the twist-space reduction (rigid inertias, composite
        // blocks) against J^T H J with J's columns formed explicitly.
        let mut rng = Rng(0x2545f4914f6cdd1d);
        let m = model(&mut rng);
        let mut t = tree(&m);
        let (n, nz, nl) = (m.dof_count, t.n, t.links.len());
        // Couple every pair of links, and each link with the first coordinate row.
        let link_rows: Vec<usize> = t.links.iter().map(|l| l.row).collect();
        let first_row = t
            .joints
            .iter()
            .find(|j| j.kind == JointKind::Hinge)
            .map(|j| j.row);
        t.pairs.clear();
        t.block_len = 0;
        let groups = t.groups.clone();
        for g in 0..groups.len() {
            for h in g..groups.len() {
                let rows = |x: Group| match x {
                    Group::Link(l) => (0..12).map(|k| link_rows[l] + k).collect::<Vec<_>>(),
                    Group::Row(z) => vec![t
                        .joints
                        .iter()
                        .find(|j| j.z == z)
                        .map_or(usize::MAX, |j| j.row)],
                };
                let (rg, rh) = (rows(groups[g]), rows(groups[h]));
                if rg[0] == usize::MAX || rh[0] == usize::MAX {
                    continue;
                }
                if let Group::Row(_) = groups[h] {
                    if Some(rh[0]) != first_row {
                        continue;
                    }
                }
                t.pairs.push(Pair {
                    g,
                    h,
                    offset: t.block_len,
                    rows: vec![],
                });
                t.block_len += rg.len() * rh.len();
            }
        }
        // The maximal Hessian: random blocks, symmetric, plus the mass matrix.
        let mut hy = vec![vec![0.0; n]; n];
        let mut blocks = vec![0.0; t.block_len];
        for pair in &t.pairs {
            let rows = |x: Group| match x {
                Group::Link(l) => (0..12).map(|k| link_rows[l] + k).collect::<Vec<_>>(),
                Group::Row(z) => vec![t.joints.iter().find(|j| j.z == z).expect("a hinge").row],
            };
            let (rg, rh) = (rows(t.groups[pair.g]), rows(t.groups[pair.h]));
            for (a, &ra) in rg.iter().enumerate() {
                for (c, &rc) in rh.iter().enumerate() {
                    let k = pair.offset + a * rh.len() + c;
                    if pair.g == pair.h && c < a {
                        blocks[k] = blocks[pair.offset + c * rh.len() + a];
                        continue;
                    }
                    blocks[k] = rng.next();
                    hy[ra][rc] += blocks[k];
                    if ra != rc {
                        hy[rc][ra] += blocks[k];
                    }
                }
            }
        }
        let mass = MassModel::new(&m);
        let scale = 0.7;
        for (r, c, v) in mass.entries() {
            if link_rows.iter().any(|l| (*l..l + 12).contains(&r)) {
                hy[r][c] += scale * v;
            }
        }
        let mut base = vec![JointState::default(); t.joints.len()];
        t.initial_state(&mut base);
        let dz0: Vec<f64> = (0..t.joint_coords).map(|_| rng.next()).collect();
        let start = base.clone();
        t.retract(&start, &dz0, 1.0, &mut base);
        let mut poses = vec![Pose::IDENTITY; nl];
        let mut twists = vec![Twist::default(); t.joint_coords];
        t.forward(&base, &mut poses, &mut twists);
        let mut composite = vec![[[0.0; 6]; 6]; nl];
        let mut hz = vec![0.0; nz * nz];
        t.reduce_hessian(
            &poses,
            &twists,
            |k| blocks[k],
            |_| true,
            |_| (None, scale),
            &mut composite,
            &mut hz,
        );
        // J: link rows by the tangent velocities, a hinge's row by itself.
        let mut jac = jacobian(&t, &poses, &twists, n);
        for j in &t.joints {
            if j.kind == JointKind::Hinge || j.kind == JointKind::Slider {
                jac[j.z][j.row] = 1.0;
            }
        }
        for i in 0..t.joint_coords {
            for k in 0..t.joint_coords {
                let exact: f64 = (0..n)
                    .map(|r| {
                        (0..n)
                            .map(|c| jac[i][r] * hy[r][c] * jac[k][c])
                            .sum::<f64>()
                    })
                    .sum();
                let got = hz[i * nz + k];
                assert!(
                    (got - exact).abs() < 1e-9 * (1.0 + exact.abs()),
                    "H[{i}][{k}]: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn so3_jacobians_match_central_differences() {
        let mut rng = Rng(0x853c49e6748fea9b);
        // log is exact for tiny angles, where acos(w) would round them away.
        let tiny = DVec3::new(3e-11, -2e-10, 1e-10);
        assert!((log(exp(tiny)) - tiny).length() < 1e-24);
        for scale in [1e-6, 0.3, 1.0, 3.0] {
            let phi = DVec3::from_array(rng.v3()).normalize() * scale;
            let (jl, jli) = (left_jacobian(phi), left_jacobian_inverse(phi));
            let eps = 1e-6;
            for k in 0..3 {
                let e = AXES[k] * eps;
                // exp(phi + d) exp(phi)^T = exp([J_l d]).
                let fd = (log(exp(phi + e) * exp(phi).transpose())
                    - log(exp(phi - e) * exp(phi).transpose()))
                    / (2.0 * eps);
                assert!(
                    (fd - jl.col(k)).length() < 1e-7,
                    "J_l col {k} at |phi| = {scale}"
                );
                // log(exp([d]) exp(phi)) = phi + J_l^-1 d.
                let fd = (log(exp(e) * exp(phi)) - log(exp(-e) * exp(phi))) / (2.0 * eps);
                assert!(
                    (fd - jli.col(k)).length() < 1e-7,
                    "J_l^-1 col {k} at |phi| = {scale}"
                );
            }
        }
    }
}
