//! Lowering of typed [`Term`]s (vectors, matrices, quaternions) to scalar IR.

use super::{Cmp, Graph, Id, Leaf, Op};
use crate::model::{BinOp, Builtin, Input, Shape, State, Term, TermKind, UnOp};
use std::collections::HashMap;

/// Lowers terms into one graph; `leaf` maps model inputs to kernel leaves.
pub struct Lowerer<'g, F: Fn(Input) -> Leaf> {
    /// The graph being built.
    pub g: &'g mut Graph,
    leaf: F,
    locals: HashMap<u32, Vec<Id>>,
    /// Implicit integration: velocities are `(x - prev_x) / h`.
    velocity_step: Option<f64>,
}

impl<'g, F: Fn(Input) -> Leaf> Lowerer<'g, F> {
    /// A lowerer into `g`.
    pub fn new(g: &'g mut Graph, leaf: F) -> Self {
        Lowerer {
            g,
            leaf,
            locals: HashMap::new(),
            velocity_step: None,
        }
    }

    /// Lowers velocity reads as `(x - prev_x) / h`, the velocity implied by
    /// positions in an implicit step, so derivatives with respect to positions
    /// are exact.
    pub fn velocities_from_positions(mut self, h: f64) -> Self {
        self.velocity_step = Some(h);
        self
    }

    /// The scalar components of a term (column-major).
    pub fn lower(&mut self, t: &Term) -> Vec<Id> {
        match &t.kind {
            TermKind::Lit(v) => v.comps().iter().map(|x| self.g.constant(*x)).collect(),
            TermKind::Input(i) => {
                let l = (self.leaf)(*i);
                match (l, self.velocity_step) {
                    (Leaf::State(State::Vel, at), Some(h)) => {
                        let x = self.g.leaf(Leaf::State(State::Pos, at));
                        let x0 = self.g.leaf(Leaf::State(State::PrevPos, at));
                        let d = self.g.sub(x, x0);
                        let hh = self.g.constant(h);
                        vec![self.g.div(d, hh)]
                    }
                    _ => vec![self.g.leaf(l)],
                }
            }
            TermKind::Pack(parts) => parts.iter().flat_map(|p| self.lower(p)).collect(),
            TermKind::Get(x, i) => vec![self.lower(x)[*i as usize]],
            TermKind::Local(l) => self.locals[l].clone(),
            TermKind::Let {
                local, value, body, ..
            } => {
                let v = self.lower(value);
                self.locals.insert(*local, v);
                self.lower(body)
            }
            TermKind::Unary(op, x) => {
                let v = self.lower(x);
                match op {
                    UnOp::Neg => v.into_iter().map(|a| self.g.neg(a)).collect(),
                    UnOp::Not => vec![self.g.not(v[0])],
                }
            }
            TermKind::Binary(op, a, b) => {
                let (sa, sb) = (a.shape, b.shape);
                let (x, y) = (self.lower(a), self.lower(b));
                self.binary(*op, sa, sb, &x, &y)
            }
            TermKind::Call(b, args) => {
                let shapes: Vec<Shape> = args.iter().map(|a| a.shape).collect();
                let vals: Vec<Vec<Id>> = args.iter().map(|a| self.lower(a)).collect();
                self.call(*b, &shapes, &vals)
            }
        }
    }

    fn binary(&mut self, op: BinOp, sa: Shape, sb: Shape, x: &[Id], y: &[Id]) -> Vec<Id> {
        let g = &mut *self.g;
        let zip = |g: &mut Graph, f: fn(&mut Graph, Id, Id) -> Id| -> Vec<Id> {
            x.iter().zip(y).map(|(a, b)| f(g, *a, *b)).collect()
        };
        match op {
            BinOp::Add => zip(g, Graph::add),
            BinOp::Sub => zip(g, Graph::sub),
            BinOp::Mul => match (sa, sb) {
                (Shape::Scalar, _) => y.iter().map(|b| g.mul(x[0], *b)).collect(),
                (_, Shape::Scalar) => x.iter().map(|a| g.mul(*a, y[0])).collect(),
                (Shape::Mat(n), Shape::Vec(_)) => matvec(g, n as usize, x, y),
                (Shape::Mat(n), Shape::Mat(_)) => {
                    let n = n as usize;
                    (0..n)
                        .flat_map(|j| matvec(g, n, x, &y[j * n..(j + 1) * n]))
                        .collect()
                }
                (Shape::Quat, Shape::Quat) => quat_mul(g, x, y),
                _ => unreachable!("shapes checked by the resolver"),
            },
            BinOp::Div => x.iter().map(|a| g.div(*a, y[0])).collect(),
            BinOp::Pow => vec![pow(g, x[0], y[0])],
            BinOp::Lt => vec![g.cmp(Cmp::Lt, x[0], y[0])],
            BinOp::Le => vec![g.cmp(Cmp::Le, x[0], y[0])],
            BinOp::Gt => vec![g.cmp(Cmp::Lt, y[0], x[0])],
            BinOp::Ge => vec![g.cmp(Cmp::Le, y[0], x[0])],
            BinOp::Eq | BinOp::Ne => {
                let eqs: Vec<Id> = x
                    .iter()
                    .zip(y)
                    .map(|(a, b)| g.cmp(Cmp::Eq, *a, *b))
                    .collect();
                let all = eqs[1..].iter().fold(eqs[0], |acc, e| g.and(acc, *e));
                vec![if op == BinOp::Eq { all } else { g.not(all) }]
            }
            BinOp::And => vec![g.and(x[0], y[0])],
            BinOp::Or => vec![g.or(x[0], y[0])],
            BinOp::Rem => unreachable!("`%` is compile-time only"),
        }
    }

