//! The implicit Euler substep of scenes with joint trees: the incremental
//! potential minimised over the reduced coordinates `z` (joint coordinates,
//! then every free row outside the trees), with the maximal state `y = K(z)`
//! from forward kinematics (`crate::joints`):
//!
//! `Phi(z) = |y - y~|_M^2 / (2 h^2) + E(y) + h D((y - y_t)/h) + joint terms`,
//! `y~ = y_t + h v_t + h^2 M^-1 f` for rows outside the trees (`v_t` the
//! rows' velocities) and, for links, the prediction from three points on
//! the manifold `y~ = 3 K(z_1) - K(z_2) - y_t + h^2 M^-1 f`, `z_k =
//! retract(z_t, k h zdot_t)` with `zdot_t` the coordinates' rates of the
//! last step: `K(z_1) - h^2 J'(zdot, zdot)` to second order, so it carries
//! the velocity-product (centripetal, Coriolis) accelerations a consistent
//! step needs, and where a link turns about a fixed axis it lies on the
//! radius through `K(z_1)`, so a steady rotation is not dragged (the
//! straight line `y_t + h v_t` through the last step's secant is: a wheel
//! under a constant torque at h = 10 ms stalls near 17 rad/s, a third of
//! its speed after 1 s). A tree hanging from a free joint has its prediction
//! shifted so its centre of mass moves by its momentum, `sum M (2 y_t -
//! K(z_-1))` with `z_-1 = retract(z_t, -h zdot_t)` the last step's start:
//! linear momentum is kept exactly, and the step reads the coordinate rows
//! alone (not the links' velocity rows);
//!
//! the joint terms act on hinge and slider coordinates: armature
//! `I (q - q_t - h qdot_t)^2 / (2 h^2)`, damping `d (q - q_t)^2 / (2 h)`,
//! stiffness `k q^2 / 2`, a motor `-gear u q`, a position servo
//! `kp (q - u)^2 / 2`, and a range `lo..hi` as the barrier
//! `-kappa (s - s^)^2 ln(s / s^)` on the distances `s` to its ends below
//! `s^` (1% of the range), so a range is never left and stays smooth.
//!
//! With linear kinematics (`kinematics = linear`: MuJoCo's `Euler`) the
//! link rows are `y_t + J_t (z - z_t)` instead, the prediction `y_t + J_t
//! (h zdot_t + h^2 a_0) + h^2 a_g` with `a_0` the start's acceleration
//! under the velocity-product forces and the joint terms' damping,
//! stiffness and actuators (which then leave the potential), the Hessian
//! has no curvature term, and after Newton the damping is made implicit
//! (`(M_z + h D)^-1 M_z` on the step's acceleration) and the step ends on
//! the trees' configurations by forward kinematics (docs/joints.md).
//!
//! Newton's method: gradient `J^T g_y`, Hessian `J^T H_y J` plus the
//! kinematics' curvature, both exact; a dense Cholesky solve per lane
//! (the reduced systems are small: 14 coordinates for an ant), shifted
//! where the Hessian is not positive definite; the backtracking line
//! search and the convergence rule of the maximal step. Ball and free
//! rotations are re-based at every iterate (incremental rotation vectors).

use super::linear_adjoint::LinearBar;
use super::potential::Lanes;
use super::{chunk_wanted, load, Part, Scratch};
use crate::joints::kinematics::{JointState, Moments, Spatial, Twist};
use crate::joints::{KernelEntries, Pose, SoftEnds, Tree};
use crate::{Event, Scene};
use joule_compiler::abi::Real;
use joule_compiler::model::{JointKind, Kinematics};

/// One lane's vectors of the reduced step.
#[derive(Clone)]
pub(super) struct Lane {
    /// The current iterate, the line search's base, the start of the substep.
    pub(super) state: Vec<JointState>,
    pub(super) base: Vec<JointState>,
    pub(super) start: Vec<JointState>,
    /// Velocities of the joint coordinates at the start of the substep.
    pub(super) zdot: Vec<f64>,
    /// The coordinates' predicted step: `h zdot_t`, and with linear
    /// kinematics `h zdot_t + h^2 a_0` (`a_0` the start's acceleration
    /// under the velocity-product forces and the coordinates' stiffness,
    /// actuators and damping).
    pub(super) pred: Vec<f64>,
    /// With linear kinematics: the iterate's step `z - z_t` over the joint
    /// coordinates (tangent at the start), and the line search's base.
    pub(super) lin: Vec<f64>,
    pub(super) lin_base: Vec<f64>,
    /// Per joint, its soft range's pieces for the substep, fixed by the
    /// start (`None` without a soft range): [`Part::reduced_start`] fills
    /// them once, the potential's evaluations read them.
    pub(super) ends: Vec<Option<SoftEnds>>,
    /// With linear kinematics: the joint coordinates' mass matrix `M_z` at
    /// the start (joint coordinates square, row-major).
    pub(super) mass_z: Vec<f64>,
    pub(super) poses: Vec<Pose>,
    pub(super) twists: Vec<Twist>,
    /// Poses and twists at the start of the substep.
    pub(super) poses_t: Vec<Pose>,
    pub(super) twists_t: Vec<Twist>,
    /// The drift points `retract(z_t, k h zdot_t)`, `k` in [`DRIFTS`], the
    /// links' inertial prediction is made of.
    pub(super) drifts: [Drift; 3],
    /// The adjoint's gradient by a drift point's joint coordinates.
    pub(super) drift_bar: Vec<f64>,
    pub(super) moments: Vec<Moments>,
    /// Reduced gradient, Hessian (n x n, row-major) and Newton step.
    pub(super) g: Vec<f64>,
    pub(super) h: Vec<f64>,
    pub(super) dz: Vec<f64>,
    /// The adjoint's gradient by the start's joint coordinates.
    pub(super) zbar: Vec<f64>,
    /// `rk4`: the step's start, and per stage the reduced coordinates'
    /// rates and accelerations (`n` each, stage after stage; a ball's or
    /// free joint's rotation in the frame of its stage's rotation).
    pub(super) rk_start: Vec<JointState>,
    pub(super) rk_rates: Vec<f64>,
    pub(super) rk_accel: Vec<f64>,
    /// The linear step's adjoint's vectors.
    pub(super) lin_bar: LinearBar,
}

/// A drift point of the prediction: its joint state, link poses and twists.
#[derive(Clone)]
pub(super) struct Drift {
    pub(super) state: Vec<JointState>,
    pub(super) poses: Vec<Pose>,
    pub(super) twists: Vec<Twist>,
}

