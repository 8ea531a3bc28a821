//! An environment's initial state: the model's, with the fields that read
//! parameters ([`Model::start`]: a particle's `x` and `v`, a body's `x`,
//! `rotation`, `v` and `w`, a free joint's origin and velocities) evaluated
//! from the environment's parameters; and the vector-Jacobian product that
//! carries a gradient with respect to the initial state back to those
//! parameters. The fields' rows are one IR graph (the same lowering and
//! reverse mode as the kernels), evaluated in f64 when an environment starts.

use crate::diff;
use crate::interp::eval_op;
use crate::ir::{Cmp, Graph, Id, Leaf, Op};
use crate::math::quat_to_mat;
use crate::model::{Input, JointKind, Model, StartKey, Term};
use std::sync::Arc;

/// The initial state as a function of the parameters.
#[derive(Debug, Clone, Default)]
pub struct Start {
    graph: Graph,
    /// The rows the fields write: `(velocity, row, value)`.
    rows: Vec<(bool, usize, Id)>,
    /// `d (sum_k seed_k row_k) / d param`, for the parameters the rows read.
    params: Vec<(usize, Id)>,
    /// Jitter draws of a whole start.
    draws: usize,
    /// The parameters' declared values.
    declared: Vec<f64>,
}

/// The first velocity jitter draw of each particle, body and joint-tree body
/// (in the order [`Start::dofs`] draws them), `None` where it draws none.
struct JitterBase {
    particles: Vec<Option<usize>>,
    bodies: Vec<Option<usize>>,
    joints: Vec<Option<usize>>,
    /// Draws in all.
    draws: usize,
}

impl JitterBase {
    fn new(m: &Model) -> JitterBase {
        let mut next = 0;
        let mut take = |n: usize| {
            next += n;
            Some(next - n)
        };
        let particles = m
            .particles
            .iter()
            .map(|p| p.dof.and_then(|_| take(3)))
            .collect();
        let bodies = m
            .bodies
            .iter()
            .map(|b| b.dof.and_then(|_| take(6)))
            .collect();
        let joints = m
            .bodies
            .iter()
            .map(|b| {
                let a = b.joint.as_ref()?;
                take(a.joints.iter().map(|j| j.kind.dofs()).sum())
            })
            .collect();
        JitterBase {
            particles,
            bodies,
            joints,
            draws: next,
        }
    }
}

