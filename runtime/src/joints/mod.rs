//! Robots in joint coordinates (docs/joints.md): the static plan of a
//! scene's joint trees, built once per scene from the model.
//!
//! A body with a `joint` is a *link*. Its 12 maximal rows (origin, rotation
//! columns) are not unknowns of the step: forward kinematics
//! (`kinematics`) computes them from the *reduced coordinates* `z`, the
//! joints' coordinates, so every kernel (energies, contact, outputs) reads
//! links exactly like affine bodies, with `R` an exact rotation. The step
//! minimises the same incremental potential over `z` (`crate::step`'s
//! `reduced` module), with gradient `J^T g_y` and Hessian
//! `J^T H_y J + sum g_y d2y/dz2`; every free row outside the trees
//! (particles, affine bodies) is a reduced coordinate of its own (`J` is the
//! identity there), so robots, soft bodies and free objects share one solve.
//!
//! What is static is decided here: the links in an order where parents come
//! first, each joint's anchor and axis in its parent's frame, each link's
//! chain (the coordinates its pose depends on, root first), and the plan
//! that assembles the maximal Hessian's entries (mass matrix, Hessian-block
//! kernels) into dense blocks per pair of *groups* (a link's 12 rows, or one
//! row that is a coordinate itself) for the reduction `J_g^T H_gh J_h`.

mod derivatives;
pub(crate) use derivatives::ChainTables;
pub(crate) mod kinematics;
#[cfg(test)]
mod test_trees;

use crate::mass::MassModel;
use glam::{DMat3, DQuat, DVec3};
use joule_compiler::kernels::{KernelIr, KernelKind};
use joule_compiler::model::{Integrator, JointKind, LimitLaw, Model, SoftRange};
use joule_compiler::Diagnostic;
use kinematics::{Spatial, Twist};
use std::collections::HashMap;

/// A rigid transform `x -> r x + p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pose {
    /// Rotation.
    pub r: DMat3,
    /// Translation.
    pub p: DVec3,
}

impl Pose {
    /// The identity.
    pub const IDENTITY: Pose = Pose {
        r: DMat3::IDENTITY,
        p: DVec3::ZERO,
    };

    /// `self` after `o` (`o` expressed in `self`'s frame).
    pub fn mul(self, o: Pose) -> Pose {
        Pose {
            r: self.r * o.r,
            p: self.r * o.p + self.p,
        }
    }

    /// The inverse transform.
    pub fn inverse(self) -> Pose {
        let rt = self.r.transpose();
        Pose {
            r: rt,
            p: -(rt * self.p),
        }
    }

    /// The image of a point.
    pub fn point(self, x: DVec3) -> DVec3 {
        self.r * x + self.p
    }

    /// A model body's initial pose.
    fn initial(x: [f64; 3], q: [f64; 4]) -> Pose {
        Pose {
            r: DMat3::from_quat(DQuat::from_xyzw(q[1], q[2], q[3], q[0]).normalize()),
            p: DVec3::from_array(x),
        }
    }
}

/// One joint of a link, with its constants in the parent's frame.
#[derive(Debug, Clone)]
pub(crate) struct TreeJoint {
    /// Its kind.
    pub kind: JointKind,
    /// Its first reduced coordinate.
    pub z: usize,
    /// Its first coordinate row (maximal layout).
    pub row: usize,
    /// Anchor in the parent's frame (free: unused).
    pub at: DVec3,
    /// Unit axis in the parent's frame (hinge, slider).
    pub axis: DVec3,
    /// Range of a hinge or slider.
    pub range: Option<(f64, f64)>,
    /// A soft range's law (see [`TreeJoint::soft_ends`]); `None`: the
    /// range is a barrier.
    pub soft: Option<SoftLaw>,
    /// Armature, damping, stiffness on the coordinate (hinge, slider).
    pub armature: f64,
    pub damping: f64,
    pub stiffness: f64,
    /// A motor (control, gear) and a position servo (control, kp) on it.
    pub motor: Option<(u32, f64)>,
    pub servo: Option<(u32, f64)>,
    /// Free joints: the body's initial pose (the coordinate rows hold the
    /// displacement and rotation from it).
    pub initial: Pose,
}

impl TreeJoint {
    /// The potential of a hinge's or slider's spring and actuators at its
    /// coordinate `q` (`u(c)`: control `c`'s value), with its first and
    /// second derivatives in `q`: stiffness `k q^2 / 2`, motor `-gear u q`,
    /// servo `kp (q - u)^2 / 2`.
    pub(crate) fn springs(&self, q: f64, u: impl Fn(u32) -> f64) -> (f64, f64, f64) {
        let (mut v, mut d1, mut d2) = (
            0.5 * self.stiffness * q * q,
            self.stiffness * q,
            self.stiffness,
        );
        if let Some((c, gear)) = self.motor {
            v -= gear * u(c) * q;
            d1 -= gear * u(c);
        }
        if let Some((c, kp)) = self.servo {
            let e = q - u(c);
            v += 0.5 * kp * e * e;
            d1 += kp * e;
            d2 += kp;
        }
        (v, d1, d2)
    }