/// The drift points' multiples `k` of the step `h zdot_t`: the prediction
/// `3 K(z_1) - K(z_2) - y_t`, and `z_-1`, the last step's start (a floating
/// tree's momentum is `sum M (y_t - K(z_-1)) / h`).
pub(super) const DRIFTS: [f64; 3] = [1.0, 2.0, -1.0];

/// The reduced step's vectors of a partition, allocated once.
pub(crate) struct Reduced {
    pub(super) lanes: Vec<Lane>,
    /// The lanes' maximal Hessians in group-pair blocks, by chunks of
    /// `width` lanes (entry `k` of lane `w` of chunk `c`, of `len` entries
    /// each, at `(c * len + k) * width + w`: the gathers run over a chunk's
    /// lanes at once).
    width: usize,
    pub(super) blocks: Vec<f64>,
    /// The reduction's composite link blocks (one lane at a time).
    composite: Vec<Spatial>,
    /// Per pair of groups and lane of a chunk (`p * width + lane`), whether
    /// its Hessian block holds anything.
    live: Vec<bool>,
    /// The Cholesky solve's copy of a Hessian.
    pub(super) work: Vec<f64>,
    /// The free rows' values at the line search's base.
    base_rows: Vec<f64>,
    /// A step of zeros: the one a lane whose line search gave up retracts by.
    zero_step: Vec<f64>,
    /// The model of [`Tree::land_soft_ranges`].
    land: Landing,
    /// `rk4`: the rows' values and velocities at the step's start.
    pub(super) rk_x: Vec<f64>,
    pub(super) rk_v: Vec<f64>,
    /// Whether the trees' kinematics are linear over the step (the lanes'
    /// poses and twists then stay those of the start, and the link rows are
    /// `y_t + J_t lin`).
    pub(super) linear: bool,
}

/// Newton's model with each soft range on the piece its step lands on
/// ([`Tree::land_soft_ranges`]): its gradient and Hessian, the plain Newton
/// step, and the pieces.
pub(super) struct Landing {
    g: Vec<f64>,
    h: Vec<f64>,
    plain: Vec<f64>,
    sides: Vec<f64>,
    work: Vec<f64>,
}

/// Most solves [`Tree::land_soft_ranges`] spends on a Newton step.
const LANDING_SOLVES: usize = 4;

impl Reduced {
    /// Vectors for `s` lanes (`len` of them environments) of a scene's trees.
    pub(crate) fn new(tree: &Tree, rows: usize, s: usize, len: usize) -> Self {
        let (nj, nl, n) = (tree.joints.len(), tree.links.len(), tree.n);
        let lane = Lane {
            state: vec![JointState::default(); nj],
            base: vec![JointState::default(); nj],
            start: vec![JointState::default(); nj],
            zdot: vec![0.0; tree.joint_coords],
            pred: vec![0.0; tree.joint_coords],
            lin: vec![0.0; tree.joint_coords],
            lin_base: vec![0.0; tree.joint_coords],
            ends: vec![None; nj],
            mass_z: vec![0.0; tree.joint_coords * tree.joint_coords],
            poses: vec![Pose::IDENTITY; nl],
            twists: vec![Twist::default(); tree.joint_coords],
            poses_t: vec![Pose::IDENTITY; nl],
            twists_t: vec![Twist::default(); tree.joint_coords],
            drifts: std::array::from_fn(|_| Drift {
                state: vec![JointState::default(); nj],
                poses: vec![Pose::IDENTITY; nl],
                twists: vec![Twist::default(); tree.joint_coords],
            }),
            drift_bar: vec![0.0; tree.joint_coords],
            moments: vec![Moments::default(); nl],
            g: vec![0.0; n],
            h: vec![0.0; n * n],
            dz: vec![0.0; n],
            zbar: vec![0.0; tree.joint_coords],
            rk_start: vec![JointState::default(); nj],
            rk_rates: vec![0.0; 4 * n],
            rk_accel: vec![0.0; 4 * n],
            lin_bar: LinearBar::new(tree.joint_coords, tree.longest_chain()),
        };
        Reduced {
            lanes: vec![lane; s],
            width: if len == 1 {
                1
            } else if s.is_multiple_of(WIDE) {
                WIDE
            } else {
                NARROW
            },
            blocks: vec![0.0; tree.block_len * s],
            composite: vec![[[0.0; 6]; 6]; nl],
            live: vec![false; tree.pairs.len() * WIDE],
            work: vec![0.0; n * n],
            base_rows: vec![0.0; rows * s],
            zero_step: vec![0.0; n],
            rk_x: vec![0.0; rows * s],
            rk_v: vec![0.0; rows * s],
            land: Landing {
                g: vec![0.0; n],
                h: vec![0.0; n * n],
                plain: vec![0.0; n],
                sides: vec![0.0; nj],
                work: vec![0.0; n * n],
            },
            linear: false,
        }
    }
}

/// Lanes the Hessian blocks' gathers handle at once: `WIDE` when the
/// partition's lanes are a multiple of it, else `NARROW` (every stride is a
/// multiple of the f64 SIMD width, 2), and 1 for a partition of one
/// environment (its padding lane is not reduced).
const WIDE: usize = 8;
const NARROW: usize = 2;

/// A soft range's term at `q` from the pieces of its substep's start
/// (`Lane::ends`, [`SoftEnds::limit`]); zeros without a soft range.
pub(super) fn soft_limit(ends: Option<SoftEnds>, q: f64) -> [f64; 5] {
    ends.map_or([0.0; 5], |ends| ends.limit(q))
}

/// The distances below which a range's barrier acts: 1% of the range.
const BARRIER_WIDTH: f64 = 0.01;

/// The barrier `-(s - s^)^2 ln(s / s^)` for `s < s^` (0 above; infinite at
/// or below 0) with its first and second derivatives.
fn barrier(s: f64, width: f64) -> (f64, f64, f64) {
    if s <= 0.0 {
        return (f64::INFINITY, 0.0, 0.0);
    }
    if s >= width {
        return (0.0, 0.0, 0.0);
    }
    let (d, l) = (s - width, (s / width).ln());
    (
        -d * d * l,
        -2.0 * d * l - d * d / s,
        -2.0 * l - 4.0 * d / s + d * d / (s * s),
    )
}