impl Start {
    /// The start of `model`'s state (empty when no field reads a parameter).
    pub fn new(m: &Model) -> Start {
        if m.start.is_empty() {
            return Start::default();
        }
        let mut g = Graph::new();
        let jitter = JitterBase::new(m);
        let mut rows = vec![];
        let leaf = |i: Input| match i {
            Input::Param(p) => Leaf::Param(p),
            other => unreachable!("start fields read parameters only, not {other:?}"),
        };
        // Each field's components, lowered once.
        let field = |g: &mut Graph, particle: bool, owner: usize, key: StartKey| {
            m.start
                .iter()
                .find(|f| f.particle == particle && f.owner as usize == owner && f.key == key)
                .map(|f| crate::ir::lower::Lowerer::new(g, leaf).lower(&f.value))
        };
        let jit = |g: &mut Graph, base: Option<usize>, k: usize| {
            g.leaf(Leaf::Const(
                (base.expect("a free owner draws jitter") + k) as u32,
            ))
        };
        for (i, p) in m.particles.iter().enumerate() {
            let Some(d) = p.dof.map(|d| d as usize) else {
                continue;
            };
            if let Some(x) = field(&mut g, true, i, StartKey::X) {
                rows.extend((0..3).map(|k| (false, d + k, x[k])));
            }
            if let Some(v) = field(&mut g, true, i, StartKey::V) {
                for (k, &vk) in v.iter().enumerate() {
                    let j = jit(&mut g, jitter.particles[i], k);
                    rows.push((true, d + k, g.add(vk, j)));
                }
            }
        }
        for (i, b) in m.bodies.iter().enumerate() {
            let [x, v, q, w, coords, rates] = [
                StartKey::X,
                StartKey::V,
                StartKey::Rotation,
                StartKey::W,
                StartKey::Q,
                StartKey::Qdot,
            ]
            .map(|key| field(&mut g, false, i, key));
            if let Some(a) = &b.joint {
                // Joint coordinates and rates, in the jitter draws' order.
                let c = a.coord as usize;
                if let Some(coords) = coords {
                    rows.extend(coords.iter().enumerate().map(|(k, &qk)| (false, c + k, qk)));
                }
                for (k, &rk) in rates.iter().flatten().enumerate() {
                    let j = jit(&mut g, jitter.joints[i], k);
                    rows.push((true, c + k, g.add(rk, j)));
                }
                if [&x, &v, &q, &w].iter().all(|f| f.is_none()) {
                    continue;
                }
                // A free joint: the origin's displacement from the initial
                // pose and the rotation vector of its turn from it, then
                // velocity and angular velocity interleaved in the jitter
                // draws.
                debug_assert!(a.joints.len() == 1 && a.joints[0].kind == JointKind::Free);
                if let Some(x) = x {
                    for (k, &xk) in x.iter().enumerate() {
                        let x0 = g.constant(b.x[k]);
                        rows.push((false, c + k, g.sub(xk, x0)));
                    }
                }
                if let Some(q) = q {
                    let turn = turn_from(&mut g, &q, b.rotation);
                    rows.extend(turn.iter().enumerate().map(|(k, &r)| (false, c + 3 + k, r)));
                }
                for (at, f) in [(0, v), (1, w)] {
                    for (k, &fk) in f.iter().flatten().enumerate() {
                        let j = jit(&mut g, jitter.joints[i], 2 * k + at);
                        rows.push((true, c + 3 * at + k, g.add(fk, j)));
                    }
                }
                continue;
            }
            let Some(d) = b.dof.map(|d| d as usize) else {
                continue;
            };
            if [&x, &v, &q, &w].iter().all(|f| f.is_none()) {
                continue;
            }
            if let Some(x) = x {
                rows.extend((0..3).map(|k| (false, d + k, x[k])));
            }
            if let Some(v) = v {
                for (k, &vk) in v.iter().enumerate() {
                    let j = jit(&mut g, jitter.bodies[i], k);
                    rows.push((true, d + k, g.add(vk, j)));
                }
            }
            if q.is_none() && w.is_none() {
                continue;
            }
            // The matrix rows (column-major) and Rdot = [w]x R.
            let r: Vec<Id> = match &q {
                Some(q) => {
                    let q = normalised(&mut g, q);
                    rotation_matrix(&mut g, q)
                }
                None => quat_to_mat(b.rotation).map(|c| g.constant(c)).to_vec(),
            };
            if q.is_some() {
                rows.extend((0..9).map(|k| (false, d + 3 + k, r[k])));
            }
            let w: Vec<Id> = (0..3)
                .map(|k| {
                    let wk = w.as_ref().map_or_else(|| g.constant(b.w[k]), |w| w[k]);
                    let j = jit(&mut g, jitter.bodies[i], 3 + k);
                    g.add(wk, j)
                })
                .collect();
            for c in 0..3 {
                let col = &r[3 * c..3 * c + 3];
                for k in 0..3 {
                    let (a, b) = ((k + 1) % 3, (k + 2) % 3);
                    let p = g.mul(w[a], col[b]);
                    let m = g.mul(w[b], col[a]);
                    rows.push((true, d + 3 + 3 * c + k, g.sub(p, m)));
                }
            }
        }
        let values: Vec<Id> = rows.iter().map(|r| r.2).collect();
        let params = params_vjp(&mut g, &values, m.params.len());
        Start {
            graph: g,
            rows,
            params,
            draws: jitter.draws,
            declared: m.params.iter().map(|p| p.value).collect(),
        }
    }

    /// Whether no field reads a parameter nor starts a joint away from the
    /// declared pose (the start is the model's declared state).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every node's value with these parameters, jitter draws and seeds.
    fn eval(&self, params: &[f64], jitter: &[f64], seeds: &[f64]) -> Vec<f64> {
        eval(&self.graph, params, jitter, seeds)
    }