    /// A soft range's generalised force at `q` moving at `qdot`: the
    /// spring-damper force of [`SoftEnds::limit`] taken at the state
    /// (the symplectic step's), clamped to push only; 0 inside the range.
    /// MuJoCo's limit has no such force (the compiler refuses it there).
    pub(crate) fn soft_force(&self, q: f64, qdot: f64) -> f64 {
        let (Some((lo, hi)), Some(SoftLaw::Spring { k, b })) = (self.range, self.soft) else {
            return 0.0;
        };
        if q < lo {
            (k * (lo - q) - b * qdot).max(0.0)
        } else if q > hi {
            (k * (hi - q) - b * qdot).min(0.0)
        } else {
            0.0
        }
    }

    /// The two pieces of a soft range's term in a step of length `h` from
    /// `q_t` moving at `qdot_t` ([`SoftEnds::limit`]): `None` for a
    /// coordinate without a soft range.
    ///
    /// The spring-damper (`soft = t`): below the range the force `k (lo -
    /// q) - b (q - q_t) / h` clamped to push only (mirrored above) — the
    /// one-sided spring `K = k + b / h` toward `q* = (k lo + b q_t / h) / K`
    /// — while the step starts outside the range; a step that starts inside
    /// meets the same spring from the range's end, `q* = lo` (`q*` is the
    /// nearer of the two to the range), so the potential is continuous in
    /// `q_t` and a coordinate starting on its limit is differentiable.
    ///
    /// MuJoCo's limit, on a side whose distance `d` from its end (positive
    /// inside) is below the margin at the step's start, as MuJoCo adds the
    /// constraint: its cost `(a - aref)^2 / (2 R)` over the step's
    /// acceleration `a = (q - q_t - h qdot_t) / h^2` along the side's
    /// normal, for the accelerations that push, times `h^2` (the step's
    /// potential is `h^2` times MuJoCo's cost). With `aref = -b v - k imp
    /// (d - margin)` (`v` the velocity along the normal, `imp` MuJoCo's
    /// impedance at `d`) and `R = (1 - imp) / imp * dA` (`dA` the
    /// coordinate's inverse weight), that is the one-sided spring `K = 1 /
    /// (R h^2)` toward `q* = q_t + h qdot_t +- h^2 aref`.
    pub(crate) fn soft_ends(&self, q_t: f64, qdot_t: f64, h: f64) -> Option<SoftEnds> {
        let ((lo, hi), law) = (self.range?, self.soft?);
        let mut ends = SoftEnds {
            k: [0.0; 2],
            star: [f64::NEG_INFINITY, f64::INFINITY],
            dk: [0.0; 2],
            cross_q: [0.0; 2],
            cross_v: [0.0; 2],
        };
        match law {
            SoftLaw::Spring { k, b } => {
                let big = k + b / h;
                for (i, end) in [lo, hi].into_iter().enumerate() {
                    let star = (k * end + b * q_t / h) / big;
                    let moves = if i == 0 { star < end } else { star > end };
                    ends.k[i] = big;
                    ends.star[i] = if moves { star } else { end };
                    // d(K (q - q*))/dq_t = -K (b / h) / K.
                    ends.cross_q[i] = if moves { -b / h } else { 0.0 };
                }
            }
            SoftLaw::Mujoco(m) => {
                for (i, (side, end)) in [(1.0, lo), (-1.0, hi)].into_iter().enumerate() {
                    let dist = side * (q_t - end);
                    if dist >= m.margin {
                        continue;
                    }
                    let (imp, dimp) = impedance(&m.solimp, dist - m.margin);
                    let r = (1.0 - imp) / imp * m.inv_weight;
                    let aref = -m.b * side * qdot_t - m.k * imp * (dist - m.margin);
                    ends.k[i] = 1.0 / (r.max(1e-15) * h * h);
                    ends.star[i] = q_t + h * qdot_t + side * h * h * aref;
                    // dK/dq_t through the impedance at dist(q_t).
                    ends.dk[i] = side * dimp / ((1.0 - imp) * (1.0 - imp) * m.inv_weight * h * h);
                    // -K times q*'s derivatives in q_t and qdot_t.
                    ends.cross_q[i] =
                        -ends.k[i] * (1.0 - h * h * m.k * (dimp * (dist - m.margin) + imp));
                    ends.cross_v[i] = -ends.k[i] * (h - h * h * m.b);
                }
            }
        }
        Some(ends)
    }
}