    fn call(&mut self, b: Builtin, shapes: &[Shape], a: &[Vec<Id>]) -> Vec<Id> {
        use Builtin::*;
        let g = &mut *self.g;
        let s = |i: usize| a[i][0];
        match b {
            Norm => vec![norm(g, &a[0])],
            Normalize => {
                let n = norm(g, &a[0]);
                a[0].iter().map(|x| g.div(*x, n)).collect()
            }
            Dot => vec![dot(g, &a[0], &a[1])],
            Cross => {
                let (p, q) = (&a[0], &a[1]);
                let c = |g: &mut Graph, i: usize, j: usize| {
                    let l = g.mul(p[i], q[j]);
                    let r = g.mul(p[j], q[i]);
                    g.sub(l, r)
                };
                vec![c(g, 1, 2), c(g, 2, 0), c(g, 0, 1)]
            }
            Outer => {
                let n = a[0].len();
                (0..n)
                    .flat_map(|j| (0..n).map(move |i| (i, j)))
                    .map(|(i, j)| g.mul(a[0][i], a[1][j]))
                    .collect()
            }
            Det => vec![det(g, &a[0])],
            Inv => inv(g, &a[0]),
            Transpose => {
                let n = dim(shapes[0]);
                (0..n)
                    .flat_map(|j| (0..n).map(move |i| a[0][i * n + j]))
                    .collect()
            }
            Trace => {
                let n = dim(shapes[0]);
                let d: Vec<Id> = (0..n).map(|i| a[0][i * n + i]).collect();
                vec![sum(g, &d)]
            }
            Sqrt => vec![g.unary(Op::Sqrt, s(0))],
            Exp => vec![g.unary(Op::Exp, s(0))],
            Log => vec![g.unary(Op::Log, s(0))],
            Sin => vec![g.unary(Op::Sin, s(0))],
            Cos => vec![g.unary(Op::Cos, s(0))],
            Tan => vec![g.unary(Op::Tan, s(0))],
            Tanh => vec![g.unary(Op::Tanh, s(0))],
            Abs => vec![g.unary(Op::Abs, s(0))],
            Atan2 => vec![g.atan2(s(0), s(1))],
            Min => vec![g.min(s(0), s(1))],
            Max => vec![g.max(s(0), s(1))],
            Clamp => {
                let lo = g.max(s(0), s(1));
                vec![g.min(lo, s(2))]
            }
            Select => a[1]
                .iter()
                .zip(&a[2])
                .map(|(x, y)| g.select(s(0), *x, *y))
                .collect(),
            Softplus => {
                // s * (max(z, 0) + log(1 + exp(-|z|))), z = x / s: no overflow.
                let z = g.div(s(0), s(1));
                let zero = g.constant(0.0);
                let one = g.constant(1.0);
                let pos = g.max(z, zero);
                let az = g.unary(Op::Abs, z);
                let naz = g.neg(az);
                let e = g.unary(Op::Exp, naz);
                let onepe = g.add(one, e);
                let l = g.unary(Op::Log, onepe);
                let inner = g.add(pos, l);
                vec![g.mul(s(1), inner)]
            }
            Smoothstep => {
                let num = g.sub(s(2), s(0));
                let den = g.sub(s(1), s(0));
                let t = g.div(num, den);
                let zero = g.constant(0.0);
                let one = g.constant(1.0);
                let lo = g.max(t, zero);
                let u = g.min(lo, one);
                let three = g.constant(3.0);
                let two = g.constant(2.0);
                let tu = g.mul(two, u);
                let k = g.sub(three, tu);
                let uu = g.mul(u, u);
                vec![g.mul(uu, k)]
            }
            Barrier => {
                let (d, dhat, kappa) = (s(0), s(1), s(2));
                let inside = g.cmp(Cmp::Lt, d, dhat);
                let diff = g.sub(d, dhat);
                let sq = g.mul(diff, diff);
                let ratio = g.div(d, dhat);
                let l = g.unary(Op::Log, ratio);
                let p = g.mul(sq, l);
                let kp = g.mul(kappa, p);
                let e = g.neg(kp);
                let zero = g.constant(0.0);
                vec![g.select(inside, e, zero)]
            }
            Penalty => {
                let zero = g.constant(0.0);
                let m = g.min(s(0), zero);
                let sq = g.mul(m, m);
                let half = g.constant(0.5);
                let hk = g.mul(half, s(1));
                vec![g.mul(hk, sq)]
            }
        }
    }
}