    /// The initial positions and velocities of `model`'s free DOFs with
    /// these parameters (`None`: the declared ones), with `jitter()` added to every particle velocity
    /// component, every body's linear and angular velocity component and
    /// every joint rate (for randomised resets; `|| 0.0` gives the model's
    /// own state).
    pub fn dofs(
        &self,
        m: &Model,
        params: Option<&[f64]>,
        mut jitter: impl FnMut() -> f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut drawn = vec![];
        let mut jitter = || {
            let j = jitter();
            drawn.push(j);
            j
        };
        let (mut x, mut v) = (vec![0.0; m.dof_count], vec![0.0; m.dof_count]);
        for p in &m.particles {
            if let Some(d) = p.dof {
                for k in 0..3 {
                    x[d as usize + k] = p.x[k];
                    v[d as usize + k] = p.v[k] + jitter();
                }
            }
        }
        for body in &m.bodies {
            if let Some(d) = body.dof {
                let d = d as usize;
                let r = quat_to_mat(body.rotation);
                for k in 0..3 {
                    x[d + k] = body.x[k];
                    v[d + k] = body.v[k] + jitter();
                }
                // Rdot = [w]x R, column by column.
                let w = [
                    body.w[0] + jitter(),
                    body.w[1] + jitter(),
                    body.w[2] + jitter(),
                ];
                for c in 0..3 {
                    let col = [r[3 * c], r[3 * c + 1], r[3 * c + 2]];
                    let wx = [
                        w[1] * col[2] - w[2] * col[1],
                        w[2] * col[0] - w[0] * col[2],
                        w[0] * col[1] - w[1] * col[0],
                    ];
                    for k in 0..3 {
                        x[d + 3 + 3 * c + k] = col[k];
                        v[d + 3 + 3 * c + k] = wx[k];
                    }
                }
            }
        }
        // Joint coordinates start at 0 (the initial pose); a free joint's
        // velocities are its body's `v` and `w` (jittered like a body's).
        for body in &m.bodies {
            let Some(att) = &body.joint else { continue };
            let mut row = att.coord as usize;
            for j in &att.joints {
                if j.kind == JointKind::Free {
                    for k in 0..3 {
                        v[row + k] = body.v[k] + jitter();
                        v[row + 3 + k] = body.w[k] + jitter();
                    }
                } else {
                    for k in 0..j.kind.dofs() {
                        v[row + k] = jitter();
                    }
                }
                row += j.kind.dofs();
            }
        }
        if !self.is_empty() {
            let params = params.unwrap_or(&self.declared);
            let values = self.eval(params, &drawn, &vec![0.0; self.rows.len()]);
            for &(velocity, row, id) in &self.rows {
                let buf = if velocity { &mut v } else { &mut x };
                buf[row] = values[id as usize];
            }
        }
        (x, v)
    }

    /// Adds to `out[param]` the derivative of an objective through the start,
    /// given its gradient with respect to the initial positions `dx` and
    /// velocities `dv` (per free DOF), for a start without jitter.
    pub fn vjp(&self, params: &[f64], dx: &[f64], dv: &[f64], out: &mut [f64]) {
        if self.is_empty() {
            return;
        }
        let seeds: Vec<f64> = self
            .rows
            .iter()
            .map(|&(velocity, row, _)| if velocity { dv[row] } else { dx[row] })
            .collect();
        let jitter = vec![0.0; self.draws];
        let values = self.eval(params, &jitter, &seeds);
        for &(p, id) in &self.params {
            out[p] += values[id as usize];
        }
    }
}

/// Every node's value of `graph` with these parameters, constants (`Const`
/// leaves) and seeds (`OutSeed` leaves).
fn eval(graph: &Graph, params: &[f64], consts: &[f64], seeds: &[f64]) -> Vec<f64> {
    let mut v = Vec::with_capacity(graph.len());
    eval_into(graph, graph.len(), params, consts, seeds, &mut v);
    v
}