impl Tree {
    /// The joint terms of the incremental potential at `state` (value, and
    /// with `grad` their gradient added to `g` and Hessian diagonal to `h`);
    /// `u(c)` is control `c`'s value in the lane. With `forces` false the
    /// coordinates' damping, stiffness and actuators are left out (linear
    /// kinematics take them as MuJoCo's Euler does: as forces at the step's
    /// start in the prediction, the damping implicit after the solve).
    pub(super) fn joint_terms(
        &self,
        lane: &Lane,
        h: f64,
        forces: bool,
        u: impl Fn(u32) -> f64,
        mut grad: Option<(&mut [f64], &mut [f64])>,
    ) -> f64 {
        let d = if forces { 1.0 } else { 0.0 };
        let mut phi = 0.0;
        for (j, jt) in self.joints.iter().enumerate() {
            if !matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                continue;
            }
            let (q, q0) = (lane.state[j].q, lane.start[j].q);
            let a = q - q0 - lane.pred[jt.z];
            let (sv, sd1, sd2) = if forces {
                jt.springs(q, &u)
            } else {
                (0.0, 0.0, 0.0)
            };
            let [lv, ld1, ld2, ..] = soft_limit(lane.ends[j], q);
            let damping = d * jt.damping;
            let mut v = 0.5 * jt.armature * a * a / (h * h)
                + 0.5 * damping * (q - q0) * (q - q0) / h
                + sv
                + lv;
            let mut d1 = jt.armature * a / (h * h) + damping * (q - q0) / h + sd1 + ld1;
            let mut d2 = jt.armature / (h * h) + damping / h + sd2 + ld2;
            if let Some((b0, b1, b2)) = self.range_barrier(j, q) {
                v += b0;
                d1 += b1;
                d2 += b2;
            }
            phi += v;
            if let Some((g, hz)) = grad.as_mut() {
                g[jt.z] += d1;
                hz[jt.z * self.n + jt.z] += d2;
            }
        }
        phi
    }
}

impl Tree {
    /// The second derivative in `q` of hinge or slider `j`'s range barrier
    /// at `q` (0 without one: no range, or a soft range).
    pub(super) fn barrier_curvature(&self, j: usize, q: f64) -> f64 {
        self.range_barrier(j, q).map_or(0.0, |(_, _, d2)| d2)
    }

    /// Hinge or slider `j`'s range barrier at `q`, both ends: its value and
    /// first and second derivatives in `q` (`None` without one: no range,
    /// or a soft range).
    fn range_barrier(&self, j: usize, q: f64) -> Option<(f64, f64, f64)> {
        let jt = &self.joints[j];
        let ((lo, hi), None) = (jt.range?, jt.soft) else {
            return None;
        };
        let (k, width) = (self.barrier_stiffness[j], BARRIER_WIDTH * (hi - lo));
        let (b0, b1, b2) = barrier(q - lo, width);
        let (c0, c1, c2) = barrier(hi - q, width);
        Some((k * (b0 + c0), k * (b1 - c1), k * (b2 + c2)))
    }

    /// `M_z + h D` (joint coordinates square) into `out`: the mass matrix
    /// `mass_z` with the hinges' and sliders' damping on its diagonal.
    pub(super) fn damped_mass(&self, mass_z: &[f64], h: f64, out: &mut [f64]) {
        let jc = self.joint_coords;
        out.copy_from_slice(mass_z);
        for jt in &self.joints {
            if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                out[jt.z * jc + jt.z] += h * jt.damping;
            }
        }
    }

    /// MuJoCo's Euler on the coordinates' damping `D`: the step's
    /// acceleration `a1 = (lin - h zdot_t) / h^2`, solved with the damping
    /// at the start's rate, becomes `a = (M_z + h D)^-1 M_z a1` (the damping
    /// implicit, the constraint forces as solved), and `lin = h zdot_t + h^2
    /// a`. Nothing changes without damping.
    fn damp_implicitly(&self, lane: &mut Lane, h: f64, work: &mut [f64]) {
        let jc = self.joint_coords;
        if !self.joints.iter().any(|j| j.damping != 0.0) || jc == 0 {
            return;
        }
        let (a1, rhs) = (&mut lane.g[..jc], &mut lane.dz[..jc]);
        for ((a, l), zd) in a1.iter_mut().zip(&lane.lin).zip(&lane.zdot) {
            *a = (l - h * zd) / (h * h);
        }
        for (r, row) in rhs.iter_mut().zip(lane.mass_z.chunks_exact(jc)) {
            *r = row.iter().zip(a1.iter()).map(|(m, a)| m * a).sum();
        }
        let m = &mut lane.h[..jc * jc];
        self.damped_mass(&lane.mass_z, h, m);
        if !shifted_cholesky_solve(m, jc, rhs, work) {
            rhs.fill(f64::NAN);
        }
        for ((l, a), zd) in lane.lin.iter_mut().zip(rhs.iter()).zip(&lane.zdot) {
            *l = h * zd + h * h * a;
        }
    }

    /// Whether a hinge or slider has a soft range.
    pub(super) fn has_soft_ranges(&self) -> bool {
        self.joints
            .iter()
            .any(|j| j.soft.is_some() && j.range.is_some())
    }

    /// Re-solves a lane's Newton step `lane.dz` (from the reduced gradient
    /// `g` and Hessian `base`, unfactored; `hz` is scratch for the factor)
    /// with each soft range on the piece the step lands on. A soft range is
    /// piecewise quadratic in its coordinate within a step
    /// ([`crate::joints::SoftEnds`]), so Newton's quadratic model can hold
    /// it exactly. The plain Newton step takes the pieces at the iterate and
    /// overshoots where it crosses into a limit, which the next iteration
    /// corrects: this active-set loop moves each crossed coordinate's piece
    /// to where the step lands and solves again, up to [`LANDING_SOLVES`]
    /// times, until the step lands on the pieces it was solved with: the
    /// minimiser of the convex piecewise model (a descent direction: the
    /// model's gradient at the iterate is `g`). Where the pieces do not
    /// settle, the plain step stands.
    fn land_soft_ranges(
        &self,
        lane: &mut Lane,
        g: &[f64],
        base: &[f64],
        hz: &mut [f64],
        land: &mut Landing,
    ) {
        let n = self.n;
        let landing =
            |lane: &Lane, j: usize| Some((lane.ends[j]?, lane.state[j].q, self.joints[j].z));
        // The pieces at the iterate (the ones `g` and `base` hold).
        let mut crossed = false;
        for j in 0..self.joints.len() {
            land.sides[j] = 0.0;
            if let Some((ends, q, z)) = landing(lane, j) {
                land.sides[j] = ends.side(q);
                crossed |= ends.side(q + lane.dz[z]) != land.sides[j];
            }
        }
        if !crossed {
            return;
        }
        land.plain.copy_from_slice(&lane.dz);
        land.g.copy_from_slice(g);
        land.h.copy_from_slice(&base[..n * n]);
        for solves in 0..=LANDING_SOLVES {
            let mut moved = false;
            for j in 0..self.joints.len() {
                let Some((ends, q, z)) = landing(lane, j) else {
                    continue;
                };
                let side = ends.side(q + lane.dz[z]);
                if side != land.sides[j] {
                    let ((g0, h0), (g1, h1)) = (ends.piece(land.sides[j], q), ends.piece(side, q));
                    land.g[z] += g1 - g0;
                    land.h[z * n + z] += h1 - h0;
                    land.sides[j] = side;
                    moved = true;
                }
            }
            if !moved {
                return;
            }
            if solves == LANDING_SOLVES {
                break;
            }
            hz.copy_from_slice(&land.h);
            for (d, gz) in lane.dz.iter_mut().zip(&land.g) {
                *d = -gz;
            }
            if !shifted_cholesky_solve(hz, n, &mut lane.dz, &mut land.work) {
                break;
            }
        }
        lane.dz.copy_from_slice(&land.plain);
    }

    /// Every active lane's reduced Hessian `J^T H_y J` ([`Tree::reduce_hessian`]
    /// of the maximal Hessian gathered into `red.blocks`, the links' mass
    /// matrices `mass(lane, link)`: their weights where params set them, and
    /// a factor) plus, with `curvature`, the kinematics' curvature (from the
    /// lane's `moments`, of the potential's gradient) into its `h`.
    pub(super) fn reduced_hessians(
        &self,
        red: &mut Reduced,
        active: &[bool],
        curvature: bool,
        mass: impl Fn(usize, usize) -> (Option<[[f64; 4]; 4]>, f64),
    ) {
        let (bl, w) = (self.block_len, red.width);
        for (c, lanes) in red.lanes.chunks_mut(w).enumerate() {
            let first = c * w;
            if !(first..first + lanes.len()).any(|e| active[e]) {
                continue;
            }
            let blocks = &red.blocks[c * bl * w..(c + 1) * bl * w];
            // Which pairs' blocks hold anything, per lane of the chunk: a
            // block of zeros (a contact not touching) adds nothing. One
            // sweep over the chunk's blocks, its lanes side by side.
            for (p, pair) in self.pairs.iter().enumerate() {
                let live = &mut red.live[p * w..(p + 1) * w];
                let entries = &blocks[pair.offset * w..(pair.offset + self.pair_len(pair)) * w];
                match w {
                    WIDE => any_nonzero::<WIDE>(entries, live),
                    NARROW => any_nonzero::<NARROW>(entries, live),
                    _ => any_nonzero::<1>(entries, live),
                }
            }
            for (l, lane) in lanes.iter_mut().enumerate() {
                let e = first + l;
                if !active[e] {
                    continue;
                }
                let live = &red.live;
                self.reduce_hessian(
                    &lane.poses,
                    &lane.twists,
                    |k| blocks[k * w + l],
                    |p| live[p * w + l],
                    |link| mass(e, link),
                    &mut red.composite,
                    &mut lane.h,
                );
                if curvature {
                    self.add_curvature(&lane.twists, &lane.moments, &mut lane.h);
                }
            }
        }
    }
}