/// The law of a soft range, with its constants for the tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SoftLaw {
    /// A spring-damper past each end: MuJoCo's stiffness and damping for
    /// the time constant `t` (critical damping, impedance 0.95: `k = I /
    /// (0.95 t)^2`, `b = 2 I / (0.95 t)` with `I` the coordinate's
    /// effective inertia).
    Spring { k: f64, b: f64 },
    /// MuJoCo's limit constraint.
    Mujoco(MujocoLimit),
}

/// MuJoCo's limit constraint on a coordinate: the stiffness `k` and
/// damping `b` of its reference acceleration (from `solref` and `dmax`,
/// the time constant at least `2 h`: MuJoCo's `refsafe`), its impedance
/// `solimp`, margin, and the coordinate's inverse weight `dA` (the
/// diagonal of `M^-1` in the initial pose: MuJoCo's `dof_invweight0`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MujocoLimit {
    pub k: f64,
    pub b: f64,
    pub solimp: [f64; 5],
    pub margin: f64,
    pub inv_weight: f64,
}

impl MujocoLimit {
    /// The limit of `law` in steps of length `h` on a coordinate of inverse
    /// weight `inv_weight`.
    fn new(law: &LimitLaw, h: f64, inv_weight: f64) -> MujocoLimit {
        let dmax = law.solimp[1];
        let [r0, r1] = law.solref;
        let (k, b) = if r0 > 0.0 {
            let t = r0.max(2.0 * h);
            (1.0 / (dmax * dmax * t * t * r1 * r1), 2.0 / (dmax * t))
        } else {
            (-r0 / (dmax * dmax), -r1 / dmax)
        };
        MujocoLimit {
            k,
            b,
            solimp: law.solimp,
            margin: law.margin,
            inv_weight,
        }
    }
}

/// MuJoCo's impedance at the violation `x` (distance less margin) and its
/// derivative in `x`: `d0` at 0, rising to `dmax` at `|x| = width` along
/// MuJoCo's sigmoid of midpoint `mid` and power `p`.
pub(crate) fn impedance(solimp: &[f64; 5], x: f64) -> (f64, f64) {
    let [d0, dmax, width, mid, p] = *solimp;
    if d0 == dmax || width <= 1e-15 {
        return (0.5 * (d0 + dmax), 0.0);
    }
    let (y, sgn) = ((x / width).abs(), x.signum());
    if y >= 1.0 || y <= 0.0 {
        return (if y >= 1.0 { dmax } else { d0 }, 0.0);
    }
    let (f, df) = if p == 1.0 {
        (y, 1.0)
    } else if y <= mid {
        let a = 1.0 / mid.powf(p - 1.0);
        (a * y.powf(p), p * a * y.powf(p - 1.0))
    } else {
        let b = 1.0 / (1.0 - mid).powf(p - 1.0);
        (1.0 - b * (1.0 - y).powf(p), p * b * (1.0 - y).powf(p - 1.0))
    };
    (d0 + f * (dmax - d0), df * sgn * (dmax - d0) / width)
}

/// A soft range's term within one step, `K0 max(0, q0* - q)^2 / 2 + K1
/// max(0, q - q1*)^2 / 2`: piecewise quadratic in the coordinate, its
/// pieces fixed by the step's start (`q_t`, `qdot_t`); index 0 is the
/// spring below the range, 1 the one above. At most one side is engaged
/// at a point (`q0* < q1*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoftEnds {
    /// Each spring's stiffness.
    pub k: [f64; 2],
    /// The points below and above which a spring pushes (infinite for a
    /// side that is not engaged).
    pub star: [f64; 2],
    /// The stiffnesses' derivatives in `q_t`, and the spring forces'
    /// `K (q - q*)` derivatives in `q_t` and `qdot_t` through `q*`.
    pub dk: [f64; 2],
    pub cross_q: [f64; 2],
    pub cross_v: [f64; 2],
}

impl SoftEnds {
    /// The piece `q` is on: 1 below the range (the spring pushes up), -1
    /// above it, 0 between.
    pub(crate) fn side(&self, q: f64) -> f64 {
        if q < self.star[0] {
            1.0
        } else if q > self.star[1] {
            -1.0
        } else {
            0.0
        }
    }

    /// A soft range's term at `q` in the step whose start fixed these
    /// pieces ([`TreeJoint::soft_ends`]): on each side a one-sided spring
    /// `K max(0, q* - q)^2 / 2` below the range (mirrored above). Returns
    /// its value, first and second derivatives in `q`, and the first
    /// derivative's derivatives in `q_t` and `qdot_t` (for the adjoint).
    pub(crate) fn limit(&self, q: f64) -> [f64; 5] {
        let side = self.side(q);
        if side == 0.0 {
            return [0.0; 5];
        }
        let i = (side < 0.0) as usize;
        let (k, over) = (self.k[i], q - self.star[i]);
        [
            0.5 * k * over * over,
            k * over,
            k,
            self.dk[i] * over + self.cross_q[i],
            self.cross_v[i],
        ]
    }