/// [`eval`] of the first `n` nodes into `v` (cleared first; no allocation
/// once it has held them).
fn eval_into(
    graph: &Graph,
    n: usize,
    params: &[f64],
    consts: &[f64],
    seeds: &[f64],
    v: &mut Vec<f64>,
) {
    v.clear();
    for &op in &graph.nodes()[..n] {
        let x = match op {
            Op::Leaf(Leaf::Param(p)) => params[p as usize],
            Op::Leaf(Leaf::Const(k)) => consts[k as usize],
            Op::Leaf(Leaf::OutSeed(k)) => seeds[k as usize],
            op => eval_op(op, v),
        };
        v.push(x);
    }
}

/// The VJP of `sum_k seed_k value_k` with respect to the parameters the
/// values read, appended to `g`: `(param, derivative)`.
fn params_vjp(g: &mut Graph, values: &[Id], params: usize) -> Vec<(usize, Id)> {
    let mut s = g.constant(0.0);
    for (k, &value) in values.iter().enumerate() {
        let seed = g.leaf(Leaf::OutSeed(k as u32));
        let p = g.mul(seed, value);
        s = g.add(s, p);
    }
    let read: Vec<usize> = (0..params)
        .filter(|&p| g.nodes().contains(&Op::Leaf(Leaf::Param(p as u32))))
        .collect();
    let wrt: Vec<Leaf> = read.iter().map(|&p| Leaf::Param(p as u32)).collect();
    let ds = diff::gradient(g, s, &wrt);
    read.into_iter().zip(ds).collect()
}

/// The masses that read parameters ([`Model::masses`]: in an explicit
/// step, and of joint trees' links), per owner, with the free rows they act
/// on. Most have one value, the scale `m(p) / m0`: an explicit step
/// divides a particle's or affine body's forces by it (its mass matrix
/// holds `m0`, the weight is gravity's acceleration whatever the mass), a
/// step in joint coordinates multiplies a link's inertia by it. A body
/// whose `com` or `inertia` reads params has ten, its affine mass matrix
/// `W(p)` ([`AFFINE_WEIGHTS`]): the step in joint coordinates uses it for a
/// link's inertia, an explicit step turns an affine body's forces by
/// `W0 W(p)^-1`. The adjoints carry the values' derivatives back to the
/// parameters.
#[derive(Debug, Clone, Default)]
pub struct MassScales {
    graph: Graph,
    /// Per owner: its free rows and its values.
    owners: Vec<MassOwner>,
    /// Every owner's values, in order.
    values: Vec<Id>,
    /// `d (sum_k seed_k value_k) / d param`.
    params: Vec<(usize, Id)>,
    /// The graph's nodes up to the values (the VJP's follow).
    value_nodes: usize,
}

/// One owner of [`MassScales`]: its free rows and the range of its values.
#[derive(Debug, Clone, PartialEq)]
pub struct MassOwner {
    /// The free rows its mass acts on.
    pub rows: std::ops::Range<usize>,
    /// Its values in [`MassScales::values_into`]'s output: one scale, or a
    /// body's ten weights ([`AFFINE_WEIGHTS`]).
    pub values: std::ops::Range<usize>,
    /// Whether it is a joint tree's link (its mass acts in the reduced
    /// step, not through its rows' forces).
    pub link: bool,
    /// With weights: the declared affine mass matrix (the mass matrix's).
    pub declared: [[f64; 4]; 4],
}

impl MassOwner {
    /// Whether its values are a body's weights (else a scale).
    pub fn has_weights(&self) -> bool {
        self.values.len() == AFFINE_WEIGHTS.len()
    }
}

/// The entries `(a, b)`, `a <= b`, of a body's symmetric 4x4 affine mass
/// matrix `W` ([`crate::model::Body::mass_matrix`]) in the order of its
/// values.
pub const AFFINE_WEIGHTS: [(usize, usize); 10] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
];

/// A body's affine mass matrix from its ten values ([`AFFINE_WEIGHTS`]).
pub fn affine_weights(values: &[f64]) -> [[f64; 4]; 4] {
    let mut w = [[0.0; 4]; 4];
    for (&(a, b), &v) in AFFINE_WEIGHTS.iter().zip(values) {
        w[a][b] = v;
        w[b][a] = v;
    }
    w
}

