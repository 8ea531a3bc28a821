//! Values of the resolver: compile-time data, handles, and runtime terms; the
//! shape rules of operators and built-ins, and their compile-time folding.

use crate::model::{BinOp, Builtin, Shape, Tensor, Term, UnOp};
use std::sync::Arc;

/// Kinds of handles to DOFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleKind {
    /// A point mass (3 DOFs).
    Particle,
    /// A rigid body (12 DOFs).
    Body,
    /// A tetrahedron (4 particles).
    Tet,
    /// A triangle (3 particles).
    Tri,
    /// An edge (2 particles).
    Edge,
}

impl HandleKind {
    /// The type name in the language.
    pub fn name(self) -> &'static str {
        match self {
            HandleKind::Particle => "particle",
            HandleKind::Body => "body",
            HandleKind::Tet => "tet",
            HandleKind::Tri => "tri",
            HandleKind::Edge => "edge",
        }
    }

    /// DOFs per handle.
    pub fn width(self) -> u16 {
        match self {
            HandleKind::Particle => 3,
            HandleKind::Body => 12,
            HandleKind::Tet => 12,
            HandleKind::Tri => 9,
            HandleKind::Edge => 6,
        }
    }

    /// Vertices of an element kind.
    pub fn vertices(self) -> usize {
        match self {
            HandleKind::Tet => 4,
            HandleKind::Tri => 3,
            HandleKind::Edge => 2,
            HandleKind::Particle | HandleKind::Body => 1,
        }
    }
}

/// A body shape before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeValue {
    /// Constructor name.
    pub kind: &'static str,
    /// Its numeric arguments.
    pub args: Vec<Tensor>,
    /// For `compound`: the parts, their body-frame offsets and unit rotations.
    pub parts: Vec<(Arc<ShapeValue>, [f64; 3], [f64; 4])>,
}

/// What an expression evaluates to in the resolver.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Compile-time integer.
    Int(i64),
    /// Compile-time truth value.
    Bool(bool),
    /// Compile-time number, vector, matrix or quaternion.
    Num(Tensor),
    /// A string.
    Str(Arc<str>),
    /// `(a, b, c)`.
    Tuple(Arc<Vec<Value>>),
    /// `[a, b]`, mesh element lists, particle lists.
    List(Arc<Vec<Value>>),
    /// A concrete particle.
    Particle(u32),
    /// A concrete rigid body.
    Body(u32),
    /// A concrete mesh element (vertices are particles).
    Element(HandleKind, [u32; 4]),
    /// A template argument handle (symbolic), `offset` DOFs into it.
    ArgHandle {
        arg: u16,
        kind: HandleKind,
        offset: u16,
    },
    /// A declared array of particles/bodies/controls (index to get an element).
    Array(u32),
    /// A mesh (index, or `.vertices` etc.).
    Mesh(u32),
    /// A scalar control component.
    Control(u32),
    /// A template's control argument (symbolic).
    ArgControl(u16),
    /// A body shape constructor result.
    Shape(Arc<ShapeValue>),
    /// A runtime expression.
    Runtime(Arc<Term>),
    /// Placeholder after an error, so one mistake is reported once.
    Poison,
}

impl Value {
    /// A human-readable type name for messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::Int(_) => "int".into(),
            Value::Bool(_) => "bool".into(),
            Value::Num(t) => t.shape.name(),
            Value::Str(_) => "string".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Particle(_) => "particle".into(),
            Value::Body(_) => "body".into(),
            Value::Element(k, _) | Value::ArgHandle { kind: k, .. } => k.name().into(),
            Value::Array(_) => "array".into(),
            Value::Mesh(_) => "mesh".into(),
            Value::Control(_) | Value::ArgControl(_) => "control".into(),
            Value::Shape(_) => "shape".into(),
            Value::Runtime(t) => format!("runtime {}", t.shape.name()),
            Value::Poison => "error".into(),
        }
    }

    /// The numeric shape, if the value is a number (compile-time or runtime).
    pub fn shape(&self) -> Option<Shape> {
        match self {
            Value::Int(_) => Some(Shape::Scalar),
            Value::Num(t) => Some(t.shape),
            Value::Runtime(t) => Some(t.shape),
            Value::Control(_) | Value::ArgControl(_) => Some(Shape::Scalar),
            Value::Bool(_) => Some(Shape::Bool),
            _ => None,
        }
    }

    /// A compile-time tensor view of `Int`/`Num`/`Bool`.
    pub fn tensor(&self) -> Option<Tensor> {
        match self {
            Value::Int(i) => Some(Tensor::scalar(*i as f64)),
            Value::Num(t) => Some(*t),
            Value::Bool(b) => Some(Tensor::new(Shape::Bool, &[*b as u8 as f64])),
            _ => None,
        }
    }
}