/// Whether each of `W` lanes has a nonzero (or NaN) entry among `entries`
/// (their rows of `W` lanes side by side) into `live`: the sum of the
/// magnitudes, which vectorises (a NaN keeps the lane live).
fn any_nonzero<const W: usize>(entries: &[f64], live: &mut [bool]) {
    let mut sum = [0.0; W];
    for row in entries.as_chunks::<W>().0 {
        for e in 0..W {
            sum[e] += row[e].abs();
        }
    }
    for (l, s) in live.iter_mut().zip(sum) {
        *l = s != 0.0;
    }
}

/// Adds a Hessian-block kernel's entries (`src`: the kernel's blocks from
/// the chunk's first lane, rows `stride` apart) into a chunk of `W` lanes'
/// group-pair blocks, each entry at its slot and mirrored slot; a guarded
/// instance disengaged on every lane of the chunk (a contact apart: its
/// block is zero there) is passed over.
fn gather<T: Real, const W: usize>(
    kernel: &KernelEntries,
    src: &[T],
    stride: usize,
    blocks: &mut [f64],
) {
    let blocks = blocks.as_chunks_mut::<W>().0;
    for (run, engaged) in &kernel.runs {
        if let Some(f) = engaged {
            if (0..W).all(|e| src[f * stride + e] == T::default()) {
                continue;
            }
        }
        for &(row, slot, mirror) in &kernel.entries[run.clone()] {
            let v: [f64; W] = std::array::from_fn(|e| src[row * stride + e].to_f64());
            for e in 0..W {
                blocks[slot][e] += v[e];
            }
            if let Some(m) = mirror {
                for e in 0..W {
                    blocks[m][e] += v[e];
                }
            }
        }
    }
}

/// Solves `a x = b` in place for a symmetric `n x n` matrix `a` (row-major),
/// by Cholesky with a diagonal shift grown until it factors (a Newton step
/// on a non-convex potential is then a descent direction), leaving the
/// factor in `a` (`L` in the lower triangle, `L^T` in the upper). False
/// when no shift up to 1e12 times the mean |diagonal| factors.
pub(super) fn shifted_cholesky_solve(
    a: &mut [f64],
    n: usize,
    b: &mut [f64],
    work: &mut [f64],
) -> bool {
    let scale = (0..n).map(|i| a[i * n + i].abs()).sum::<f64>() / n as f64;
    let scale = if scale > 0.0 { scale } else { 1.0 };
    work[..n * n].copy_from_slice(&a[..n * n]);
    let mut shift = 0.0;
    loop {
        if shift > 0.0 {
            a[..n * n].copy_from_slice(&work[..n * n]);
            for i in 0..n {
                a[i * n + i] += shift;
            }
        }
        if cholesky(a, n) {
            // L's columns into the upper triangle (rows there), for the
            // back substitution's contiguous reads.
            for i in 0..n {
                for k in i + 1..n {
                    a[i * n + k] = a[k * n + i];
                }
            }
            break;
        }
        shift = if shift == 0.0 {
            1e-8 * scale
        } else {
            shift * 10.0
        };
        if shift > 1e12 * scale {
            return false;
        }
    }
    cholesky_solve(a, n, b);
    true
}