impl MassScales {
    /// The values of `model`'s masses that read parameters.
    pub fn new(m: &Model) -> MassScales {
        let mut g = Graph::new();
        let leaf = |i: Input| match i {
            Input::Param(p) => Leaf::Param(p),
            other => unreachable!("masses read parameters only, not {other:?}"),
        };
        let (mut owners, mut values) = (vec![], vec![]);
        for f in &m.masses {
            let (dof, width) = if f.particle {
                (m.particles[f.owner as usize].dof, 3)
            } else {
                (m.bodies[f.owner as usize].dof, 12)
            };
            let Some(d) = dof.map(|d| d as usize) else {
                continue;
            };
            let mass = crate::ir::lower::Lowerer::new(&mut g, leaf).lower(&f.value)[0];
            let first = values.len();
            let body = (!f.particle).then(|| &m.bodies[f.owner as usize]);
            match &f.distribution {
                Some((com, tensor)) => {
                    values.extend(affine_weights_of(&mut g, mass, com, tensor, leaf))
                }
                None => {
                    let m0 = g.constant(f.declared);
                    values.push(g.div(mass, m0));
                }
            }
            owners.push(MassOwner {
                rows: d..d + width,
                values: first..values.len(),
                link: body.is_some_and(|b| b.joint.is_some()),
                declared: body.map_or([[0.0; 4]; 4], |b| b.mass_matrix()),
            });
        }
        let value_nodes = g.len();
        let params = params_vjp(&mut g, &values, m.params.len());
        MassScales {
            graph: g,
            owners,
            values,
            params,
            value_nodes,
        }
    }

    /// Whether no mass reads a parameter (in an explicit step, or of a
    /// joint tree's link).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The owners, in the order of their values.
    pub fn owners(&self) -> &[MassOwner] {
        &self.owners
    }

    /// The number of values ([`MassScales::values_into`]).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Every owner's values with these parameters into `out` (in the order
    /// of [`MassScales::owners`]), `nodes` the graph's values (reused: no
    /// allocation once it has held them).
    pub fn values_into(&self, params: &[f64], nodes: &mut Vec<f64>, out: &mut [f64]) {
        // The values' nodes precede the VJP's, which read the seeds.
        eval_into(&self.graph, self.value_nodes, params, &[], &[], nodes);
        for (o, id) in out.iter_mut().zip(&self.values) {
            *o = nodes[*id as usize];
        }
    }

    /// Adds to `out[param]` the derivative through the values, given the
    /// objective's derivative with respect to each value.
    pub fn vjp(&self, params: &[f64], seeds: &[f64], out: &mut [f64]) {
        let v = eval(&self.graph, params, &[], seeds);
        for &(p, id) in &self.params {
            out[p] += v[id as usize];
        }
    }
}

/// A body's ten weights ([`AFFINE_WEIGHTS`]) in `g` from its `mass`, its
/// centre of mass `c` and inertia tensor `I` (about `c`, column-major):
/// `m`, `m c` and `m c c^T + tr(I)/2 Id - I`.
fn affine_weights_of(
    g: &mut Graph,
    mass: Id,
    com: &Arc<Term>,
    tensor: &Arc<Term>,
    leaf: impl Fn(Input) -> Leaf + Copy,
) -> Vec<Id> {
    let c = crate::ir::lower::Lowerer::new(g, leaf).lower(com);
    // Column-major: entry (j, k) at 3 k + j.
    let i = crate::ir::lower::Lowerer::new(g, leaf).lower(tensor);
    let mc: Vec<Id> = c.iter().map(|&cj| g.mul(mass, cj)).collect();
    let trace = g.add(i[0], i[4]);
    let trace = g.add(trace, i[8]);
    let half = g.constant(0.5);
    let half_trace = g.mul(half, trace);
    AFFINE_WEIGHTS
        .iter()
        .map(|&(a, b)| match (a, b) {
            (0, 0) => mass,
            (0, k) => mc[k - 1],
            (j, k) => {
                let (j, k) = (j - 1, k - 1);
                let mcc = g.mul(mc[j], c[k]);
                let s = if j == k {
                    g.sub(half_trace, i[3 * k + j])
                } else {
                    g.neg(i[3 * k + j])
                };
                g.add(mcc, s)
            }
        })
        .collect()
}