/// The result shape of a binary operator, or why it does not apply.
pub fn binary_shape(op: BinOp, l: Shape, r: Shape) -> Result<Shape, String> {
    use Shape::*;
    let bad = || {
        Err(format!(
            "`{}` does not apply to {} and {}",
            op.symbol(),
            l.name(),
            r.name()
        ))
    };
    match op {
        BinOp::Add | BinOp::Sub => {
            if l == r && l != Bool {
                Ok(l)
            } else {
                bad()
            }
        }
        BinOp::Mul => match (l, r) {
            (Scalar, x) | (x, Scalar) if x != Bool => Ok(x),
            (Mat(n), Vec(m)) if n == m => Ok(Vec(n)),
            (Mat(n), Mat(m)) if n == m => Ok(Mat(n)),
            (Quat, Quat) => Ok(Quat),
            (Vec(_), Vec(_)) => Err(format!(
                "`*` of two vectors is ambiguous ({} * {})",
                l.name(),
                r.name()
            )),
            _ => bad(),
        },
        BinOp::Div => match (l, r) {
            (x, Scalar) if x != Bool => Ok(x),
            _ => bad(),
        },
        BinOp::Pow => match (l, r) {
            (Scalar, Scalar) => Ok(Scalar),
            _ => bad(),
        },
        BinOp::Rem => bad(),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match (l, r) {
            (Scalar, Scalar) => Ok(Bool),
            _ => bad(),
        },
        BinOp::Eq | BinOp::Ne => {
            if l == r {
                Ok(Bool)
            } else {
                bad()
            }
        }
        BinOp::And | BinOp::Or => match (l, r) {
            (Bool, Bool) => Ok(Bool),
            _ => bad(),
        },
    }
}

/// The result shape of a unary operator.
pub fn unary_shape(op: UnOp, x: Shape) -> Result<Shape, String> {
    match (op, x) {
        (UnOp::Neg, s) if s != Shape::Bool => Ok(s),
        (UnOp::Not, Shape::Bool) => Ok(Shape::Bool),
        (UnOp::Neg, _) => Err("cannot negate a truth value; use `!`".into()),
        (UnOp::Not, s) => Err(format!("`!` needs a truth value, not {}", s.name())),
    }
}

/// Folds a binary operator over compile-time tensors (shapes already checked).
pub fn fold_binary(op: BinOp, a: &Tensor, b: &Tensor, shape: Shape) -> Tensor {
    let (x, y) = (a.comps(), b.comps());
    let truth = |c: bool| Tensor::new(Shape::Bool, &[c as u8 as f64]);
    match op {
        BinOp::Add => Tensor::new(shape, &zip(x, y, |p, q| p + q)),
        BinOp::Sub => Tensor::new(shape, &zip(x, y, |p, q| p - q)),
        BinOp::Mul => mul(a, b, shape),
        BinOp::Div => Tensor::new(shape, &x.iter().map(|p| p / y[0]).collect::<Vec<_>>()),
        BinOp::Pow => Tensor::scalar(x[0].powf(y[0])),
        BinOp::Rem => Tensor::scalar(x[0] % y[0]),
        BinOp::Lt => truth(x[0] < y[0]),
        BinOp::Le => truth(x[0] <= y[0]),
        BinOp::Gt => truth(x[0] > y[0]),
        BinOp::Ge => truth(x[0] >= y[0]),
        BinOp::Eq => truth(x == y),
        BinOp::Ne => truth(x != y),
        BinOp::And => truth(x[0] != 0.0 && y[0] != 0.0),
        BinOp::Or => truth(x[0] != 0.0 || y[0] != 0.0),
    }
}