    /// The gradient and curvature the piece `side` adds at `q` (the
    /// spring's, extended past its end).
    pub(crate) fn piece(&self, side: f64, q: f64) -> (f64, f64) {
        if side == 0.0 {
            return (0.0, 0.0);
        }
        let i = (side < 0.0) as usize;
        (self.k[i] * (q - self.star[i]), self.k[i])
    }
}

/// `a += b`, entry by entry.
fn add_spatial(a: &mut Spatial, b: &Spatial) {
    for (x, y) in a.as_flattened_mut().iter_mut().zip(b.as_flattened()) {
        *x += y;
    }
}

/// MuJoCo's default impedance of a violated soft limit (`solimp`'s `dmax`),
/// which scales the spring-damper's time constant.
const LIMIT_IMPEDANCE: f64 = 0.95;

/// A body in a joint tree.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// First of its 12 maximal rows.
    pub row: usize,
    /// Its parent link (`None`: the world or a fixed body).
    pub parent: Option<usize>,
    /// The parent's pose when it is not a link (the world: the identity; a
    /// fixed body: its pose).
    pub base: Pose,
    /// Its joints, parent side first (indices into [`Tree::joints`]).
    pub joints: std::ops::Range<usize>,
    /// Its pose in the frame after its joints, at zero coordinates (free
    /// joints: the identity, their coordinates are the pose itself).
    pub offset: Pose,
    /// The reduced coordinates its pose depends on, root first.
    pub chain: Vec<usize>,
}

/// What a group of maximal rows is in the reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// A link's 12 rows.
    Link(usize),
    /// One row that is reduced coordinate `z` itself.
    Row(usize),
}

/// Where a Hessian-block kernel's entry goes: (block row, slot, the slot of
/// its mirror for an off-diagonal entry).
pub(crate) type Entry = (usize, usize, Option<usize>);

/// A Hessian-block kernel's entries in the order it writes them, in runs:
/// each guarded instance's entries with the row of its engagement flag
/// (`LoopIr::engaged_row`: where the flag is 0 on every lane of a chunk,
/// the whole run is zero there and is passed over), and the entries of
/// consecutive unguarded instances.
#[derive(Debug, Clone, Default)]
pub(crate) struct KernelEntries {
    pub entries: Vec<Entry>,
    /// Ranges of `entries`, and the engagement flag's row of a guarded run.
    pub runs: Vec<(std::ops::Range<usize>, Option<usize>)>,
}

impl KernelEntries {
    fn push(&mut self, entry: Entry, engaged: Option<usize>) {
        let at = self.entries.len();
        match self.runs.last_mut() {
            Some((run, flag)) if *flag == engaged => run.end = at + 1,
            _ => self.runs.push((at..at + 1, engaged)),
        }
        self.entries.push(entry);
    }
}

/// A dense block of the maximal Hessian between two groups, `rows x cols`
/// entries from `offset` in the block storage, with the positions some
/// entry lands on (the others stay 0: an energy rarely couples all 12 rows
/// of two bodies), by row.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub g: usize,
    pub h: usize,
    pub offset: usize,
    /// Per row of the block that has entries: the row and its columns.
    pub rows: Vec<(usize, Vec<usize>)>,
}

/// The static plan of a scene's joint trees.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Links, parents first.
    pub(crate) links: Vec<Link>,
    /// Joints of all links, in link order.
    pub(crate) joints: Vec<TreeJoint>,
    /// Number of joint coordinates (the first reduced coordinates).
    pub(crate) joint_coords: usize,
    /// Number of reduced coordinates.
    pub(crate) n: usize,
    /// Groups of maximal rows.
    pub(crate) groups: Vec<Group>,
    /// Dense blocks per pair of groups `g <= h` (the Hessian is symmetric:
    /// the block of `h, g` is this one's transpose).
    pub(crate) pairs: Vec<Pair>,
    /// Entries of the block storage per lane.
    pub(crate) block_len: usize,
    /// The mass matrix's entries outside the links: (slot, value).
    pub(crate) mass_entries: Vec<(usize, f64)>,
    /// Per Hessian-block kernel (forward and surrogate), its entries: (block
    /// row, slot, mirrored slot). Each kernel overwrites the block storage,
    /// so its entries are gathered right after it runs.
    kernel_entries: Vec<(KernelKind, KernelEntries)>,
    /// Per reduced coordinate, the maximal row it is (rows outside the trees) or
    /// `None` (joint coordinates).
    pub(crate) row_of: Vec<Option<usize>>,
    /// Per maximal row: its group and index in the group.
    row_group: Vec<Option<(usize, usize)>>,
    /// Per link, its body's affine mass matrix `W` (over origin and
    /// columns): the links' mass enters the reduction as rigid inertias.
    link_mass: Vec<[[f64; 4]; 4]>,
    /// Per joint coordinate, the ball or free joint whose incremental
    /// rotation it is part of (its second derivatives are symmetrised).
    pub(crate) rotation_of: Vec<Option<usize>>,
    /// Per hinge or slider with a range: the barrier's stiffness (the
    /// coordinate's effective inertia at the initial pose over h^2).
    pub(crate) barrier_stiffness: Vec<f64>,
    /// The trees hanging from a free joint: their links and total mass (the
    /// prediction keeps their linear momentum exactly).
    pub(crate) floating: Vec<(Vec<usize>, f64)>,
}