/// The quaternion `q` (`(w, x, y, z)`) divided by its norm.
fn normalised(g: &mut Graph, q: &[Id]) -> [Id; 4] {
    let n2 = q.iter().fold(g.constant(0.0), |s, &c| {
        let cc = g.mul(c, c);
        g.add(s, cc)
    });
    let n = g.unary(Op::Sqrt, n2);
    [0, 1, 2, 3].map(|k| g.div(q[k], n))
}

/// The rotation vector of the turn from the unit quaternion `q0` to the
/// quaternion `q` (not normalised; `(w, x, y, z)`): `log(R(q) R(q0)^T)`, a
/// free joint's rotation coordinates. With `r = q / |q| * conj(q0)` taken
/// with `r_w >= 0`, `2 atan2(|r_v|, r_w) r_v / |r_v|`; below `|r_v| = 1e-6`
/// the series `(2 / r_w) (1 - t^2 / 3 + t^4 / 5) r_v`, `t = |r_v| / r_w`,
/// so the turn and its derivatives are finite at no turn (the declared
/// rotation).
fn turn_from(g: &mut Graph, q: &[Id], q0: [f64; 4]) -> [Id; 3] {
    let [w, x, y, z] = normalised(g, q);
    // r = q conj(q0), conj(q0) = (a, -b, -c, -d).
    let [a, b, c, d] = q0.map(|k| g.constant(k));
    let sum = |g: &mut Graph, terms: [(f64, Id, Id); 4]| {
        terms.iter().fold(g.constant(0.0), |s, &(sign, u, v)| {
            let p = g.mul(u, v);
            if sign > 0.0 {
                g.add(s, p)
            } else {
                g.sub(s, p)
            }
        })
    };
    let rw = sum(g, [(1.0, w, a), (1.0, x, b), (1.0, y, c), (1.0, z, d)]);
    let rx = sum(g, [(-1.0, w, b), (1.0, x, a), (-1.0, y, d), (1.0, z, c)]);
    let ry = sum(g, [(-1.0, w, c), (1.0, x, d), (1.0, y, a), (-1.0, z, b)]);
    let rz = sum(g, [(-1.0, w, d), (-1.0, x, c), (1.0, y, b), (1.0, z, a)]);
    // The same turn with r_w >= 0.
    let zero = g.constant(0.0);
    let negative = g.cmp(Cmp::Lt, rw, zero);
    let (one, minus) = (g.constant(1.0), g.constant(-1.0));
    let sign = g.select(negative, minus, one);
    let [rw, rx, ry, rz] = [rw, rx, ry, rz].map(|r| g.mul(sign, r));
    let s2 = [rx, ry, rz].iter().fold(zero, |s, &r| {
        let rr = g.mul(r, r);
        g.add(s, rr)
    });
    // Exact: 2 atan2(s, r_w) / s, its square root kept away from 0.
    let tiny = g.constant(1e-300);
    let guarded = g.max(s2, tiny);
    let s = g.unary(Op::Sqrt, guarded);
    let angle = g.atan2(s, rw);
    let two = g.constant(2.0);
    let twice = g.mul(two, angle);
    let exact = g.div(twice, s);
    // Series: (2 / r_w) (1 - t^2 / 3 + t^4 / 5), t^2 = s^2 / r_w^2.
    let rw2 = g.mul(rw, rw);
    let t2 = g.div(s2, rw2);
    let t4 = g.mul(t2, t2);
    let (third, fifth) = (g.constant(1.0 / 3.0), g.constant(0.2));
    let a2 = g.mul(third, t2);
    let a4 = g.mul(fifth, t4);
    let poly = g.sub(one, a2);
    let poly = g.add(poly, a4);
    let over = g.div(two, rw);
    let series = g.mul(over, poly);
    let threshold = g.constant(1e-12);
    let small = g.cmp(Cmp::Lt, s2, threshold);
    let f = g.select(small, series, exact);
    [rx, ry, rz].map(|r| g.mul(f, r))
}