fn zip(x: &[f64], y: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    x.iter().zip(y).map(|(p, q)| f(*p, *q)).collect()
}

fn mul(a: &Tensor, b: &Tensor, shape: Shape) -> Tensor {
    use Shape::{Mat, Quat, Scalar};
    match (a.shape, b.shape) {
        (Scalar, _) => Tensor::new(
            shape,
            &b.comps().iter().map(|q| a.x() * q).collect::<Vec<_>>(),
        ),
        (_, Scalar) => Tensor::new(
            shape,
            &a.comps().iter().map(|p| p * b.x()).collect::<Vec<_>>(),
        ),
        (Mat(n), Shape::Vec(_)) => {
            let n = n as usize;
            let out: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|k| a.data[k * n + i] * b.data[k]).sum())
                .collect();
            Tensor::new(shape, &out)
        }
        (Mat(n), Mat(_)) => {
            let n = n as usize;
            let mut out = vec![0.0; n * n];
            for j in 0..n {
                for i in 0..n {
                    out[j * n + i] = (0..n).map(|k| a.data[k * n + i] * b.data[j * n + k]).sum();
                }
            }
            Tensor::new(shape, &out)
        }
        (Quat, Quat) => {
            let [w1, x1, y1, z1] = [a.data[0], a.data[1], a.data[2], a.data[3]];
            let [w2, x2, y2, z2] = [b.data[0], b.data[1], b.data[2], b.data[3]];
            Tensor::new(
                Quat,
                &[
                    w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                    w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                    w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                    w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                ],
            )
        }
        _ => unreachable!("shape rules admit no other product"),
    }
}

/// Negation or logical not of a compile-time tensor.
pub fn fold_unary(op: UnOp, a: &Tensor) -> Tensor {
    match op {
        UnOp::Neg => Tensor::new(a.shape, &a.comps().iter().map(|p| -p).collect::<Vec<_>>()),
        UnOp::Not => Tensor::new(Shape::Bool, &[(a.x() == 0.0) as u8 as f64]),
    }
}

/// Arity of a built-in.
pub fn builtin_arity(b: Builtin) -> usize {
    use Builtin::*;
    match b {
        Norm | Normalize | Det | Inv | Transpose | Trace | Sqrt | Exp | Log | Sin | Cos | Tan
        | Tanh | Abs => 1,
        Dot | Cross | Outer | Atan2 | Min | Max | Softplus | Penalty => 2,
        Clamp | Select | Smoothstep | Barrier => 3,
    }
}

/// The result shape of a built-in, or why the arguments do not fit.
pub fn builtin_shape(b: Builtin, args: &[Shape]) -> Result<Shape, String> {
    use Builtin::*;
    use Shape::{Bool, Mat, Quat, Scalar, Vec};
    let all_scalar = args.iter().all(|s| *s == Scalar);
    let sig = || {
        args.iter()
            .map(|s| s.name())
            .collect::<std::vec::Vec<_>>()
            .join(", ")
    };
    let bad = |want: &str| {
        Err(format!(
            "`{}` takes {want}, but was given ({})",
            b.name(),
            sig()
        ))
    };
    match b {
        Norm => match args[0] {
            Vec(_) => Ok(Scalar),
            _ => bad("a vector"),
        },
        Normalize => match args[0] {
            Vec(n) => Ok(Vec(n)),
            Quat => Ok(Quat),
            _ => bad("a vector or quaternion"),
        },
        Dot => match (args[0], args[1]) {
            (Vec(n), Vec(m)) if n == m => Ok(Scalar),
            _ => bad("two vectors of the same length"),
        },
        Cross => match (args[0], args[1]) {
            (Vec(3), Vec(3)) => Ok(Vec(3)),
            _ => bad("two vec3"),
        },
        Outer => match (args[0], args[1]) {
            (Vec(n), Vec(m)) if n == m && n <= 3 => Ok(Mat(n)),
            _ => bad("two vectors of the same length (2 or 3)"),
        },
        Det | Trace => match args[0] {
            Mat(_) => Ok(Scalar),
            _ => bad("a matrix"),
        },
        Inv | Transpose => match args[0] {
            Mat(n) => Ok(Mat(n)),
            _ => bad("a matrix"),
        },
        Sqrt | Exp | Log | Sin | Cos | Tan | Tanh | Abs | Atan2 | Min | Max | Clamp | Softplus
        | Smoothstep | Barrier | Penalty => {
            if all_scalar {
                Ok(Scalar)
            } else {
                bad("scalars")
            }
        }
        Select => match args {
            [Bool, x, y] if x == y && *x != Bool => Ok(*x),
            [Bool, _, _] => bad("a condition and two values of the same shape"),
            _ => bad("a condition (a comparison) and two values"),
        },
    }
}