fn dim(s: Shape) -> usize {
    match s {
        Shape::Mat(n) => n as usize,
        _ => unreachable!("a matrix"),
    }
}

fn sum(g: &mut Graph, v: &[Id]) -> Id {
    v[1..].iter().fold(v[0], |acc, x| g.add(acc, *x))
}

fn dot(g: &mut Graph, a: &[Id], b: &[Id]) -> Id {
    let p: Vec<Id> = a.iter().zip(b).map(|(x, y)| g.mul(*x, *y)).collect();
    sum(g, &p)
}

fn norm(g: &mut Graph, a: &[Id]) -> Id {
    let d = dot(g, a, a);
    g.unary(Op::Sqrt, d)
}

/// Column-major `n x n` matrix times vector.
fn matvec(g: &mut Graph, n: usize, m: &[Id], v: &[Id]) -> Vec<Id> {
    (0..n)
        .map(|i| {
            let p: Vec<Id> = (0..n).map(|k| g.mul(m[k * n + i], v[k])).collect();
            sum(g, &p)
        })
        .collect()
}

fn quat_mul(g: &mut Graph, a: &[Id], b: &[Id]) -> Vec<Id> {
    // Hamilton product; each component is a signed sum of four products.
    let terms: [[(usize, usize, f64); 4]; 4] = [
        [(0, 0, 1.0), (1, 1, -1.0), (2, 2, -1.0), (3, 3, -1.0)],
        [(0, 1, 1.0), (1, 0, 1.0), (2, 3, 1.0), (3, 2, -1.0)],
        [(0, 2, 1.0), (1, 3, -1.0), (2, 0, 1.0), (3, 1, 1.0)],
        [(0, 3, 1.0), (1, 2, 1.0), (2, 1, -1.0), (3, 0, 1.0)],
    ];
    terms
        .iter()
        .map(|row| {
            let mut acc = None;
            for &(i, j, sign) in row {
                let p = g.mul(a[i], b[j]);
                acc = Some(match acc {
                    None if sign > 0.0 => p,
                    None => g.neg(p),
                    Some(s) if sign > 0.0 => g.add(s, p),
                    Some(s) => g.sub(s, p),
                });
            }
            acc.expect("four terms")
        })
        .collect()
}

fn det(g: &mut Graph, m: &[Id]) -> Id {
    if m.len() == 4 {
        let a = g.mul(m[0], m[3]);
        let b = g.mul(m[2], m[1]);
        return g.sub(a, b);
    }
    // Column-major: e(i, j) = m[j*3 + i]. Expansion along the first column.
    let e = |i: usize, j: usize| m[j * 3 + i];
    let minor = |g: &mut Graph, r0: usize, r1: usize| {
        let a = g.mul(e(r0, 1), e(r1, 2));
        let b = g.mul(e(r0, 2), e(r1, 1));
        g.sub(a, b)
    };
    let m0 = minor(g, 1, 2);
    let m1 = minor(g, 0, 2);
    let m2 = minor(g, 0, 1);
    let t0 = g.mul(e(0, 0), m0);
    let t1 = g.mul(e(1, 0), m1);
    let t2 = g.mul(e(2, 0), m2);
    let s = g.sub(t0, t1);
    g.add(s, t2)
}

fn inv(g: &mut Graph, m: &[Id]) -> Vec<Id> {
    let d = det(g, m);
    if m.len() == 4 {
        let n1 = g.neg(m[1]);
        let n2 = g.neg(m[2]);
        return [m[3], n1, n2, m[0]].iter().map(|x| g.div(*x, d)).collect();
    }
    let e = |i: usize, j: usize| m[j * 3 + i];
    let mut out = vec![0; 9];
    for i in 0..3 {
        for j in 0..3 {
            // inverse(i, j) = cofactor(j, i) / det
            let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
            let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
            let a = g.mul(e(r0, c0), e(r1, c1));
            let b = g.mul(e(r0, c1), e(r1, c0));
            let cof = g.sub(a, b);
            out[j * 3 + i] = g.div(cof, d);
        }
    }
    out
}

/// `a^b`: integer exponents as products, `0.5` as `sqrt`, otherwise `exp(b log a)`.
fn pow(g: &mut Graph, a: Id, b: Id) -> Id {
    match g.value(b) {
        Some(k) if k.fract() == 0.0 && k.abs() <= 64.0 => g.powi(a, k as i32),
        Some(0.5) => g.unary(Op::Sqrt, a),
        _ => {
            let l = g.unary(Op::Log, a);
            let p = g.mul(b, l);
            g.unary(Op::Exp, p)
        }
    }
}