/// The rotation matrix of a unit quaternion `(w, x, y, z)`, column-major
/// (as [`quat_to_mat`]).
fn rotation_matrix(g: &mut Graph, [w, x, y, z]: [Id; 4]) -> Vec<Id> {
    let two = |g: &mut Graph, a: Id, b: Id, c: Id, d: Id, sign: f64| {
        // 2 (a b + sign c d)
        let ab = g.mul(a, b);
        let cd = g.mul(c, d);
        let s = if sign > 0.0 {
            g.add(ab, cd)
        } else {
            g.sub(ab, cd)
        };
        let k = g.constant(2.0);
        g.mul(k, s)
    };
    let diag = |g: &mut Graph, a: Id, b: Id| {
        // 1 - 2 (a^2 + b^2)
        let aa = g.mul(a, a);
        let bb = g.mul(b, b);
        let s = g.add(aa, bb);
        let k = g.constant(2.0);
        let t = g.mul(k, s);
        let one = g.constant(1.0);
        g.sub(one, t)
    };
    let m00 = diag(g, y, z);
    let m01 = two(g, x, y, w, z, -1.0);
    let m02 = two(g, x, z, w, y, 1.0);
    let m10 = two(g, x, y, w, z, 1.0);
    let m11 = diag(g, x, z);
    let m12 = two(g, y, z, w, x, -1.0);
    let m20 = two(g, x, z, w, y, -1.0);
    let m21 = two(g, y, z, w, x, 1.0);
    let m22 = diag(g, x, y);
    // Column-major: column c holds rows 0..3 of column c.
    vec![m00, m10, m20, m01, m11, m21, m02, m12, m22]
}

#[cfg(test)]
mod tests {
    use super::Start;
    use crate::check_source;

    /// At the declared parameters the start's rows are the declared state,
    /// jitter included (each draw landing on the row it jitters), for every
    /// kind of field: particle, affine body, free joint.
    #[test]
    fn the_start_at_the_declared_parameters_is_the_declared_state() {
        let text = "param a = 0.7
            param s = -1.3
            particle p { x = vec3(a, 0, 1), v = vec3(0, s, 2), mass = 1 }
            particle q { x = vec3(0, 0, 2), mass = 1 }
            body slab { shape = box(vec3(0.3, 0.2, 0.1)), mass = 1, x = vec3(0, a, 1),
                rotation = axis_angle(vec3(1, 2, 0), a), v = vec3(s, 0, 0), w = vec3(1, s, 0.5) }
            body torso { shape = sphere(0.2), mass = 2, x = vec3(1, 0, a), v = vec3(0, s, 0),
                w = vec3(s, 0, 2), joint = free }
            body arm { shape = sphere(0.1), mass = 1, x = vec3(1.3, 0, 0.7),
                joint = hinge(torso, at = vec3(1.15, 0, 0.7), axis = vec3(0, 1, 0)) }";
        let checked = check_source("start.joule", text);
        assert!(checked.ok(), "{}", checked.render_diagnostics(false, 10));
        let m = checked.model.expect("a model");
        let start = Start::new(&m);
        assert!(!start.is_empty());
        let counting = || {
            let mut k = 0.0;
            move || {
                k += 1.0;
                k
            }
        };
        // The declared state as the resolver evaluated the fields.
        let (x0, v0) = Start::default().dofs(&m, None, counting());
        let (x1, v1) = start.dofs(&m, None, counting());
        for (a, b) in x0.iter().zip(&x1).chain(v0.iter().zip(&v1)) {
            assert!((a - b).abs() < 1e-12, "{x0:?} {v0:?}\n{x1:?} {v1:?}");
        }
        // Other parameters move the rows that read them.
        let (x2, v2) = start.dofs(&m, Some(&[0.2, 4.0]), || 0.0);
        assert_eq!((x2[0], v2[1]), (0.2, 4.0));
    }
}