/// Folds a built-in over compile-time tensors (shapes already checked).
pub fn fold_builtin(b: Builtin, a: &[Tensor], shape: Shape) -> Tensor {
    use Builtin::*;
    let s = |i: usize| a[i].x();
    let v = |i: usize| a[i].comps();
    let t = Tensor::scalar;
    match b {
        Norm => t(v(0).iter().map(|x| x * x).sum::<f64>().sqrt()),
        Normalize => {
            let n = v(0).iter().map(|x| x * x).sum::<f64>().sqrt();
            Tensor::new(shape, &v(0).iter().map(|x| x / n).collect::<Vec<_>>())
        }
        Dot => t(v(0).iter().zip(v(1)).map(|(x, y)| x * y).sum()),
        Cross => {
            let (p, q) = (v(0), v(1));
            Tensor::new(
                shape,
                &crate::math::cross([p[0], p[1], p[2]], [q[0], q[1], q[2]]),
            )
        }
        Outer => {
            let (p, q) = (v(0), v(1));
            let n = p.len();
            let mut out = vec![0.0; n * n];
            for j in 0..n {
                for i in 0..n {
                    out[j * n + i] = p[i] * q[j];
                }
            }
            Tensor::new(shape, &out)
        }
        Det => t(det(&a[0])),
        Inv => inv(&a[0]),
        Transpose => {
            let n = match shape {
                Shape::Mat(n) => n as usize,
                _ => unreachable!(),
            };
            let mut out = vec![0.0; n * n];
            for j in 0..n {
                for i in 0..n {
                    out[j * n + i] = a[0].data[i * n + j];
                }
            }
            Tensor::new(shape, &out)
        }
        Trace => {
            let n = (a[0].shape.size() as f64).sqrt() as usize;
            t((0..n).map(|i| a[0].data[i * n + i]).sum())
        }
        Sqrt => t(s(0).sqrt()),
        Exp => t(s(0).exp()),
        Log => t(s(0).ln()),
        Sin => t(s(0).sin()),
        Cos => t(s(0).cos()),
        Tan => t(s(0).tan()),
        Tanh => t(s(0).tanh()),
        Atan2 => t(s(0).atan2(s(1))),
        Abs => t(s(0).abs()),
        Min => t(s(0).min(s(1))),
        Max => t(s(0).max(s(1))),
        Clamp => t(s(0).max(s(1)).min(s(2))),
        Select => {
            if s(0) != 0.0 {
                a[1]
            } else {
                a[2]
            }
        }
        Softplus => t(softplus(s(0), s(1))),
        Smoothstep => t(smoothstep(s(0), s(1), s(2))),
        Barrier => t(barrier(s(0), s(1), s(2))),
        Penalty => t(0.5 * s(1) * s(0).min(0.0).powi(2)),
    }
}

/// `s * log(1 + exp(x / s))`, computed without overflow.
pub fn softplus(x: f64, s: f64) -> f64 {
    let z = x / s;
    s * (z.max(0.0) + (-z.abs()).exp().ln_1p())
}