/// Solves `L L^T x = b` in place with the Cholesky factor that
/// [`shifted_cholesky_solve`] leaves in its matrix (`L` in the lower
/// triangle, row-major, and `L^T` in the upper).
pub(super) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    // L y = b, L^T x = y.
    for i in 0..n {
        let s = dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = (b[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[i * n + k] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// `x . y` over the shorter of the two.
fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// In-place Cholesky factor (lower triangle) of a row-major matrix; false
/// when it is not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let (done, rest) = a.split_at_mut((j + 1) * n);
        let row_j = &mut done[j * n..(j + 1) * n];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        row_j[j] = d;
        let row_j = &row_j[..j];
        for row_i in rest.chunks_exact_mut(n) {
            row_i[j] = (row_i[j] - dot(&row_i[..j], row_j)) / d;
        }
    }
    true
}

impl<T: Real> Part<T> {
    /// One implicit Euler substep in reduced coordinates (see the module docs),
    /// with the trees' `kinematics` exact or linear over the step.
    /// `trace` collects the reduced gradient's norm per Newton iteration.
    #[allow(clippy::too_many_arguments)]
    pub fn implicit_reduced(
        &mut self,
        scene: &Scene,
        h: f64,
        iterations: u32,
        tol: f64,
        kinematics: Kinematics,
        step: usize,
        trace: Option<&mut Vec<Vec<f64>>>,
    ) {
        let tree = scene.tree().expect("a scene with joint trees");
        let (n, s) = (scene.dofs(), self.stride());
        let mut w = std::mem::replace(&mut self.scratch, Scratch::new(0, 0));
        let mut red = self.reduced.take().expect("a reduced workspace");
        let linear = kinematics == Kinematics::Linear;
        red.linear = linear;
        self.reduced_solve(
            scene,
            tree,
            &mut red,
            &mut w,
            (h, iterations, tol),
            step,
            trace,
        );
        if linear {
            // The step ends on the trees' configurations: the link rows by
            // forward kinematics from `z_t (+) lin`, after the damping's
            // implicit correction.
            for e in 0..self.len {
                let lane = &mut red.lanes[e];
                tree.damp_implicitly(lane, h, &mut red.work);
                tree.retract(&lane.start, &lane.lin, 1.0, &mut lane.state);
                tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
                let xb = &mut self.b.x;
                tree.write_rows(&lane.poses, |r, v| xb[r * s + e] = T::from_f64(v));
            }
        }
        self.set_velocity(n, &w.x_t, h);
        if linear {
            // MuJoCo's velocities: the links' rows move at the tangent `J(z')
            // zdot'` of the step's end (the secant of the step lags a
            // turning link's), which the next step's contact reads.
            for e in 0..self.len {
                let lane = &mut red.lanes[e];
                let rates = &mut lane.g[..tree.joint_coords];
                for (r, l) in rates.iter_mut().zip(&lane.lin) {
                    *r = l / h;
                }
                let vb = &mut self.b.v;
                tree.tangent_velocities(&lane.poses, &lane.twists, rates, |r, v| {
                    vb[r * s + e] = T::from_f64(v)
                });
            }
        }
        // The coordinate rows: values and velocities.
        for e in 0..self.len {
            let lane = &red.lanes[e];
            for (j, jt) in tree.joints.iter().enumerate() {
                let (now, was) = (&lane.state[j], &lane.start[j]);
                let x = tree.coordinate_values(j, now);
                let v = tree.coordinate_rates(j, now, was, h);
                for k in 0..jt.kind.dofs() {
                    let r = (jt.row + k) * s + e;
                    self.b.x[r] = T::from_f64(x[k]);
                    self.b.v[r] = T::from_f64(v[k]);
                }
            }
        }
        self.reduced = Some(red);
        self.scratch = w;
    }

    /// The solve of a reduced substep from the state in the rows, with the
    /// kinematics `red.linear` says: the start and prediction
    /// ([`Part::reduced_start`]), Newton's start, its iterations, and a
    /// [`Event::NotConverged`] per lane that missed the tolerance. Leaves
    /// the solution in the lanes (and with linear kinematics its step in
    /// their `lin`) and the rows, the start's rows in `w.x_t`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduced_solve(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        (h, iterations, tol): (f64, u32, f64),
        step: usize,
        trace: Option<&mut Vec<Vec<f64>>>,
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        let linear = red.linear;
        self.reduced_start(scene, tree, red, w, h);
        let resolution = super::RESOLUTION_ULPS * T::EPSILON;
        w.tol.fill(0.0);
        for r in 0..n {
            for e in 0..s {
                w.tol[e] = w.tol[e].max(resolution * w.x_t[r * s + e].abs());
            }
        }
        for t in &mut w.tol {
            *t = t.max(tol);
        }
        // Newton's start: the drift z_t + h zdot_t where its potential is
        // finite and lower than at z_t's. The rows hold z_t's (written by
        // `reduced_start`), and the drift is the prediction's drift point
        // z_1, whose kinematics are known.
        self.reduced_potential(scene, tree, red, w, h, Lanes::All);
        w.phi0.copy_from_slice(&w.phi);
        w.x0.copy_from_slice(&w.x_t);
        // Free rows outside the trees drift by h v as in the maximal step.
        for row in tree.row_of.iter().flatten() {
            for e in 0..self.len {
                let i = row * s + e;
                w.x0[i] = w.x_t[i] + h * self.b.v[i].to_f64();
            }
        }
        for lane in red.lanes.iter_mut().take(self.len) {
            if linear {
                // Linear kinematics: from the prediction's step.
                lane.lin.copy_from_slice(&lane.pred);
                tree.retract(&lane.start, &lane.lin, 1.0, &mut lane.state);
                continue;
            }
            let d = &lane.drifts[0];
            lane.state.copy_from_slice(&d.state);
            lane.poses.copy_from_slice(&d.poses);
            lane.twists.copy_from_slice(&d.twists);
        }
        self.reduced_write(tree, red, &w.x0, None);
        self.reduced_potential(scene, tree, red, w, h, Lanes::All);
        // Lanes whose drift is no better go back to z_t (`w.done` marks the
        // others, which keep their rows).
        let mut back = false;
        for e in 0..s {
            let (drift, still) = (w.phi[e], w.phi0[e]);
            w.done[e] = drift.is_finite() && (drift < still || !still.is_finite());
            if !w.done[e] {
                let lane = &mut red.lanes[e];
                lane.state.copy_from_slice(&lane.start);
                lane.poses.copy_from_slice(&lane.poses_t);
                lane.twists.copy_from_slice(&lane.twists_t);
                lane.lin.fill(0.0);
                for row in tree.row_of.iter().flatten() {
                    w.x0[row * s + e] = w.x_t[row * s + e];
                }
                w.phi[e] = still;
                // (A padding lane never moves: its drift is its start.)
                back |= e < self.len;
            } else {
                // The line search's base: the rows as the kernels hold them
                // (rounded to f32 in single precision).
                for row in tree.row_of.iter().flatten() {
                    w.x0[row * s + e] = self.b.x[row * s + e].to_f64();
                }
            }
        }
        if back {
            let done = std::mem::take(&mut w.done);
            self.reduced_write(tree, red, &w.x0, Some(&done));
            w.done = done;
            self.reduced_potential(scene, tree, red, w, h, Lanes::Searching);
        }
        self.report_inadmissible(&w.phi, &w.x_t, n, step);
        self.stops.fill(None);
        self.reduced_newton(scene, tree, red, w, h, iterations, trace);
        for e in 0..self.len {
            let residual = w.error[e];
            if residual.is_nan() || residual > w.tol[e] {
                self.events.push(Event::NotConverged {
                    env: self.first + e,
                    step,
                    residual,
                });
            }
        }
    }

    /// Every lane's joint state (`start`, and `state` equal to it) and
    /// coordinate velocities read from the rows, its forward kinematics, and
    /// the link rows rewritten from it.
    pub(super) fn reduced_load(&mut self, tree: &Tree, red: &mut Reduced) {
        let s = self.stride();
        // Padding lanes keep their rows (the initial state) untouched.
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let x = &self.b.x;
            tree.read_state(|r| x[r * s + e].to_f64(), &mut lane.start);
            for (k, z) in lane.zdot.iter_mut().enumerate() {
                *z = self.b.v[tree.coordinate_row(k) * s + e].to_f64();
            }
            lane.state.copy_from_slice(&lane.start);
            tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
            let xb = &mut self.b.x;
            tree.write_rows(&lane.poses, |r, v| xb[r * s + e] = T::from_f64(v));
        }
    }

    /// Rewrites lane `e`'s link position rows (and their `prev_x` copies)
    /// from its coordinate rows by forward kinematics, as the next step's
    /// start would, so that outputs read before that step see the state
    /// that was set (`Sim::set_state`). The link rows' velocities are left
    /// as set: the step does not read them (after a step they are the
    /// secants of the last step).
    pub(crate) fn sync_links(&mut self, tree: &Tree, e: usize) {
        let s = self.stride();
        let mut red = self.reduced.take().expect("a reduced workspace");
        let lane = &mut red.lanes[e];
        let x = &self.b.x;
        tree.read_state(|r| x[r * s + e].to_f64(), &mut lane.state);
        tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
        let b = &mut self.b;
        tree.write_rows(&lane.poses, |r, v| {
            b.x[r * s + e] = T::from_f64(v);
            b.prev_x[r * s + e] = T::from_f64(v);
        });
        self.reduced = Some(red);
    }

    /// The start of a reduced substep: every lane's joint state and
    /// coordinate velocities read from the rows, the link rows rewritten by
    /// forward kinematics, the state copied into `prev_*` and `w.x_t`, and
    /// the inertial prediction into `w.xt` (the module docs): `y_t + h v_t +
    /// h^2 a` for rows outside the trees, from the drift points `z_1`, `z_2`
    /// (kept in the lanes for the adjoint) for links.
    pub(super) fn reduced_start(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        h: f64,
    ) {
        let (n, s) = (scene.dofs(), self.stride());
        self.load_mass_scales(scene);
        self.reduced_load(tree, red);
        for lane in &mut red.lanes {
            lane.poses_t.copy_from_slice(&lane.poses);
            lane.twists_t.copy_from_slice(&lane.twists);
            for (j, jt) in tree.joints.iter().enumerate() {
                lane.ends[j] = jt.soft_ends(lane.start[j].q, lane.zdot[jt.z], h);
            }
        }
        self.begin_substep(n);
        self.hold(scene);
        load(&mut w.x_t, &self.b.x[..n * s]);
        let accel = scene.mass.gravity_acceleration();
        for i in 0..n * s {
            w.xt[i] = w.x_t[i] + h * self.b.v[i].to_f64();
        }
        for r in 0..n {
            for e in 0..s {
                w.xt[r * s + e] += h * h * accel[r];
            }
        }
        for lane in &mut red.lanes {
            for (p, zd) in lane.pred.iter_mut().zip(&lane.zdot) {
                *p = h * zd;
            }
        }
        if red.linear {
            self.linear_prediction(scene, tree, red, w, h);
            return;
        }
        // The links' prediction from three points on the manifold (and the
        // last step's start, for floating trees).
        let floating = !tree.floating.is_empty();
        for (e, lane) in red.lanes.iter_mut().enumerate().take(self.len) {
            for (d, k) in lane
                .drifts
                .iter_mut()
                .zip(DRIFTS)
                .take(2 + floating as usize)
            {
                tree.retract(&lane.start, &lane.zdot, k * h, &mut d.state);
                tree.forward(&d.state, &mut d.poses, &mut d.twists);
            }
            let (x_t, xt) = (&w.x_t, &mut w.xt);
            tree.write_rows(&lane.drifts[0].poses, |r, v| {
                xt[r * s + e] = 3.0 * v - x_t[r * s + e] + h * h * accel[r]
            });
            tree.write_rows(&lane.drifts[1].poses, |r, v| xt[r * s + e] -= v);
        }
        // A floating tree's prediction, shifted so that its centre of mass
        // moves by its momentum (`2 y_t - K(z_-1)`'s, the last step's
        // secant): linear momentum is kept exactly, read from the
        // coordinates alone.
        if floating {
            w.d.fill(0.0);
            for (e, lane) in red.lanes.iter().enumerate().take(self.len) {
                let (x_t, xt, d) = (&w.x_t, &w.xt, &mut w.d);
                tree.write_rows(&lane.drifts[2].poses, |r, v| {
                    let i = r * s + e;
                    d[i] = 2.0 * x_t[i] - v - (xt[i] - h * h * accel[r]);
                });
            }
            scene.mass.mul(&w.d, &mut w.md, s);
            if !scene.mass_scales().is_empty() {
                self.record_floating_shift(scene, tree, &w.d, &mut w.md);
            }
            tree.add_floating_mean(&w.md, 1.0, &mut w.xt, s, self.len, |l, e| {
                self.link_mass(scene, tree, l, e)
            });
        }
    }

    /// The links' prediction with linear kinematics, `y~ = y_t + J_t pred +
    /// h^2 a_g`, `pred = h zdot_t + h^2 a_0` (into the lanes' `pred`, and
    /// `M_z` into their `mass_z`), with `a_0 = -M_z^-1 (J^T M Jdot zdot + D
    /// zdot_t + f_q)` the start's acceleration under the velocity-product
    /// forces, the coordinates' damping `D` and their stiffness and
    /// actuators' forces `-f_q` at `q_t` (`M_z = J^T M J` plus armature: the
    /// symplectic step's mass matrix). Minimising `|J_t (z - z_t) - (y~ -
    /// y_t)|_M^2 / (2 h^2)` plus the energies is then MuJoCo's `Euler`
    /// step: its unconstrained acceleration, and the constraint costs on
    /// `J_t a`.
    fn linear_prediction(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        h: f64,
    ) {
        let s = self.stride();
        self.bias_forces(scene, tree, red, w);
        self.mass_matrices(scene, tree, red, w);
        let accel = scene.mass.gravity_acceleration();
        for e in 0..self.len {
            let lane = &mut red.lanes[e];
            let md = &w.md;
            tree.moments(&lane.poses, |r| md[r * s + e], &mut lane.moments);
            lane.g.fill(0.0);
            tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.g);
            let controls = &self.b.controls;
            let u = |c: u32| controls[c as usize * s + e].to_f64();
            for (j, jt) in tree.joints.iter().enumerate() {
                if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                    lane.h[jt.z * tree.n + jt.z] += jt.armature;
                    // The damping at the start's rate, the stiffness and
                    // actuators at its coordinate: forces of the prediction.
                    let (_, spring, _) = jt.springs(lane.start[j].q, u);
                    lane.g[jt.z] += jt.damping * lane.zdot[jt.z] + spring;
                }
            }
            let jc = tree.joint_coords;
            for (i, row) in lane.mass_z.chunks_exact_mut(jc).enumerate() {
                row.copy_from_slice(&lane.h[i * tree.n..i * tree.n + jc]);
            }
            for (d, g) in lane.dz.iter_mut().zip(&lane.g) {
                *d = -g;
            }
            if !shifted_cholesky_solve(&mut lane.h, tree.n, &mut lane.dz, &mut red.work) {
                lane.dz.fill(f64::NAN);
            }
            for (p, a) in lane.pred.iter_mut().zip(&lane.dz) {
                *p += h * h * a;
            }
            let (x_t, xt) = (&w.x_t, &mut w.xt);
            tree.tangent_velocities(&lane.poses, &lane.twists, &lane.pred, |r, v| {
                let i = r * s + e;
                xt[i] = x_t[i] + v + h * h * accel[r]
            });
        }
    }

    /// Writes every lane's current state into the rows (but the lanes
    /// `skip` marks): link rows by forward kinematics, free rows outside the
    /// trees from `rows`.
    fn reduced_place(
        &mut self,
        tree: &Tree,
        red: &mut Reduced,
        rows: &[f64],
        skip: Option<&[bool]>,
    ) {
        if !red.linear {
            for e in 0..self.len {
                if !skip.is_some_and(|k| k[e]) {
                    let lane = &mut red.lanes[e];
                    tree.forward(&lane.state, &mut lane.poses, &mut lane.twists);
                }
            }
        }
        self.reduced_write(tree, red, rows, skip);
    }

    /// [`Part::reduced_place`] with every lane's kinematics already in its
    /// `poses`.
    pub(super) fn reduced_write(
        &mut self,
        tree: &Tree,
        red: &Reduced,
        rows: &[f64],
        skip: Option<&[bool]>,
    ) {
        let s = self.stride();
        for e in 0..self.len {
            if skip.is_some_and(|k| k[e]) {
                continue;
            }
            let lane = &red.lanes[e];
            let xb = &mut self.b.x;
            if red.linear {
                tree.linear_rows(&lane.poses_t, &lane.twists_t, &lane.lin, |r, v| {
                    xb[r * s + e] = T::from_f64(v)
                });
            } else {
                tree.write_rows(&lane.poses, |r, v| xb[r * s + e] = T::from_f64(v));
            }
            for (j, jt) in tree.joints.iter().enumerate() {
                if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                    xb[jt.row * s + e] = T::from_f64(lane.state[j].q);
                }
            }
            for row in tree.row_of.iter().flatten() {
                xb[row * s + e] = T::from_f64(rows[row * s + e]);
            }
        }
    }

    /// The incremental potential (with the joint terms) per lane into `w.phi`.
    fn reduced_potential(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        h: f64,
        lanes: Lanes,
    ) {
        self.potential(scene, w, h, lanes);
        let s = self.stride();
        for e in 0..s {
            if lanes.wants(w, e) {
                let controls = &self.b.controls;
                let u = |c: u32| controls[c as usize * s + e].to_f64();
                w.phi[e] += tree.joint_terms(&red.lanes[e], h, !red.linear, u, None);
            }
        }
    }

    /// Gathers the maximal Hessian at the current state of every lane `want`
    /// selects (with the others of their chunks) into its group-pair blocks:
    /// the mass matrix over h^2 (outside the links), then each Hessian-block
    /// kernel (the surrogates' with `surrogate`) right after it runs (each
    /// kernel overwrites the block storage).
    pub(super) fn reduced_blocks(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        h: f64,
        surrogate: bool,
        want: impl Fn(usize) -> bool + Copy,
    ) {
        let (s, bl, w) = (self.stride(), tree.block_len, red.width);
        red.blocks.fill(0.0);
        for c in 0..self.len.div_ceil(w) {
            let blocks = &mut red.blocks[c * bl * w..(c + 1) * bl * w];
            for &(slot, m) in &tree.mass_entries {
                for v in &mut blocks[slot * w..(slot + 1) * w] {
                    *v += m / (h * h);
                }
            }
        }
        let [energy, dissipation, _, _] = Self::hessian_kinds(surrogate);
        let len = self.len;
        let wanted = |c: usize| chunk_wanted(c, w, len, want);
        for kind in [energy, dissipation] {
            self.run_where(scene, kind, want);
            let kernel = tree.entries(kind);
            if kernel.entries.is_empty() {
                // No Hessian entries of this kind (e.g. no dissipation): no
                // buffer rows to gather, for any chunk of lanes.
                continue;
            }
            for c in (0..len.div_ceil(w)).filter(|&c| wanted(c)) {
                let blocks = &mut red.blocks[c * bl * w..(c + 1) * bl * w];
                let src = &self.b.blocks[c * w..];
                match w {
                    WIDE => gather::<T, WIDE>(kernel, src, s, blocks),
                    NARROW => gather::<T, NARROW>(kernel, src, s, blocks),
                    _ => gather::<T, 1>(kernel, src, s, blocks),
                }
            }
        }
    }

    /// Every stepped lane's reduced mass matrix `M_z = J^T M J` (without
    /// armature) into its `h`, at its poses: the mass matrix alone gathered
    /// into the group-pair blocks and reduced without curvature (the
    /// symplectic step's and the linear step's prediction's). Marks the
    /// stepped lanes in `w.active`.
    pub(super) fn mass_matrices(
        &self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
    ) {
        let (bl, width) = (tree.block_len, red.width);
        red.blocks.fill(0.0);
        for c in 0..self.len.div_ceil(width) {
            let blocks = &mut red.blocks[c * bl * width..(c + 1) * bl * width];
            for &(slot, m) in &tree.mass_entries {
                for v in &mut blocks[slot * width..(slot + 1) * width] {
                    *v += m;
                }
            }
        }
        for e in 0..self.stride() {
            w.active[e] = e < self.len;
        }
        tree.reduced_hessians(red, &w.active, false, |e, l| {
            self.link_hessian_mass(scene, tree, l, e, 1.0)
        });
    }

    /// Newton iterations in reduced coordinates from the current state
    /// (free rows outside the trees at `w.x0`), leaving the error estimate
    /// per lane in `w.error` as the maximal step does.
    #[allow(clippy::too_many_arguments)]
    fn reduced_newton(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        h: f64,
        iterations: u32,
        mut trace: Option<&mut Vec<Vec<f64>>>,
    ) {
        let s = self.stride();
        let nz = tree.n;
        let soft_ranges = tree.has_soft_ranges();
        let linear = red.linear;
        w.begin_newton(self.len);
        self.begin_held();
        for _ in 0..iterations {
            if !w.active.iter().any(|a| *a) {
                break;
            }
            self.count_iteration(&w.active);
            if self.held_moved() {
                // The potential the line search descends moved with them.
                self.reduced_potential(scene, tree, red, w, h, Lanes::Active);
            }
            self.potential_gradient(scene, w, h, Lanes::Active);
            for e in 0..s {
                if !w.active[e] {
                    continue;
                }
                let lane = &mut red.lanes[e];
                let g = |r: usize| w.g[r * s + e];
                tree.moments(&lane.poses, g, &mut lane.moments);
                lane.g.fill(0.0);
                tree.reduce_gradient(&lane.twists, &lane.moments, &mut lane.g);
                for jt in &tree.joints {
                    if matches!(jt.kind, JointKind::Hinge | JointKind::Slider) {
                        lane.g[jt.z] += w.g[jt.row * s + e];
                    }
                }
                for (z, row) in tree.row_of.iter().enumerate() {
                    if let Some(r) = row {
                        lane.g[z] = w.g[r * s + e];
                    }
                }
            }
            self.reduced_blocks(scene, tree, red, h, false, |e| w.active[e]);
            tree.reduced_hessians(red, &w.active, !linear, |e, l| {
                self.link_hessian_mass(scene, tree, l, e, h * h)
            });
            for e in 0..s {
                if !w.active[e] {
                    continue;
                }
                let lane = &mut red.lanes[e];
                let (mut g, mut hz) = (std::mem::take(&mut lane.g), std::mem::take(&mut lane.h));
                let controls = &self.b.controls;
                let u = |c: u32| controls[c as usize * s + e].to_f64();
                tree.joint_terms(lane, h, !linear, u, Some((&mut g, &mut hz)));
                for (d, gz) in lane.dz.iter_mut().zip(&g) {
                    *d = -gz;
                }
                if !shifted_cholesky_solve(&mut hz, nz, &mut lane.dz, &mut red.work) {
                    lane.dz.fill(f64::NAN);
                } else if soft_ranges {
                    tree.land_soft_ranges(lane, &g, &red.work, &mut hz, &mut red.land);
                }
                w.slope[e] = g.iter().zip(&lane.dz).map(|(a, b)| a * b).sum();
                lane.g = g;
                lane.h = hz;
            }
            // The whole reduced gradient, joint terms included.
            if let Some(t) = trace.as_deref_mut() {
                t.push(
                    (0..self.len)
                        .map(|e| red.lanes[e].g.iter().map(|g| g.abs()).fold(0.0, f64::max))
                        .collect(),
                );
            }
            self.reduced_line_search(scene, tree, red, w, h);
            for e in 0..s {
                if w.active[e] {
                    let step = red.lanes[e].dz.iter().map(|d| d.abs()).fold(0.0, f64::max);
                    w.after_step(e, step);
                }
            }
            self.update_held(scene, w);
        }
    }

    /// Backtracking (Armijo) along each active lane's `dz` from its current
    /// state, whose potential is in `w.phi` (slopes in `w.slope`).
    fn reduced_line_search(
        &mut self,
        scene: &Scene,
        tree: &Tree,
        red: &mut Reduced,
        w: &mut Scratch,
        h: f64,
    ) {
        let s = self.stride();
        w.phi0.copy_from_slice(&w.phi);
        let mut rows = std::mem::take(&mut w.x0);
        let mut base_rows = std::mem::take(&mut red.base_rows);
        base_rows.copy_from_slice(&rows);
        for lane in &mut red.lanes {
            lane.base.copy_from_slice(&lane.state);
            lane.lin_base.copy_from_slice(&lane.lin);
        }
        w.begin_line_search();
        for _ in 0..super::newton::LINE_SEARCH_TRIALS {
            // Lanes that accepted their step keep it, placed.
            if w.done.iter().all(|d| *d) {
                break;
            }
            for e in 0..self.len {
                if w.done[e] {
                    continue;
                }
                let lane = &mut red.lanes[e];
                let a = if w.active[e] { w.alpha[e] } else { 0.0 };
                // At a = 0 exactly the base, whatever the step holds.
                let dz: &[f64] = if a == 0.0 { &red.zero_step } else { &lane.dz };
                if red.linear {
                    for ((l, b), d) in lane.lin.iter_mut().zip(&lane.lin_base).zip(dz) {
                        *l = b + a * d;
                    }
                    tree.retract(&lane.start, &lane.lin, 1.0, &mut lane.state);
                } else {
                    tree.retract(&lane.base, dz, a, &mut lane.state);
                }
                for (z, row) in tree.row_of.iter().enumerate() {
                    if let Some(r) = row {
                        rows[r * s + e] = base_rows[r * s + e] + a * dz[z];
                    }
                }
            }
            self.reduced_place(tree, red, &rows, Some(&w.done));
            self.reduced_potential(scene, tree, red, w, h, Lanes::Searching);
            w.armijo(T::EPSILON);
        }
        w.x0 = rows;
        red.base_rows = base_rows;
    }
}
