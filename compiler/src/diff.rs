//! Symbolic differentiation on the IR, producing IR: reverse mode (gradients
//! and vector-Jacobian products) and forward mode (tangents), combined as
//! forward-over-reverse for Hessian-vector products and dense Hessian blocks.
//!
//! Truth values (comparisons) have no derivative; `select` routes the
//! adjoint to the branch that was taken, so a NaN in the other branch never
//! leaks into a gradient.

use crate::ir::{Cmp, Graph, Id, Leaf, Op};

/// Reverse mode: the gradient of node `y` with respect to each leaf of `wrt`
/// (zero for leaves `y` does not depend on). Appends nodes to `g`.
pub fn gradient(g: &mut Graph, y: Id, wrt: &[Leaf]) -> Vec<Id> {
    let adj = adjoints(g, y);
    wrt.iter()
        .map(|l| {
            let node = g.nodes().iter().position(|op| *op == Op::Leaf(*l));
            match node.and_then(|n| adj.get(n).copied().flatten()) {
                Some(a) => a,
                None => g.constant(0.0),
            }
        })
        .collect()
}

/// Reverse mode: the adjoint of every node up to `y` (`None` where zero).
pub fn adjoints(g: &mut Graph, y: Id) -> Vec<Option<Id>> {
    let n = y as usize + 1;
    let mut adj: Vec<Option<Id>> = vec![None; n];
    adj[y as usize] = Some(g.constant(1.0));
    for id in (0..n).rev() {
        let Some(a) = adj[id] else { continue };
        let out = id as Id;
        let mut push = |g: &mut Graph, to: Id, v: Id| {
            let slot = &mut adj[to as usize];
            *slot = Some(match *slot {
                None => v,
                Some(p) => g.add(p, v),
            });
        };
        match g.op(out) {
            Op::Const(_) | Op::Leaf(_) | Op::Cmp(..) | Op::And(..) | Op::Or(..) | Op::Not(_) => {}
            Op::Neg(x) => {
                let v = g.neg(a);
                push(g, x, v);
            }
            Op::Add(x, y) => {
                push(g, x, a);
                push(g, y, a);
            }
            Op::Sub(x, y) => {
                push(g, x, a);
                let v = g.neg(a);
                push(g, y, v);
            }
            Op::Mul(x, y) => {
                let vx = g.mul(a, y);
                push(g, x, vx);
                let vy = g.mul(a, x);
                push(g, y, vy);
            }
            Op::Div(x, y) => {
                let vx = g.div(a, y);
                push(g, x, vx);
                let q = g.mul(vx, out);
                let vy = g.neg(q);
                push(g, y, vy);
            }
            Op::Select(c, x, y) => {
                let zero = g.constant(0.0);
                let vx = g.select(c, a, zero);
                push(g, x, vx);
                let vy = g.select(c, zero, a);
                push(g, y, vy);
            }
            op => {
                let x = op.args()[0];
                let d = local_derivative(g, op, out);
                let v = g.mul(a, d);
                push(g, x, v);
                if let Op::Atan2(_, xx) = op {
                    // d/dx atan2(y, x) = -y / (x^2 + y^2)
                    let d2 = atan2_dx(g, op);
                    let v2 = g.mul(a, d2);
                    push(g, xx, v2);
                }
            }
        }
    }
    adj
}

/// d out / d (first argument) for the elementary functions, as IR.
fn local_derivative(g: &mut Graph, op: Op, out: Id) -> Id {
    match op {
        Op::Sqrt(_) => {
            let two = g.constant(2.0);
            let d = g.mul(two, out);
            let one = g.constant(1.0);
            g.div(one, d)
        }
        Op::Exp(_) => out,
        Op::Log(x) => {
            let one = g.constant(1.0);
            g.div(one, x)
        }
        Op::Sin(x) => g.unary(Op::Cos, x),
        Op::Cos(x) => {
            let s = g.unary(Op::Sin, x);
            g.neg(s)
        }
        Op::Tan(_) => {
            let one = g.constant(1.0);
            let sq = g.mul(out, out);
            g.add(one, sq)
        }
        Op::Tanh(_) => {
            let one = g.constant(1.0);
            let sq = g.mul(out, out);
            g.sub(one, sq)
        }
        Op::Abs(x) => {
            let zero = g.constant(0.0);
            let neg = g.cmp(Cmp::Lt, x, zero);
            let one = g.constant(1.0);
            let m1 = g.constant(-1.0);
            g.select(neg, m1, one)
        }
        Op::Powi(x, k) => {
            let p = g.powi(x, k - 1);
            let kk = g.constant(k as f64);
            g.mul(kk, p)
        }
        Op::Atan2(y, x) => {
            // d/dy atan2(y, x) = x / (x^2 + y^2)
            let r = radius2(g, y, x);
            g.div(x, r)
        }
        _ => unreachable!("no local derivative rule for {op:?}"),
    }
}