/// Hermite step from `e0` to `e1` (GLSL `smoothstep`).
pub fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let u = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    u * u * (3.0 - 2.0 * u)
}

/// The clamped log barrier of IPC: `-kappa (d - dhat)^2 log(d / dhat)` for `d < dhat`, else 0.
pub fn barrier(d: f64, dhat: f64, kappa: f64) -> f64 {
    if d < dhat {
        -kappa * (d - dhat).powi(2) * (d / dhat).ln()
    } else {
        0.0
    }
}

fn det(m: &Tensor) -> f64 {
    let d = &m.data;
    match m.shape {
        Shape::Mat(2) => d[0] * d[3] - d[2] * d[1],
        _ => {
            d[0] * (d[4] * d[8] - d[7] * d[5]) - d[3] * (d[1] * d[8] - d[7] * d[2])
                + d[6] * (d[1] * d[5] - d[4] * d[2])
        }
    }
}

fn inv(m: &Tensor) -> Tensor {
    let d = &m.data;
    let det = det(m);
    match m.shape {
        Shape::Mat(2) => Tensor::new(m.shape, &[d[3] / det, -d[1] / det, -d[2] / det, d[0] / det]),
        _ => {
            // Column-major: element (i, j) at j*3 + i. Inverse = adjugate / det.
            let e = |i: usize, j: usize| d[j * 3 + i];
            let mut out = [0.0; 9];
            for i in 0..3 {
                for j in 0..3 {
                    let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
                    let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
                    let cof = e(r0, c0) * e(r1, c1) - e(r0, c1) * e(r1, c0);
                    out[j * 3 + i] = cof / det;
                }
            }
            Tensor::new(m.shape, &out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m3(c: [f64; 9]) -> Tensor {
        Tensor::new(Shape::Mat(3), &c)
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let a = m3([2.0, 1.0, 0.5, -1.0, 3.0, 0.2, 0.3, 0.7, 4.0]);
        let ai = fold_builtin(Builtin::Inv, &[a], Shape::Mat(3));
        let p = fold_binary(BinOp::Mul, &a, &ai, Shape::Mat(3));
        for j in 0..3 {
            for i in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p.data[j * 3 + i] - want).abs() < 1e-12, "{p:?}");
            }
        }
    }

    #[test]
    fn det_is_triple_product_of_columns() {
        let a = m3([1.0, 2.0, 3.0, 0.0, 1.0, 4.0, 5.0, 6.0, 0.0]);
        // columns c0=(1,2,3), c1=(0,1,4), c2=(5,6,0): c0 . (c1 x c2)
        let c1xc2 = [
            1.0 * 0.0 - 4.0 * 6.0,
            4.0 * 5.0 - 0.0 * 0.0,
            0.0 * 6.0 - 1.0 * 5.0,
        ];
        let want = 1.0 * c1xc2[0] + 2.0 * c1xc2[1] + 3.0 * c1xc2[2];
        assert_eq!(fold_builtin(Builtin::Det, &[a], Shape::Scalar).x(), want);
    }

    #[test]
    fn softplus_is_stable_and_smooth() {
        assert!((softplus(0.0, 1.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(softplus(1000.0, 1.0), 1000.0);
        assert!(softplus(-1000.0, 1.0) >= 0.0);
    }

    #[test]
    fn shape_rules() {
        use Shape::*;
        assert_eq!(binary_shape(BinOp::Mul, Mat(3), Vec(3)), Ok(Vec(3)));
        assert!(binary_shape(BinOp::Add, Scalar, Vec(3)).is_err());
        assert!(binary_shape(BinOp::Mul, Vec(3), Vec(3)).is_err());
        assert_eq!(
            builtin_shape(Builtin::Select, &[Bool, Vec(3), Vec(3)]),
            Ok(Vec(3))
        );
        assert!(builtin_shape(Builtin::Cross, &[Vec(2), Vec(2)]).is_err());
    }
}