/// Rows of a group.
pub(crate) fn group_rows(g: Group) -> usize {
    match g {
        Group::Link(_) => 12,
        Group::Row(_) => 1,
    }
}

impl Tree {
    /// The plan of a model's joint trees, or `None` when no body has a joint;
    /// an error for a link hanging on an affine body. `kernels` gives the
    /// compiled Hessian-block kernels' IR.
    pub fn new<'k>(
        model: &Model,
        mass: &MassModel,
        kernels: impl Fn(KernelKind) -> &'k KernelIr,
    ) -> Result<Option<Tree>, Diagnostic> {
        if model.bodies.iter().all(|b| b.joint.is_none()) {
            return Ok(None);
        }
        // Links in an order where parents come first (resolve has refused cycles).
        let jointed: Vec<usize> = (0..model.bodies.len())
            .filter(|b| model.bodies[*b].joint.is_some() && model.bodies[*b].dof.is_some())
            .collect();
        let mut order: Vec<usize> = vec![];
        let mut link_of: HashMap<usize, usize> = HashMap::new();
        while order.len() < jointed.len() {
            let before = order.len();
            for &b in &jointed {
                if link_of.contains_key(&b) {
                    continue;
                }
                let parent = model.bodies[b].joint.as_ref().expect("jointed").parent;
                let ready = match parent {
                    None => true,
                    Some(p) => {
                        link_of.contains_key(&(p as usize)) || !jointed.contains(&(p as usize))
                    }
                };
                if ready {
                    link_of.insert(b, order.len());
                    order.push(b);
                }
            }
            assert!(
                order.len() > before,
                "resolve refuses cycles in the joint tree"
            );
        }
        let mut links: Vec<Link> = vec![];
        let mut joints = vec![];
        // Per joint, a soft range's law (its constants need the effective
        // inertia and the inverse weight, known once the tree is planned).
        let mut soft_laws = vec![];
        let mut z = 0;
        for &b in &order {
            let body = &model.bodies[b];
            let att = body.joint.as_ref().expect("jointed");
            let row = body.dof.expect("a link moves") as usize;
            let parent0 = att.parent.map_or(Pose::IDENTITY, |p| {
                let pb = &model.bodies[p as usize];
                Pose::initial(pb.x, pb.rotation)
            });
            // The parent is a link, the world, or a fixed body (a constant
            // base); an affine body would make the link's pose depend on
            // rows outside the tree.
            let parent = match att.parent {
                None => None,
                Some(p) => match link_of.get(&(p as usize)) {
                    Some(l) => Some(*l),
                    None if model.bodies[p as usize].dof.is_none() => None,
                    None => {
                        return Err(Diagnostic::error(
                            "joule::joint",
                            format!(
                                "`{}` hangs on `{}`, an affine body",
                                body.name, model.bodies[p as usize].name
                            ),
                            att.span,
                            "parent is not in a joint tree",
                        )
                        .with_help(format!(
                            "give `{}` a joint too (`joint = free` makes it a free rigid body), or fix it",
                            model.bodies[p as usize].name
                        )));
                    }
                },
            };
            let base = if parent.is_none() {
                parent0
            } else {
                Pose::IDENTITY
            };
            let inv0 = parent0.inverse();
            let body0 = Pose::initial(body.x, body.rotation);
            let mut chain = parent.map_or(vec![], |p: usize| links[p].chain.clone());
            let first = joints.len();
            let mut coord_row = att.coord as usize;
            let mut free = false;
            for j in &att.joints {
                if let (Some(SoftRange::Mujoco(_)), Integrator::SymplecticEuler) =
                    (j.soft, &model.settings.integrator)
                {
                    return Err(Diagnostic::error(
                        "joule::joint",
                        "MuJoCo's limit needs the implicit step",
                        j.span,
                        "`solref`/`solimp`/`margin` on a symplectic scene",
                    )
                    .with_help("MuJoCo's limit is a term of the implicit step's potential: use `integrator = implicit_euler(..)`, or `soft = t` (a spring-damper, which the symplectic step takes as a force)"));
                }
                let k = j.kind.dofs();
                free |= j.kind == JointKind::Free;
                joints.push(TreeJoint {
                    kind: j.kind,
                    z,
                    row: coord_row,
                    at: inv0.point(DVec3::from_array(j.at)),
                    axis: inv0.r * DVec3::from_array(j.axis),
                    range: j.range,
                    soft: None,
                    armature: j.armature,
                    damping: j.damping,
                    stiffness: j.stiffness,
                    motor: j.motor,
                    servo: j.servo,
                    initial: body0,
                });
                soft_laws.push(j.soft);
                chain.extend(z..z + k);
                z += k;
                coord_row += k;
            }
            links.push(Link {
                row,
                parent,
                base,
                joints: first..joints.len(),
                offset: if free {
                    Pose::IDENTITY
                } else {
                    inv0.mul(body0)
                },
                chain,
            });
        }
        let joint_coords = z;
        // Groups: links, the joints' scalar coordinate rows (hinge, slider:
        // the row is the coordinate), and every other free row outside the trees.
        let dofs = model.dof_count;
        let mut row_group: Vec<Option<(usize, usize)>> = vec![None; dofs];
        let mut groups = vec![];
        let mut in_tree = vec![false; dofs];
        let mut row_of = vec![None; joint_coords];
        for (l, link) in links.iter().enumerate() {
            for k in 0..12 {
                row_group[link.row + k] = Some((groups.len(), k));
                in_tree[link.row + k] = true;
            }
            groups.push(Group::Link(l));
        }
        for j in &joints {
            for k in 0..j.kind.dofs() {
                in_tree[j.row + k] = true;
            }
            if matches!(j.kind, JointKind::Hinge | JointKind::Slider) {
                row_group[j.row] = Some((groups.len(), 0));
                groups.push(Group::Row(j.z));
            }
        }
        for r in 0..dofs {
            if !in_tree[r] {
                row_group[r] = Some((groups.len(), 0));
                groups.push(Group::Row(z));
                row_of.push(Some(r));
                z += 1;
            }
        }
        let link_mass: Vec<[[f64; 4]; 4]> = order
            .iter()
            .map(|b| model.bodies[*b].mass_matrix())
            .collect();
        let mut floating: Vec<(Vec<usize>, f64)> = vec![];
        let mut tree_of: Vec<Option<usize>> = vec![None; links.len()];
        for (l, link) in links.iter().enumerate() {
            tree_of[l] = match link.parent {
                Some(p) => tree_of[p],
                None if joints[link.joints.start].kind == JointKind::Free => {
                    floating.push((vec![], 0.0));
                    Some(floating.len() - 1)
                }
                None => None,
            };
            if let Some(t) = tree_of[l] {
                floating[t].0.push(l);
                floating[t].1 += link_mass[l][0][0];
            }
        }
        let mut tree = Tree {
            floating,
            link_mass,
            barrier_stiffness: vec![],
            rotation_of: vec![None; joint_coords],
            links,
            joints,
            joint_coords,
            n: z,
            groups,
            pairs: vec![],
            block_len: 0,
            mass_entries: vec![],
            kernel_entries: vec![],
            row_of,
            row_group,
        };
        for (j, jt) in tree.joints.iter().enumerate() {
            let rotation = match jt.kind {
                JointKind::Ball => jt.z..jt.z + 3,
                JointKind::Free => jt.z + 3..jt.z + 6,
                _ => 0..0,
            };
            for k in rotation {
                tree.rotation_of[k] = Some(j);
            }
        }
        tree.plan_assembly(mass, kernels);
        let (inertia, inv_weight) = tree.effective_inertia();
        let h = model.settings.substep();
        for (j, (jt, law)) in tree.joints.iter_mut().zip(soft_laws).enumerate() {
            jt.soft = law.map(|law| match law {
                SoftRange::Spring(t) => {
                    let t = LIMIT_IMPEDANCE * t;
                    SoftLaw::Spring {
                        k: inertia[j] / (t * t),
                        b: 2.0 * inertia[j] / t,
                    }
                }
                SoftRange::Mujoco(l) => SoftLaw::Mujoco(MujocoLimit::new(&l, h, inv_weight[j])),
            });
        }
        tree.barrier_stiffness = inertia.iter().map(|i| i / (h * h)).collect();
        Ok(Some(tree))
    }

    /// The slot plan: every entry of the maximal Hessian lands in the dense
    /// block of its pair of groups.
    fn plan_assembly<'k>(
        &mut self,
        mass: &MassModel,
        kernels: impl Fn(KernelKind) -> &'k KernelIr,
    ) {
        let mut pair_of: HashMap<(usize, usize), usize> = HashMap::new();
        let mut slot = |tree: &mut Tree, a: usize, c: usize| -> Option<usize> {
            // Rows past the DOFs are fixed bodies' (constants): no entry.
            let (g, la) = (*tree.row_group.get(a)?)?;
            let (h, lc) = (*tree.row_group.get(c)?)?;
            if g > h {
                return None; // the Hessian is symmetric: its mirror is kept
            }
            let cols = group_rows(tree.groups[h]);
            let p = *pair_of.entry((g, h)).or_insert_with(|| {
                let offset = tree.block_len;
                tree.block_len += group_rows(tree.groups[g]) * cols;
                tree.pairs.push(Pair {
                    g,
                    h,
                    offset,
                    rows: vec![],
                });
                tree.pairs.len() - 1
            });
            Some(tree.pairs[p].offset + la * cols + lc)
        };
        // The links' mass is their rigid inertia in the reduction.
        let on_link = |tree: &Tree, r: usize| matches!(tree.row_group.get(r), Some(Some((g, _))) if matches!(tree.groups[*g], Group::Link(_)));
        for (r, c, v) in mass.entries().into_iter().filter(|e| e.2 != 0.0) {
            if on_link(self, r) || on_link(self, c) {
                continue;
            }
            if let Some(s) = slot(self, r, c) {
                self.mass_entries.push((s, v));
            }
        }
        for kind in [
            KernelKind::Hessian,
            KernelKind::DissipationHessian,
            KernelKind::SurrogateHessian,
            KernelKind::SurrogateDissipationHessian,
        ] {
            let mut list = KernelEntries::default();
            for e in kernels(kind).block_entries().filter(|e| !e.zero) {
                let mirror = if e.mirrored {
                    slot(self, e.c, e.a)
                } else {
                    None
                };
                // An entry below the diagonal of group pairs lands on its
                // mirror alone.
                let entry = match (slot(self, e.a, e.c), mirror) {
                    (Some(s), m) => (e.row, s, m),
                    (None, Some(m)) => (e.row, m, None),
                    (None, None) => continue,
                };
                list.push(entry, e.engaged);
            }
            self.kernel_entries.push((kind, list));
        }
        // Each pair's pattern: the slots something is added to.
        let mut used = vec![false; self.block_len];
        for &(s, _) in &self.mass_entries {
            used[s] = true;
        }
        for (_, list) in &self.kernel_entries {
            for &(_, s, m) in &list.entries {
                used[s] = true;
                if let Some(m) = m {
                    used[m] = true;
                }
            }
        }
        for pair in &mut self.pairs {
            let cols = group_rows(self.groups[pair.h]);
            for r in 0..group_rows(self.groups[pair.g]) {
                let at = pair.offset + r * cols;
                let c: Vec<usize> = (0..cols).filter(|c| used[at + c]).collect();
                if !c.is_empty() {
                    pair.rows.push((r, c));
                }
            }
        }
    }

    /// The entries of a Hessian-block kernel: (block row, slot, mirrored slot).
    pub(crate) fn entries(&self, kind: KernelKind) -> &KernelEntries {
        &self
            .kernel_entries
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("a Hessian-block kernel")
            .1
    }

    /// Entries of a pair's block (rows of its first group times rows of
    /// its second).
    pub(crate) fn pair_len(&self, pair: &Pair) -> usize {
        group_rows(self.groups[pair.g]) * group_rows(self.groups[pair.h])
    }

    /// Number of reduced coordinates (joint coordinates, then the free rows
    /// outside the trees).
    pub fn coordinates(&self) -> usize {
        self.n
    }

    /// Per joint, at its first coordinate in the initial pose: the diagonal
    /// of the joint-space mass matrix `M = J^T M_y J` plus the armature (the
    /// inertia it moves), and the diagonal of `M^-1` (its inverse weight,
    /// MuJoCo's `dof_invweight0`; `1 / M_jj` where `M` is singular).
    fn effective_inertia(&self) -> (Vec<f64>, Vec<f64>) {
        let nl = self.links.len();
        let mut state = vec![kinematics::JointState::default(); self.joints.len()];
        self.initial_state(&mut state);
        let mut poses = vec![Pose::IDENTITY; nl];
        let mut twists = vec![Twist::default(); self.joint_coords];
        self.forward(&state, &mut poses, &mut twists);
        let mut composite = vec![[[0.0; 6]; 6]; nl];
        let mut hz = vec![0.0; self.n * self.n];
        self.reduce_hessian(
            &poses,
            &twists,
            |_| 0.0,
            |_| false,
            |_| (None, 1.0),
            &mut composite,
            &mut hz,
        );
        let nj = self.joint_coords;
        let mut m = nalgebra::DMatrix::from_fn(nj, nj, |r, c| hz[r * self.n + c]);
        for j in &self.joints {
            m[(j.z, j.z)] += j.armature;
        }
        let inverse = m.clone().cholesky().map(|f| f.inverse());
        let inertia = self.joints.iter().map(|j| m[(j.z, j.z)]).collect();
        let inv_weight = (self.joints.iter())
            .map(|j| match &inverse {
                Some(i) => i[(j.z, j.z)],
                None => 1.0 / m[(j.z, j.z)].max(1e-15),
            })
            .collect();
        (inertia, inv_weight)
    }

    /// Sets `hz` (dense `n x n`, row-major) to `J^T H J` for the maximal
    /// Hessian `H`: the mass matrix on the links (their rigid inertias,
    /// [`kinematics::rigid_inertia`]; `mass(link)`: the affine mass matrix
    /// where params set it, else the declared, and the factor it is
    /// multiplied by, 0 for none) plus the group-pair
    /// blocks of the plan (`block(k)`: entry `k` of the block storage).
    /// Every link block is pulled back onto twists (6x6, see
    /// [`kinematics::Spatial`]); a link's own blocks are summed over its
    /// subtree (`composite`, one per link) and met by its joints' twists as
    /// in the composite-rigid-body algorithm: coordinates `i <= k` with `k`
    /// on link `l` and `i` on its chain couple through `S_i^T K_l^c S_k`.
    /// Blocks between two links, or with a coordinate row, add `S_g^T K
    /// S_h` and its transpose. Pairs `p` with `live(p)` false hold zeros
    /// (a contact not touching): their pull-back is skipped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reduce_hessian(
        &self,
        poses: &[Pose],
        twists: &[Twist],
        block: impl Fn(usize) -> f64,
        live: impl Fn(usize) -> bool,
        mass: impl Fn(usize) -> (Option<[[f64; 4]; 4]>, f64),
        composite: &mut [Spatial],
        hz: &mut [f64],
    ) {
        let n = self.n;
        hz.fill(0.0);
        for (l, k) in composite.iter_mut().enumerate() {
            let (w, scale) = mass(l);
            *k = if scale == 0.0 {
                [[0.0; 6]; 6]
            } else {
                kinematics::rigid_inertia(
                    w.as_ref().unwrap_or(&self.link_mass[l]),
                    &poses[l],
                    scale,
                )
            };
        }
        // Each pair once: its block and its transpose (a group's own block is whole).
        let add = |hz: &mut [f64], i: usize, k: usize, v: f64| {
            hz[i * n + k] += v;
            hz[k * n + i] += v;
        };
        for (p, pair) in self.pairs.iter().enumerate() {
            let (rh, o) = (group_rows(self.groups[pair.h]), pair.offset);
            if !live(p) {
                continue;
            }
            let b = |r: usize, c: usize| block(o + r * rh + c);
            match (self.groups[pair.g], self.groups[pair.h]) {
                (Group::Link(a), Group::Link(c)) if a == c => {
                    let k = kinematics::pull_block(&poses[a], &poses[a], b);
                    add_spatial(&mut composite[a], &k);
                }
                (Group::Link(a), Group::Link(c)) => {
                    let k = kinematics::pull_block(&poses[a], &poses[c], b);
                    for &zc in &self.links[c].chain {
                        let f = kinematics::apply(&k, &twists[zc]);
                        for &za in &self.links[a].chain {
                            add(hz, za, zc, kinematics::dot(&twists[za], &f));
                        }
                    }
                }
                (Group::Link(a), Group::Row(z)) => {
                    let f = kinematics::pull_rows(&poses[a], |r| b(r, 0));
                    for &za in &self.links[a].chain {
                        add(hz, za, z, kinematics::dot(&twists[za], &f));
                    }
                }
                (Group::Row(z), Group::Row(y)) if z == y => hz[z * n + z] += b(0, 0),
                (Group::Row(z), Group::Row(y)) => add(hz, z, y, b(0, 0)),
                (Group::Row(_), Group::Link(_)) => {
                    unreachable!(
                        "links are the first groups: a pair (g <= h) never has a row before a link"
                    )
                }
            }
        }
        // Composite blocks, children into parents (parents come first).
        for l in (0..self.links.len()).rev() {
            if let Some(p) = self.links[l].parent {
                let k = composite[l];
                add_spatial(&mut composite[p], &k);
            }
        }
        for (l, link) in self.links.iter().enumerate() {
            for j in link.joints.clone() {
                let jt = &self.joints[j];
                for k in jt.z..jt.z + jt.kind.dofs() {
                    let f = kinematics::apply(&composite[l], &twists[k]);
                    for &i in &link.chain {
                        if i > k {
                            break;
                        }
                        let v = kinematics::dot(&twists[i], &f);
                        hz[i * n + k] += v;
                        if i != k {
                            hz[k * n + i] += v;
                        }
                    }
                }
            }
        }
    }

    /// Whether coordinates `i` and `k` differ and are parts of one ball's or
    /// free joint's rotation.
    pub(crate) fn same_rotation(&self, i: usize, k: usize) -> bool {
        i != k && self.rotation_of[i].is_some() && self.rotation_of[i] == self.rotation_of[k]
    }

    /// The maximal row holding joint coordinate `k`.
    pub(crate) fn coordinate_row(&self, k: usize) -> usize {
        let j = self
            .joints
            .iter()
            .rfind(|j| j.z <= k)
            .expect("a joint coordinate");
        j.row + (k - j.z)
    }
}