fn radius2(g: &mut Graph, y: Id, x: Id) -> Id {
    let xx = g.mul(x, x);
    let yy = g.mul(y, y);
    g.add(xx, yy)
}

fn atan2_dx(g: &mut Graph, op: Op) -> Id {
    let Op::Atan2(y, x) = op else { unreachable!() };
    let r = radius2(g, y, x);
    let q = g.div(y, r);
    g.neg(q)
}

/// Forward mode: the tangents of `outputs`, given the tangent of each leaf
/// (`seed` returns `None` for zero). Appends nodes to `g`.
pub fn tangents(
    g: &mut Graph,
    outputs: &[Id],
    seed: impl Fn(&mut Graph, Leaf) -> Option<Id>,
) -> Vec<Id> {
    let n = outputs.iter().map(|o| *o as usize + 1).max().unwrap_or(0);
    let mut tan: Vec<Option<Id>> = vec![None; n];
    for id in 0..n {
        let out = id as Id;
        let t = |i: Id| tan[i as usize];
        tan[id] = match g.op(out) {
            Op::Const(_) | Op::Cmp(..) | Op::And(..) | Op::Or(..) | Op::Not(_) => None,
            Op::Leaf(l) => seed(g, l),
            Op::Neg(x) => t(x).map(|tx| g.neg(tx)),
            Op::Add(x, y) => sum(g, t(x), t(y)),
            Op::Sub(x, y) => match (t(x), t(y)) {
                (tx, Some(ty)) => {
                    let n = g.neg(ty);
                    sum(g, tx, Some(n))
                }
                (tx, None) => tx,
            },
            Op::Mul(x, y) => {
                let a = t(x).map(|tx| g.mul(tx, y));
                let b = t(y).map(|ty| g.mul(x, ty));
                sum(g, a, b)
            }
            Op::Div(x, y) => {
                // (tx - out * ty) / y
                let b = t(y).map(|ty| {
                    let p = g.mul(out, ty);
                    g.neg(p)
                });
                sum(g, t(x), b).map(|num| g.div(num, y))
            }
            Op::Select(c, x, y) => match (t(x), t(y)) {
                (None, None) => None,
                (tx, ty) => {
                    let zero = g.constant(0.0);
                    Some(g.select(c, tx.unwrap_or(zero), ty.unwrap_or(zero)))
                }
            },
            Op::Atan2(y, x) => {
                // (x ty - y tx) / (x^2 + y^2)
                let a = t(y).map(|ty| g.mul(x, ty));
                let b = t(x).map(|tx| {
                    let p = g.mul(y, tx);
                    g.neg(p)
                });
                sum(g, a, b).map(|num| {
                    let r = radius2(g, y, x);
                    g.div(num, r)
                })
            }
            op => t(op.args()[0]).map(|tx| {
                let d = local_derivative(g, op, out);
                g.mul(d, tx)
            }),
        };
    }
    outputs
        .iter()
        .map(|o| match tan[*o as usize] {
            Some(t) => t,
            None => g.constant(0.0),
        })
        .collect()
}

fn sum(g: &mut Graph, a: Option<Id>, b: Option<Id>) -> Option<Id> {
    match (a, b) {
        (Some(x), Some(y)) => Some(g.add(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::eval_op;

    /// Evaluates node `out` with params 0 and 1 set to `x`, `y`.
    fn eval(g: &Graph, out: Id, x: f64, y: f64) -> f64 {
        let mut v = vec![0.0; g.len()];
        for (i, op) in g.nodes().iter().enumerate() {
            v[i] = match op {
                Op::Leaf(Leaf::Param(0)) => x,
                Op::Leaf(Leaf::Param(1)) => y,
                Op::Leaf(_) => 0.0,
                op => eval_op(*op, &v),
            };
        }
        v[out as usize]
    }

    type Build = fn(&mut Graph, Id, Id) -> Id;

    /// Every differentiation rule, each against central differences, at points
    /// away from kinks: reverse mode (both partials) and forward mode (a tangent).
    #[test]
    fn every_rule_matches_finite_differences() {
        let cases: Vec<(&str, Build)> = vec![
            ("neg", |g, x, _| g.neg(x)),
            ("add", |g, x, y| g.add(x, y)),
            ("sub", |g, x, y| g.sub(x, y)),
            ("mul", |g, x, y| g.mul(x, y)),
            ("square", |g, x, _| g.mul(x, x)),
            ("div", |g, x, y| g.div(x, y)),
            ("sqrt", |g, x, _| g.unary(Op::Sqrt, x)),
            ("exp", |g, x, _| g.unary(Op::Exp, x)),
            ("log", |g, x, _| g.unary(Op::Log, x)),
            ("sin", |g, x, _| g.unary(Op::Sin, x)),
            ("cos", |g, x, _| g.unary(Op::Cos, x)),
            ("tan", |g, x, _| g.unary(Op::Tan, x)),
            ("tanh", |g, x, _| g.unary(Op::Tanh, x)),
            ("abs", |g, x, _| g.unary(Op::Abs, x)),
            ("atan2", |g, x, y| g.atan2(x, y)),
            ("powi", |g, x, _| g.powi(x, 5)),
            ("powi_negative", |g, x, _| g.powi(x, -3)),
            ("min", |g, x, y| g.min(x, y)),
            ("max", |g, x, y| g.max(x, y)),
            ("select", |g, x, y| {
                let c = g.cmp(Cmp::Lt, x, y);
                let a = g.mul(x, y);
                let b = g.unary(Op::Sin, y);
                g.select(c, a, b)
            }),
            ("composite", |g, x, y| {
                let s = g.unary(Op::Sin, x);
                let p = g.mul(s, y);
                let e = g.unary(Op::Exp, p);
                g.div(e, y)
            }),
        ];
        for (name, build) in cases {
            for &(x0, y0) in &[(0.7, 1.3), (1.9, 0.4), (0.3, -1.1)] {
                let mut g = Graph::new();
                let x = g.leaf(Leaf::Param(0));
                let y = g.leaf(Leaf::Param(1));
                let f = build(&mut g, x, y);
                let grad = gradient(&mut g, f, &[Leaf::Param(0), Leaf::Param(1)]);
                let (tx, ty) = (0.6, -0.8);
                let tan = tangents(&mut g, &[f], |g, l| match l {
                    Leaf::Param(0) => Some(g.constant(tx)),
                    Leaf::Param(1) => Some(g.constant(ty)),
                    _ => None,
                })[0];
                let h = 1e-6;
                let fdx = (eval(&g, f, x0 + h, y0) - eval(&g, f, x0 - h, y0)) / (2.0 * h);
                let fdy = (eval(&g, f, x0, y0 + h) - eval(&g, f, x0, y0 - h)) / (2.0 * h);
                let fdt = (eval(&g, f, x0 + h * tx, y0 + h * ty)
                    - eval(&g, f, x0 - h * tx, y0 - h * ty))
                    / (2.0 * h);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * (1.0 + b.abs());
                let (gx, gy, t) = (
                    eval(&g, grad[0], x0, y0),
                    eval(&g, grad[1], x0, y0),
                    eval(&g, tan, x0, y0),
                );
                assert!(close(gx, fdx), "{name} d/dx at ({x0}, {y0}): {gx} vs {fdx}");
                assert!(close(gy, fdy), "{name} d/dy at ({x0}, {y0}): {gy} vs {fdy}");
                assert!(
                    close(t, fdt),
                    "{name} tangent at ({x0}, {y0}): {t} vs {fdt}"
                );
            }
        }
    }

    #[test]
    fn hessian_vector_product_is_forward_over_reverse() {
        // f = x^2 y + sin(x y): H = [[2y - y^2 s, 2x + c - x y s], [2x + c - x y s, -x^2 s]]
        let mut g = Graph::new();
        let x = g.leaf(Leaf::Param(0));
        let y = g.leaf(Leaf::Param(1));
        let xx = g.mul(x, x);
        let a = g.mul(xx, y);
        let xy = g.mul(x, y);
        let s = g.unary(Op::Sin, xy);
        let f = g.add(a, s);
        let grad = gradient(&mut g, f, &[Leaf::Param(0), Leaf::Param(1)]);
        let (wx, wy) = (0.3, 0.9);
        let hv = tangents(&mut g, &grad, |g, l| match l {
            Leaf::Param(0) => Some(g.constant(wx)),
            Leaf::Param(1) => Some(g.constant(wy)),
            _ => None,
        });
        let (x0, y0) = (0.8f64, 1.7f64);
        let (sn, cs) = (x0 * y0).sin_cos();
        let hxx = 2.0 * y0 - y0 * y0 * sn;
        let hxy = 2.0 * x0 + cs - x0 * y0 * sn;
        let hyy = -x0 * x0 * sn;
        let want = [hxx * wx + hxy * wy, hxy * wx + hyy * wy];
        for k in 0..2 {
            let got = eval(&g, hv[k], x0, y0);
            assert!((got - want[k]).abs() < 1e-12, "{got} vs {}", want[k]);
        }
    }
}
