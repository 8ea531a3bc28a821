//! The expression evaluator: partial evaluation of AST expressions to
//! compile-time values where everything is known, and to typed runtime
//! [`Term`]s where DOFs, params or controls are involved. The same evaluator
//! serves constants, declarations, guards, objectives, and energy templates
//! (symbolically once per template, then per instance for `rest(...)`).

use super::value::*;
use super::{list, suggest, ArrayKind, Global, Resolver, MAX_EXPANSION, MAX_FN_DEPTH};
use crate::model::*;
// The model's operators, not the AST's: `eval` converts them where they leave the syntax.
use crate::model::{BinOp, UnOp};
use joule_grammar::ast::*;
use joule_grammar::Diagnostic;
use std::sync::Arc;

/// Call names handled by the evaluator itself (not [`Builtin`]s).
const SPECIAL_CALLS: &[&str] = &[
    "vec2",
    "vec3",
    "vec4",
    "mat2",
    "mat3",
    "quat",
    "axis_angle",
    "rest",
    "prev",
    "sphere",
    "box",
    "capsule",
    "cylinder",
    "grid",
    "tetgrid",
    "load",
    "len",
    "sum",
    "contact_points",
    "may_touch",
    "compound",
];

/// Collections every scene has: all bodies, all particles (declared so far).
const COLLECTIONS: &[&str] = &["bodies", "particles"];

/// Names of built-in constants.
const CONSTANTS: &[(&str, f64)] = &[("pi", std::f64::consts::PI)];

/// Whether `name` is reserved by a built-in function or constant.
pub fn is_builtin_name(name: &str) -> bool {
    Builtin::from_name(name).is_some()
        || SPECIAL_CALLS.contains(&name)
        || CONSTANTS.iter().any(|(n, _)| *n == name)
}

/// Type names accepted in `fn` and `energy` parameter lists.
pub const TYPE_NAMES: &[&str] = &[
    "particle", "body", "tet", "tri", "edge", "control", "scalar", "vec2", "vec3", "vec4", "mat2",
    "mat3", "quat", "int", "bool",
];

/// Template evaluation state: symbolic (building the body) or per instance (collecting constants).
pub struct TemplateCtx {
    /// Building terms (true) or evaluating one instance at its rest configuration.
    pub symbolic: bool,
    /// Instance mode: the concrete value bound to each argument.
    pub bound: Vec<Value>,
    /// Constant sites in evaluation order: the shape of each slot group (symbolic pass records).
    pub sites: Vec<Option<Shape>>,
    /// Instance mode: next site to consume.
    pub cursor: usize,
    /// Symbolic mode: names of scalar constant slots.
    pub const_names: Vec<String>,
    /// Instance mode: collected constant values.
    pub values: Vec<f64>,
}

/// Evaluation context.
pub struct Ctx {
    /// Local bindings, innermost last.
    pub locals: Vec<(String, Value)>,
    /// Concrete handles read their initial values (declarations, `rest`, instance mode).
    pub initial: bool,
    /// Inside `prev(...)`.
    pub prev: bool,
    /// Set while evaluating an energy template.
    pub template: Option<TemplateCtx>,
    /// `fn`s being inlined (outermost first), to reject recursion.
    fn_stack: Vec<usize>,
    next_local: u32,
}

impl Ctx {
    /// For constants and declarations: handles read initial values.
    pub fn declaration() -> Self {
        Ctx {
            locals: vec![],
            initial: true,
            prev: false,
            template: None,
            fn_stack: vec![],
            next_local: 0,
        }
    }

    /// For objectives: handles read the runtime state.
    pub fn runtime() -> Self {
        Ctx {
            initial: false,
            ..Ctx::declaration()
        }
    }

    /// For an energy template.
    pub fn template(t: TemplateCtx) -> Self {
        Ctx {
            initial: !t.symbolic,
            template: Some(t),
            ..Ctx::declaration()
        }
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// A compile-time constant as a term.
pub fn lit(t: Tensor) -> Arc<Term> {
    Term::rc(t.shape, TermKind::Lit(t))
}

/// A scalar input leaf.
pub fn input(i: Input) -> Arc<Term> {
    Term::rc(Shape::Scalar, TermKind::Input(i))
}

/// Packs scalar terms into a vector/matrix/quaternion, folding constants.
pub fn pack(shape: Shape, comps: Vec<Arc<Term>>) -> Arc<Term> {
    let known: Option<Vec<f64>> = comps
        .iter()
        .map(|c| match &c.kind {
            TermKind::Lit(t) => Some(t.x()),
            _ => None,
        })
        .collect();
    match known {
        Some(v) => lit(Tensor::new(shape, &v)),
        None => Term::rc(shape, TermKind::Pack(comps)),
    }
}

/// The `i`-th component of a term, looking through packs and literals.
pub fn component(t: &Arc<Term>, i: usize) -> Arc<Term> {
    match &t.kind {
        TermKind::Pack(c) => c[i].clone(),
        TermKind::Lit(v) => lit(Tensor::scalar(v.data[i])),
        _ if t.shape.size() == 1 => t.clone(),
        _ => Term::rc(Shape::Scalar, TermKind::Get(t.clone(), i as u8)),
    }
}

/// A value as a term, if it is numeric.
pub fn to_term(v: &Value) -> Option<Arc<Term>> {
    match v {
        Value::Runtime(t) => Some(t.clone()),
        Value::Control(c) => Some(input(Input::Control(*c))),
        Value::ArgControl(a) => Some(input(Input::ArgControl(*a))),
        other => other.tensor().map(lit),
    }
}

/// A 3x3 rotation matrix (column-major) from a unit quaternion `(w, x, y, z)`.
pub fn quat_to_mat(q: [f64; 4]) -> [f64; 9] {
    let [w, x, y, z] = q;
    [
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y + w * z),
        2.0 * (x * z - w * y),
        2.0 * (x * y - w * z),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z + w * x),
        2.0 * (x * z + w * y),
        2.0 * (y * z - w * x),
        1.0 - 2.0 * (x * x + y * y),
    ]
}

/// Whether a value fits a declared parameter type.
pub fn fits_type(v: &Value, ty: &str) -> bool {
    match ty {
        "particle" => matches!(
            v,
            Value::Particle(_)
                | Value::ArgHandle {
                    kind: HandleKind::Particle,
                    ..
                }
        ),
        "body" => matches!(
            v,
            Value::Body(_)
                | Value::ArgHandle {
                    kind: HandleKind::Body,
                    ..
                }
        ),
        "tet" | "tri" | "edge" => match v {
            Value::Element(k, _) | Value::ArgHandle { kind: k, .. } => k.name() == ty,
            _ => false,
        },
        "control" => matches!(v, Value::Control(_) | Value::ArgControl(_)),
        "int" => matches!(v, Value::Int(_)),
        "bool" => matches!(v, Value::Bool(_)),
        _ => match (v.shape(), ty) {
            (Some(Shape::Bool), _) => false,
            (Some(s), t) => s.name() == t,
            (None, _) => false,
        },
    }
}

impl Resolver<'_> {
    /// Evaluates an expression; errors are reported and yield [`Value::Poison`].
    pub(super) fn eval(&mut self, ctx: &mut Ctx, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Num {
                value,
                is_int,
                unit,
            } => self.number(*value, *is_int, unit.as_ref(), e.span),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Str(s) => Value::Str(Arc::from(s.as_str())),
            ExprKind::Name(n) => self.name(ctx, n, e.span),
            ExprKind::Unary(op, x) => {
                let v = self.eval(ctx, x);
                self.unary((*op).into(), v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.eval(ctx, a);
                let vb = self.eval(ctx, b);
                self.binary((*op).into(), va, vb, e.span, a.span, b.span)
            }
            ExprKind::Call { func, args } => self.call(ctx, func, args, e.span),
            ExprKind::Method { recv, name, args } => {
                let r = self.eval(ctx, recv);
                self.method(ctx, r, name, args, e.span)
            }
            ExprKind::Field { recv, name } => {
                let r = self.eval(ctx, recv);
                self.field(ctx, r, name, recv.span)
            }
            ExprKind::Index { recv, indices } => {
                let r = self.eval(ctx, recv);
                self.index(ctx, r, indices, recv.span, e.span)
            }
            ExprKind::Tuple(items) => {
                let v = items.iter().map(|x| self.eval(ctx, x)).collect();
                Value::Tuple(Arc::new(v))
            }
            ExprKind::List(items) => {
                let v = items.iter().map(|x| self.eval(ctx, x)).collect();
                list(v)
            }
            ExprKind::Sum { body, gens } => self.sum(ctx, body, gens, e.span),
            ExprKind::Block { lets, result } => self.block(ctx, lets, result),
        }
    }

    fn number(&mut self, value: f64, is_int: bool, unit: Option<&Ident>, span: Span) -> Value {
        match unit {
            None if is_int && value <= i64::MAX as f64 => Value::Int(value as i64),
            None if is_int => {
                self.err(
                    "joule::overflow",
                    "integer literal too large",
                    span,
                    "exceeds 2^63 - 1",
                );
                Value::Poison
            }
            None => Value::Num(Tensor::scalar(value)),
            Some(u) if u.name == "deg" => Value::Num(Tensor::scalar(value.to_radians())),
            Some(u) => {
                self.error(
                    Diagnostic::error(
                        "joule::unknown_unit",
                        format!("unknown unit `{}`", u.name),
                        u.span,
                        "not a unit Joule knows",
                    )
                    .with_help("numbers are in SI units without suffix; the only unit suffix is `deg` for angles (`30deg`)"),
                );
                Value::Poison
            }
        }
    }

    fn name(&mut self, ctx: &Ctx, n: &str, span: Span) -> Value {
        if let Some(v) = ctx.lookup(n) {
            return v.clone();
        }
        if let Some((_, c)) = CONSTANTS.iter().find(|(c, _)| *c == n) {
            return Value::Num(Tensor::scalar(*c));
        }
        match self.globals.get(n).map(|(g, _)| g.clone()) {
            Some(Global::Const(v)) => v,
            Some(Global::Param(p)) => Value::Runtime(input(Input::Param(p))),
            Some(Global::Control(c)) => Value::Control(c),
            Some(Global::Array(a)) => Value::Array(a),
            Some(Global::Particle(p)) => Value::Particle(p),
            Some(Global::Body(b)) => Value::Body(b),
            Some(Global::Mesh(m)) => Value::Mesh(m),
            Some(g @ (Global::Fn(_) | Global::Energy(_) | Global::Objective | Global::Policy)) => {
                let help = match g {
                    Global::Fn(_) => format!("call it: `{n}(...)`"),
                    Global::Energy(_) => format!(
                        "instances of an energy are items of their own: `{n}(...) for ...`"
                    ),
                    _ => "observations, objectives and policies are outputs; repeat the expression or move it into a `fn`".to_string(),
                };
                self.error(
                    Diagnostic::error(
                        "joule::wrong_kind",
                        format!("`{n}` is a {}, not a value", g.describe()),
                        span,
                        "used as a value here",
                    )
                    .with_help(help),
                );
                Value::Poison
            }
            None if COLLECTIONS.contains(&n) => {
                if n == "bodies" {
                    list(
                        (0..self.model.bodies.len() as u32)
                            .map(Value::Body)
                            .collect(),
                    )
                } else {
                    list(
                        (0..self.model.particles.len() as u32)
                            .map(Value::Particle)
                            .collect(),
                    )
                }
            }
            None => {
                let locals = ctx.locals.iter().map(|(n, _)| n.as_str());
                let builtins = Builtin::ALL.iter().map(|(n, _)| *n);
                let names: Vec<&str> = locals.chain(self.global_names()).chain(builtins).collect();
                let mut d = Diagnostic::error(
                    "joule::unknown_name",
                    format!("unknown name `{n}`"),
                    span,
                    "not defined",
                );
                if let Some(h) = suggest(n, names.into_iter()) {
                    d = d.with_help(h);
                } else {
                    d = d.with_help("names must be defined (`const`, `param`, `particle`, ...) before they are used in declarations");
                }
                self.error(d);
                Value::Poison
            }
        }
    }

    /// Checks that `v` is a compile-time truth value (guards, `if`).
    pub(super) fn eval_static_bool(&mut self, ctx: &mut Ctx, e: &Expr, what: &str) -> Option<bool> {
        match self.eval(ctx, e) {
            Value::Bool(b) => Some(b),
            Value::Poison => None,
            Value::Runtime(_) | Value::Control(_) | Value::ArgControl(_) => {
                self.error(
                    Diagnostic::error(
                        "joule::runtime_condition",
                        format!("{what} must be known at compile time"),
                        e.span,
                        "depends on runtime values",
                    )
                    .with_help("use `select(cond, a, b)` for a runtime choice (both sides are computed), or a smooth function such as `smoothstep`"),
                );
                None
            }
            v => {
                self.err(
                    "joule::type_mismatch",
                    format!("{what} must be a truth value, not {}", v.type_name()),
                    e.span,
                    "not a `bool`",
                );
                None
            }
        }
    }

    /// A compile-time integer (indices, range bounds, counts).
    pub(super) fn as_int(&mut self, v: &Value, span: Span, what: &str) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Num(t)
                if t.shape == Shape::Scalar && t.x().fract() == 0.0 && t.x().abs() < 9e15 =>
            {
                Some(t.x() as i64)
            }
            Value::Poison => None,
            Value::Runtime(_) | Value::Control(_) | Value::ArgControl(_) => {
                self.error(
                    Diagnostic::error(
                        "joule::runtime_index",
                        format!("{what} must be known at compile time"),
                        span,
                        "depends on runtime values",
                    )
                    .with_help("indices, counts and ranges are resolved by the compiler; only `const` values and generator variables can be used"),
                );
                None
            }
            v => {
                self.err(
                    "joule::type_mismatch",
                    format!("{what} must be an integer, not {}", describe_value(v)),
                    span,
                    "not an integer",
                );
                None
            }
        }
    }

    fn unary(&mut self, op: UnOp, v: Value, span: Span) -> Value {
        match (&v, op) {
            (Value::Poison, _) => Value::Poison,
            (Value::Int(i), UnOp::Neg) => Value::Int(-i),
            (Value::Bool(b), UnOp::Not) => Value::Bool(!b),
            _ => {
                let Some(shape) = v.shape() else {
                    return self.not_a_number(&v, span);
                };
                match unary_shape(op, shape) {
                    Err(m) => {
                        self.err("joule::type_mismatch", m, span, "wrong type");
                        Value::Poison
                    }
                    Ok(s) => match v.tensor() {
                        Some(t) => known(fold_unary(op, &t)),
                        None => Value::Runtime(Term::rc(
                            s,
                            TermKind::Unary(op, to_term(&v).expect("numeric")),
                        )),
                    },
                }
            }
        }
    }

    fn not_a_number(&mut self, v: &Value, span: Span) -> Value {
        let help = match v {
            Value::Particle(_) | Value::ArgHandle { .. } | Value::Body(_) => {
                "use its position `.x` (or `.v`, `.mass`)"
            }
            Value::Array(_) | Value::Mesh(_) => "index it to get one element, e.g. `name[0]`",
            _ => "arithmetic works on numbers, vectors and matrices",
        };
        self.error(
            Diagnostic::error(
                "joule::type_mismatch",
                format!("expected a number, found {}", describe_value(v)),
                span,
                "not a number",
            )
            .with_help(help),
        );
        Value::Poison
    }

    pub(super) fn binary(
        &mut self,
        op: BinOp,
        a: Value,
        b: Value,
        span: Span,
        aspan: Span,
        bspan: Span,
    ) -> Value {
        use BinOp::*;
        match (&a, &b) {
            (Value::Poison, _) | (_, Value::Poison) => return Value::Poison,
            (Value::Int(x), Value::Int(y)) => {
                let (x, y) = (*x, *y);
                let checked = match op {
                    Add => x.checked_add(y),
                    Sub => x.checked_sub(y),
                    Mul => x.checked_mul(y),
                    Rem if y == 0 => {
                        return self.division_by_zero("remainder by zero", bspan);
                    }
                    Rem => Some(x.rem_euclid(y)),
                    Div if y == 0 => {
                        return self.division_by_zero("division by zero", bspan);
                    }
                    Div => return known(Tensor::scalar(x as f64 / y as f64)),
                    Pow if y >= 0 => u32::try_from(y).ok().and_then(|e| x.checked_pow(e)),
                    Pow => return known(Tensor::scalar((x as f64).powf(y as f64))),
                    Lt => return Value::Bool(x < y),
                    Le => return Value::Bool(x <= y),
                    Gt => return Value::Bool(x > y),
                    Ge => return Value::Bool(x >= y),
                    Eq => return Value::Bool(x == y),
                    Ne => return Value::Bool(x != y),
                    And | Or => None,
                };
                return match checked {
                    Some(r) => Value::Int(r),
                    None if matches!(op, And | Or) => {
                        self.err(
                            "joule::type_mismatch",
                            format!("`{}` needs truth values, not integers", op.symbol()),
                            span,
                            "integers here",
                        );
                        Value::Poison
                    }
                    None => {
                        self.error(
                            Diagnostic::error(
                                "joule::overflow",
                                "integer overflow in a compile-time expression",
                                span,
                                "overflows 64 bits",
                            )
                            .with_help("integers are 64-bit; write a real number (`1e20`) for large values"),
                        );
                        Value::Poison
                    }
                };
            }
            (Value::Bool(x), Value::Bool(y)) if matches!(op, And | Or | Eq | Ne) => {
                return Value::Bool(match op {
                    And => *x && *y,
                    Or => *x || *y,
                    Eq => x == y,
                    _ => x != y,
                })
            }
            _ => {}
        }
        if op == Rem {
            self.error(
                Diagnostic::error(
                    "joule::type_mismatch",
                    format!(
                        "`%` needs compile-time integers, not {} and {}",
                        a.type_name(),
                        b.type_name()
                    ),
                    span,
                    "not integers",
                )
                .with_help("`%` is the integer remainder used in indices and guards"),
            );
            return Value::Poison;
        }
        let (Some(sa), Some(sb)) = (a.shape(), b.shape()) else {
            let (v, s) = if a.shape().is_none() {
                (&a, aspan)
            } else {
                (&b, bspan)
            };
            return self.not_a_number(v, s);
        };
        match binary_shape(op, sa, sb) {
            Err(m) => {
                let mut d = Diagnostic::error(
                    "joule::type_mismatch",
                    m,
                    aspan,
                    format!("this is {}", sa.name()),
                )
                .with_label(bspan, format!("this is {}", sb.name()));
                let scalar_and_vector = matches!(
                    (sa, sb),
                    (Shape::Scalar, Shape::Vec(_)) | (Shape::Vec(_), Shape::Scalar)
                );
                if op == Mul && matches!((sa, sb), (Shape::Vec(_), Shape::Vec(_))) {
                    d = d.with_help("use `dot(a, b)`, `cross(a, b)` or `outer(a, b)`");
                } else if scalar_and_vector && matches!(op, Add | Sub) {
                    d = d.with_help(
                        "take a component (`v.z`) or build a vector (`vec3(..)`) so both sides match",
                    );
                } else if sa == Shape::Bool || sb == Shape::Bool {
                    d = d.with_help(
                        "comparisons give truth values; choose numbers with `select(cond, a, b)`",
                    );
                }
                self.error(d);
                Value::Poison
            }
            Ok(shape) => match (a.tensor(), b.tensor()) {
                (Some(_), Some(y)) if op == Div && y.x() == 0.0 && !self.instance_eval => {
                    self.division_by_zero("division by zero", bspan)
                }
                (Some(x), Some(y)) => known(fold_binary(op, &x, &y, shape)),
                _ => Value::Runtime(Term::rc(
                    shape,
                    TermKind::Binary(
                        op,
                        to_term(&a).expect("numeric"),
                        to_term(&b).expect("numeric"),
                    ),
                )),
            },
        }
    }

    fn division_by_zero(&mut self, what: &str, divisor: Span) -> Value {
        self.error(
            Diagnostic::error("joule::division_by_zero", what, divisor, "this is 0")
                .with_help("the divisor is a compile-time value that evaluates to 0; check the constants it is built from"),
        );
        Value::Poison
    }

    fn block(&mut self, ctx: &mut Ctx, lets: &[Let], result: &Expr) -> Value {
        let depth = ctx.locals.len();
        let mut bound = vec![];
        for l in lets {
            let v = self.eval(ctx, &l.value);
            let v = match v {
                Value::Runtime(t) if !matches!(t.kind, TermKind::Input(_) | TermKind::Local(_)) => {
                    let id = ctx.next_local;
                    ctx.next_local += 1;
                    bound.push((id, l.name.name.clone(), t.clone()));
                    Value::Runtime(Term::rc(t.shape, TermKind::Local(id)))
                }
                v => v,
            };
            ctx.locals.push((l.name.name.clone(), v));
        }
        let mut out = self.eval(ctx, result);
        ctx.locals.truncate(depth);
        if let Value::Runtime(body) = &out {
            let mut body = body.clone();
            for (id, name, value) in bound.into_iter().rev() {
                body = Term::rc(
                    body.shape,
                    TermKind::Let {
                        local: id,
                        name,
                        value,
                        body: body.clone(),
                    },
                );
            }
            out = Value::Runtime(body);
        }
        out
    }

    /// Expands generators, calling `f` for each combination that passes the guard.
    pub(super) fn expand(
        &mut self,
        ctx: &mut Ctx,
        gens: &Generators,
        f: &mut dyn FnMut(&mut Self, &mut Ctx),
    ) {
        // Size check before expansion, where the ranges do not depend on each other.
        let before = self.diags.len();
        let mut estimate: u64 = 1;
        let mut exact = true;
        for g in &gens.gens {
            match self.gen_values(ctx, g) {
                Some(v) => estimate = estimate.saturating_mul(v.len() as u64),
                None => exact = false,
            }
        }
        self.diags.truncate(before);
        if exact && estimate > MAX_EXPANSION {
            self.too_large(gens.span, estimate);
            return;
        }
        let mut count = 0u64;
        let depth = ctx.locals.len();
        self.expand_from(ctx, gens, 0, &mut count, f);
        ctx.locals.truncate(depth);
    }

    fn too_large(&mut self, span: Span, n: u64) {
        self.error(
            Diagnostic::error(
                "joule::too_large",
                format!(
                    "this would expand to {n} instances, more than the limit of {MAX_EXPANSION}"
                ),
                span,
                "expands too far",
            )
            .with_help("check the ranges; a scene this large should be split or coarsened"),
        );
    }

    fn expand_from(
        &mut self,
        ctx: &mut Ctx,
        gens: &Generators,
        k: usize,
        count: &mut u64,
        f: &mut dyn FnMut(&mut Self, &mut Ctx),
    ) -> bool {
        if k == gens.gens.len() {
            *count += 1;
            if *count > MAX_EXPANSION {
                self.too_large(gens.span, *count);
                return false;
            }
            let pass = match &gens.guard {
                None => Some(true),
                Some(g) => self.eval_static_bool(ctx, g, "a guard"),
            };
            match pass {
                Some(true) => f(self, ctx),
                Some(false) => {}
                None => return false, // reported once; stop expanding
            }
            return true;
        }
        let g = &gens.gens[k];
        let Some(values) = self.gen_values(ctx, g) else {
            return false;
        };
        for v in values {
            ctx.locals.push((g.var.name.clone(), v));
            let go_on = self.expand_from(ctx, gens, k + 1, count, f);
            ctx.locals.pop();
            if !go_on {
                return false;
            }
        }
        true
    }

    fn gen_values(&mut self, ctx: &mut Ctx, g: &Generator) -> Option<Vec<Value>> {
        match &g.source {
            GenSource::Range(lo, hi) => {
                let l = self.eval(ctx, lo);
                let h = self.eval(ctx, hi);
                let l = self.as_int(&l, lo.span, "a range bound")?;
                let h = self.as_int(&h, hi.span, "a range bound")?;
                if (h - l) as u64 > MAX_EXPANSION && h > l {
                    self.too_large(g.span, (h - l) as u64);
                    return None;
                }
                Some((l..h).map(Value::Int).collect())
            }
            GenSource::Collection(c) => match self.eval(ctx, c) {
                Value::List(items) => Some(items.as_ref().clone()),
                Value::Array(a) => Some(
                    self.arrays[a as usize]
                        .slots
                        .iter()
                        .flatten()
                        .map(|id| self.array_element(a, *id))
                        .collect(),
                ),
                Value::Poison => None,
                v => {
                    self.error(
                        Diagnostic::error(
                            "joule::type_mismatch",
                            format!("cannot iterate over {}", describe_value(&v)),
                            c.span,
                            "not a collection",
                        )
                        .with_help("generators range over `lo..hi`, a mesh list (`block.tets`), an array name, or a list `[a, b]`"),
                    );
                    None
                }
            },
        }
    }

    fn array_element(&self, a: u32, id: u32) -> Value {
        match self.arrays[a as usize].kind {
            ArrayKind::Particle => Value::Particle(id),
            ArrayKind::Body => Value::Body(id),
            ArrayKind::Control => Value::Control(id),
        }
    }

    fn sum(&mut self, ctx: &mut Ctx, body: &Expr, gens: &Generators, span: Span) -> Value {
        let mut acc: Option<Value> = None;
        self.expand(ctx, gens, &mut |r, ctx| {
            let v = r.eval(ctx, body);
            acc = Some(match acc.take() {
                None => v,
                Some(a) => r.binary(BinOp::Add, a, v, span, span, body.span),
            });
        });
        acc.unwrap_or(Value::Int(0))
    }

    fn call(&mut self, ctx: &mut Ctx, func: &Ident, args: &[Arg], span: Span) -> Value {
        let name = func.name.as_str();
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            if !matches!(name, "grid" | "tetgrid") {
                self.error(
                    Diagnostic::error(
                        "joule::named_argument",
                        format!("`{name}` takes positional arguments"),
                        named.span,
                        "named argument",
                    )
                    .with_help("named arguments are for `settings` integrators, mesh generators and `mlp(...)`"),
                );
                return Value::Poison;
            }
        }
        match name {
            "rest" | "prev" => return self.rest_or_prev(ctx, name, args, span),
            "grid" | "tetgrid" | "load" => {
                self.error(
                    Diagnostic::error(
                        "joule::wrong_kind",
                        format!("`{name}(...)` makes a mesh; it can only appear in a `mesh` item"),
                        func.span,
                        "not in a mesh item",
                    )
                    .with_help(format!("write `mesh NAME = {name}(...)`")),
                );
                return Value::Poison;
            }
            _ => {}
        }
        if let Some((Global::Fn(id), _)) = self.globals.get(name) {
            let id = *id;
            return self.call_fn(ctx, id, args, span);
        }
        let vals: Vec<Value> = args.iter().map(|a| self.eval(ctx, &a.value)).collect();
        if vals.iter().any(|v| matches!(v, Value::Poison)) {
            return Value::Poison;
        }
        let spans: Vec<Span> = args.iter().map(|a| a.value.span).collect();
        match name {
            "vec2" | "vec3" | "vec4" | "quat" => {
                let n = if name == "quat" {
                    4
                } else {
                    name[3..].parse::<usize>().unwrap_or(3)
                };
                let shape = if name == "quat" {
                    Shape::Quat
                } else {
                    Shape::Vec(n as u8)
                };
                if !self.arity(func, n, vals.len(), span) {
                    return Value::Poison;
                }
                let mut comps = vec![];
                for (v, s) in vals.iter().zip(&spans) {
                    match v.shape() {
                        Some(Shape::Scalar) => comps.push(to_term(v).expect("numeric")),
                        _ => {
                            self.err(
                                "joule::type_mismatch",
                                format!("`{name}` takes scalars, not {}", v.type_name()),
                                *s,
                                "not a scalar",
                            );
                            return Value::Poison;
                        }
                    }
                }
                term_value(pack(shape, comps))
            }
            "mat2" | "mat3" => {
                let n = if name == "mat2" { 2 } else { 3 };
                if !self.arity(func, n, vals.len(), span) {
                    return Value::Poison;
                }
                let mut comps = vec![];
                for (v, s) in vals.iter().zip(&spans) {
                    if v.shape() != Some(Shape::Vec(n as u8)) {
                        self.error(
                            Diagnostic::error(
                                "joule::type_mismatch",
                                format!(
                                    "`{name}` takes {n} column vectors vec{n}, not {}",
                                    v.type_name()
                                ),
                                *s,
                                "not a column",
                            )
                            .with_help(format!(
                                "`{name}(c0, c1{})` builds a matrix from its columns",
                                if n == 3 { ", c2" } else { "" }
                            )),
                        );
                        return Value::Poison;
                    }
                    let t = to_term(v).expect("numeric");
                    comps.extend((0..n).map(|i| component(&t, i)));
                }
                term_value(pack(Shape::Mat(n as u8), comps))
            }
            "axis_angle" => {
                if !self.arity(func, 2, vals.len(), span) {
                    return Value::Poison;
                }
                match (vals[0].tensor(), vals[1].tensor()) {
                    (Some(ax), Some(an))
                        if ax.shape == Shape::Vec(3) && an.shape == Shape::Scalar =>
                    {
                        let n = ax.comps().iter().map(|x| x * x).sum::<f64>().sqrt();
                        if n == 0.0 {
                            self.err(
                                "joule::invalid_value",
                                "the rotation axis is the zero vector",
                                spans[0],
                                "zero axis",
                            );
                            return Value::Poison;
                        }
                        let (s, c) = (an.x() / 2.0).sin_cos();
                        known(Tensor::new(
                            Shape::Quat,
                            &[
                                c,
                                s * ax.data[0] / n,
                                s * ax.data[1] / n,
                                s * ax.data[2] / n,
                            ],
                        ))
                    }
                    _ => {
                        self.err(
                            "joule::type_mismatch",
                            "`axis_angle(axis, angle)` takes a compile-time vec3 and angle",
                            span,
                            "expected (vec3, scalar)",
                        );
                        Value::Poison
                    }
                }
            }
            "sphere" | "box" | "capsule" | "cylinder" => {
                let n = if matches!(name, "sphere" | "box") {
                    1
                } else {
                    2
                };
                if !self.arity(func, n, vals.len(), span) {
                    return Value::Poison;
                }
                let mut ts = vec![];
                for (v, s) in vals.iter().zip(&spans) {
                    match v.tensor() {
                        Some(t) => ts.push(t),
                        None => {
                            self.err(
                                "joule::type_mismatch",
                                format!("`{name}` needs compile-time sizes, not {}", v.type_name()),
                                *s,
                                "not known at compile time",
                            );
                            return Value::Poison;
                        }
                    }
                }
                let kind: &'static str = match name {
                    "sphere" => "sphere",
                    "box" => "box",
                    "capsule" => "capsule",
                    _ => "cylinder",
                };
                Value::Shape(Arc::new(ShapeValue {
                    kind,
                    args: ts,
                    parts: vec![],
                }))
            }
            "compound" => {
                let usage = "write `compound(shape, offset, shape, offset, ...)`, e.g. `compound(sphere(0.1), vec3(0, 0, 0.2), box(vec3(0.2, 0.2, 0.1)), vec3(0, 0, 0))`";
                if vals.is_empty() || !vals.len().is_multiple_of(2) {
                    self.error(
                        Diagnostic::error(
                            "joule::arity",
                            "`compound` takes pairs of a shape and its offset",
                            span,
                            "not shape-offset pairs",
                        )
                        .with_help(usage),
                    );
                    return Value::Poison;
                }
                let mut parts = vec![];
                for pair in vals.chunks(2).zip(spans.chunks(2)) {
                    match (&pair.0[0], pair.0[1].tensor()) {
                        (Value::Shape(s), Some(t)) if t.shape == Shape::Vec(3) => {
                            parts.push((s.clone(), [t.data[0], t.data[1], t.data[2]]))
                        }
                        _ => {
                            self.error(
                                Diagnostic::error(
                                    "joule::type_mismatch",
                                    "expected a shape and a compile-time vec3 offset",
                                    pair.1[0].to(pair.1[1]),
                                    "not a shape and an offset",
                                )
                                .with_help(usage),
                            );
                            return Value::Poison;
                        }
                    }
                }
                Value::Shape(Arc::new(ShapeValue {
                    kind: "compound",
                    args: vec![],
                    parts,
                }))
            }
            "may_touch" => {
                if !self.arity(func, 2, vals.len(), span) {
                    return Value::Poison;
                }
                match (&vals[0], &vals[1]) {
                    (Value::Body(a), Value::Body(b)) => Value::Bool(self.may_touch(*a, *b)),
                    _ => {
                        self.err(
                            "joule::type_mismatch",
                            "`may_touch` takes two bodies known at compile time",
                            span,
                            "not two bodies",
                        );
                        Value::Poison
                    }
                }
            }
            "contact_points" => {
                if !self.arity(func, 1, vals.len(), span) {
                    return Value::Poison;
                }
                match &vals[0] {
                    Value::Body(b) => contact_points(&self.model.bodies[*b as usize].shape),
                    v => {
                        self.error(
                            Diagnostic::error(
                                "joule::type_mismatch",
                                format!("`contact_points` takes a body, not {}", describe_value(v)),
                                spans[0],
                                "not a body known at compile time",
                            )
                            .with_help("use it in a generator of an item: `ground_point(A, c[0], c[1], dhat, kappa) for c in contact_points(A)`"),
                        );
                        Value::Poison
                    }
                }
            }
            "len" => {
                if !self.arity(func, 1, vals.len(), span) {
                    return Value::Poison;
                }
                match &vals[0] {
                    Value::List(l) | Value::Tuple(l) => Value::Int(l.len() as i64),
                    Value::Array(a) => {
                        Value::Int(self.arrays[*a as usize].slots.iter().flatten().count() as i64)
                    }
                    Value::Mesh(m) => Value::Int(self.meshes[*m as usize].particles.len() as i64),
                    v => {
                        self.err(
                            "joule::type_mismatch",
                            format!("`len` takes a list, array or mesh, not {}", v.type_name()),
                            spans[0],
                            "no length",
                        );
                        Value::Poison
                    }
                }
            }
            _ => match Builtin::from_name(name) {
                Some(b) => self.builtin(b, func, &vals, &spans, span),
                None => {
                    let fns = self
                        .globals
                        .iter()
                        .filter(|(_, (g, _))| matches!(g, Global::Fn(_)))
                        .map(|(n, _)| n.as_str());
                    let cands: Vec<&str> = fns
                        .chain(Builtin::ALL.iter().map(|(n, _)| *n))
                        .chain(SPECIAL_CALLS.iter().copied())
                        .collect();
                    let mut d = Diagnostic::error(
                        "joule::unknown_name",
                        format!("unknown function `{name}`"),
                        func.span,
                        "not a function",
                    );
                    let help = match self.globals.get(name) {
                        Some((Global::Energy(_), _)) => Some(format!("`{name}` is an energy; its instances are items of their own, not expressions")),
                        Some((g, _)) => Some(format!("`{name}` is a {}, not a function", g.describe())),
                        None => suggest(name, cands.into_iter()),
                    };
                    d = d.with_help(
                        help.unwrap_or_else(|| "define it with `fn NAME(args) = expr`".into()),
                    );
                    self.error(d);
                    Value::Poison
                }
            },
        }
    }

    fn arity(&mut self, func: &Ident, want: usize, got: usize, span: Span) -> bool {
        if want == got {
            return true;
        }
        self.error(
            Diagnostic::error(
                "joule::arity",
                format!(
                    "`{}` takes {want} argument{}, but {got} {} given",
                    func.name,
                    plural(want),
                    if got == 1 { "was" } else { "were" }
                ),
                span,
                format!("{got} argument{}", plural(got)),
            )
            .with_help(format!("pass exactly {want}")),
        );
        false
    }

    fn builtin(
        &mut self,
        b: Builtin,
        func: &Ident,
        vals: &[Value],
        spans: &[Span],
        span: Span,
    ) -> Value {
        if !self.arity(func, builtin_arity(b), vals.len(), span) {
            return Value::Poison;
        }
        let mut shapes = vec![];
        for (v, s) in vals.iter().zip(spans) {
            match v.shape() {
                Some(sh) => shapes.push(sh),
                None => return self.not_a_number(v, *s),
            }
        }
        let shape = match builtin_shape(b, &shapes) {
            Ok(s) => s,
            Err(m) => {
                let mut d =
                    Diagnostic::error("joule::type_mismatch", m, span, "wrong argument types");
                for (s, sh) in spans.iter().zip(&shapes) {
                    d = d.with_label(*s, sh.name());
                }
                if b == Builtin::Select {
                    d = d.with_help(
                        "`select(a < b, x, y)` picks `x` where the comparison holds, `y` elsewhere",
                    );
                }
                self.error(d);
                return Value::Poison;
            }
        };
        let known_args: Option<Vec<Tensor>> = vals.iter().map(Value::tensor).collect();
        if let Some(t) = known_args {
            return known(fold_builtin(b, &t, shape));
        }
        if b == Builtin::Select {
            if let Value::Bool(c) = vals[0] {
                return vals[if c { 1 } else { 2 }].clone();
            }
        }
        let args = vals.iter().map(|v| to_term(v).expect("numeric")).collect();
        Value::Runtime(Term::rc(shape, TermKind::Call(b, args)))
    }

    fn call_fn(&mut self, ctx: &mut Ctx, id: usize, args: &[Arg], span: Span) -> Value {
        let decl = self.fns[id].clone();
        let vals: Vec<Value> = args.iter().map(|a| self.eval(ctx, &a.value)).collect();
        let func = Ident {
            name: decl.name.clone(),
            span,
        };
        if !self.arity(&func, decl.params.len(), vals.len(), span) {
            return Value::Poison;
        }
        if vals.iter().any(|v| matches!(v, Value::Poison)) {
            return Value::Poison;
        }
        for ((p, v), a) in decl.params.iter().zip(&vals).zip(args) {
            if let Some(ty) = &p.ty {
                if !self.check_type_name(ty) {
                    return Value::Poison;
                }
                if !fits_type(v, &ty.name) {
                    self.error(
                        Diagnostic::error(
                            "joule::type_mismatch",
                            format!(
                                "argument `{}` of `{}` must be {}, but this is {}",
                                p.name.name,
                                decl.name,
                                ty.name,
                                describe_value(v)
                            ),
                            a.value.span,
                            format!("expected {}", ty.name),
                        )
                        .with_label(ty.span, "declared here"),
                    );
                    return Value::Poison;
                }
            }
        }
        if ctx.fn_stack.contains(&id) || ctx.fn_stack.len() >= MAX_FN_DEPTH {
            let chain: Vec<&str> = ctx
                .fn_stack
                .iter()
                .map(|f| self.fns[*f].name.as_str())
                .chain([decl.name.as_str()])
                .collect();
            let message = format!("`{}` calls itself ({})", decl.name, chain.join(" -> "));
            if self.reported_recursion.insert(id) {
                self.error(
                    Diagnostic::error("joule::recursion", message, span, "recursive call")
                        .with_help("functions are inlined at compile time, so they cannot be recursive; unroll with a generator: sum(... for k in 0..n)"),
                );
            }
            return Value::Poison;
        }
        let saved = std::mem::take(&mut ctx.locals);
        ctx.locals = decl
            .params
            .iter()
            .map(|p| p.name.name.clone())
            .zip(vals)
            .collect();
        ctx.fn_stack.push(id);
        let before = self.diags.len();
        let out = self.eval(ctx, &decl.body);
        ctx.fn_stack.pop();
        ctx.locals = saved;
        if self.diags.len() > before
            && self.diags[before..]
                .iter()
                .all(|d| d.code != "joule::recursion")
        {
            let d = self.diags[before].clone();
            self.diags[before] = d.with_label(span, format!("in this call of `{}`", decl.name));
        }
        out
    }

    /// Checks a type name in a parameter list.
    pub(super) fn check_type_name(&mut self, ty: &Ident) -> bool {
        if TYPE_NAMES.contains(&ty.name.as_str()) {
            return true;
        }
        let mut d = Diagnostic::error(
            "joule::unknown_type",
            format!("unknown type `{}`", ty.name),
            ty.span,
            "not a type",
        );
        d = d.with_help(
            suggest(&ty.name, TYPE_NAMES.iter().copied())
                .unwrap_or_else(|| format!("types are {}", TYPE_NAMES.join(", "))),
        );
        self.error(d);
        false
    }

    fn rest_or_prev(&mut self, ctx: &mut Ctx, name: &str, args: &[Arg], span: Span) -> Value {
        if args.len() != 1 {
            let func = Ident {
                name: name.into(),
                span,
            };
            self.arity(&func, 1, args.len(), span);
            return Value::Poison;
        }
        let arg = &args[0].value;
        if name == "prev" {
            let was = ctx.prev;
            ctx.prev = true;
            let v = self.eval(ctx, arg);
            ctx.prev = was;
            return v;
        }
        let Some(t) = ctx.template.as_ref() else {
            // Outside templates `rest` is simply the initial value.
            let was = ctx.initial;
            ctx.initial = true;
            let v = self.eval(ctx, arg);
            ctx.initial = was;
            return self.check_rest_value(v, arg.span);
        };
        if t.symbolic {
            let v = self.eval(ctx, arg);
            let v = self.check_rest_value(v, arg.span);
            match v {
                Value::Runtime(term) => {
                    let label = format!("rest({})", self.snippet(arg.span));
                    self.const_site(ctx, term.shape, &label)
                }
                other => {
                    ctx.template.as_mut().expect("template").sites.push(None);
                    other
                }
            }
        } else {
            let v = self.eval(ctx, arg);
            let t = ctx.template.as_mut().expect("template");
            let site = t.sites.get(t.cursor).copied().flatten();
            t.cursor += 1;
            match (site, v.tensor()) {
                (Some(_), Some(val)) => {
                    t.values.extend_from_slice(val.comps());
                    known(val)
                }
                (None, _) => v,
                (Some(_), None) => {
                    self.err(
                        "joule::rest_runtime",
                        "`rest(...)` could not be evaluated at the rest configuration",
                        arg.span,
                        "not a compile-time value",
                    );
                    Value::Poison
                }
            }
        }
    }

    /// A value inside `rest(...)` may not depend on params or controls.
    fn check_rest_value(&mut self, v: Value, span: Span) -> Value {
        let mut runtime_input = None;
        if let Value::Runtime(t) = &v {
            t.for_each_input(&mut |i| {
                if matches!(
                    i,
                    Input::Param(_) | Input::Control(_) | Input::ArgControl(_)
                ) {
                    runtime_input = Some(i);
                }
            });
        }
        if matches!(v, Value::Control(_) | Value::ArgControl(_)) {
            runtime_input = Some(Input::ArgControl(0));
        }
        match runtime_input {
            Some(i) => {
                let what = match i {
                    Input::Param(p) => {
                        format!("the parameter `{}`", self.model.params[p as usize].name)
                    }
                    _ => "a control".to_string(),
                };
                self.error(
                    Diagnostic::error("joule::rest_runtime", format!("`rest(...)` depends on {what}"), span, "changes at run time")
                        .with_help("`rest(...)` is computed once, by the compiler, from the initial configuration; move the runtime part outside: `k * rest(norm(a.x - b.x))`"),
                );
                Value::Poison
            }
            None => v,
        }
    }

    /// Symbolic mode: allocates constant slots of `shape` and returns their term.
    fn const_site(&mut self, ctx: &mut Ctx, shape: Shape, label: &str) -> Value {
        let t = ctx.template.as_mut().expect("template");
        t.sites.push(Some(shape));
        let first = t.const_names.len() as u32;
        let n = shape.size();
        for i in 0..n {
            t.const_names.push(if n == 1 {
                label.to_string()
            } else {
                format!("{label}[{i}]")
            });
        }
        let comps = (0..n as u32)
            .map(|i| input(Input::Const(first + i)))
            .collect::<Vec<_>>();
        term_value(if n == 1 {
            comps[0].clone()
        } else {
            pack(shape, comps)
        })
    }

    fn field(&mut self, ctx: &mut Ctx, recv: Value, name: &Ident, rspan: Span) -> Value {
        let f = name.name.as_str();
        match &recv {
            Value::Poison => Value::Poison,
            Value::Particle(_) | Value::Body(_) | Value::ArgHandle { .. } => {
                self.handle_field(ctx, &recv, name, rspan)
            }
            Value::Mesh(m) => {
                let mesh = &self.meshes[*m as usize];
                let pts = &mesh.particles;
                let elems = |kind: HandleKind, idx: &mut dyn Iterator<Item = Vec<u32>>| {
                    list(
                        idx.map(|e| {
                            let mut v = [0u32; 4];
                            for (k, i) in e.iter().enumerate() {
                                v[k] = pts[*i as usize];
                            }
                            Value::Element(kind, v)
                        })
                        .collect(),
                    )
                };
                match f {
                    "vertices" => list(pts.iter().map(|p| Value::Particle(*p)).collect()),
                    "surface" => list(
                        mesh.data
                            .surface
                            .iter()
                            .map(|i| Value::Particle(pts[*i as usize]))
                            .collect(),
                    ),
                    "edges" => elems(
                        HandleKind::Edge,
                        &mut mesh.data.edges.iter().map(|e| e.to_vec()),
                    ),
                    "tris" => elems(
                        HandleKind::Tri,
                        &mut mesh.data.tris.iter().map(|e| e.to_vec()),
                    ),
                    "tets" => elems(
                        HandleKind::Tet,
                        &mut mesh.data.tets.iter().map(|e| e.to_vec()),
                    ),
                    _ => self.unknown_field(
                        &recv,
                        name,
                        &["vertices", "edges", "tris", "tets", "surface"],
                    ),
                }
            }
            _ => match recv.shape() {
                Some(s @ (Shape::Vec(_) | Shape::Quat)) => {
                    let names: &[&str] = if s == Shape::Quat {
                        &["w", "x", "y", "z"]
                    } else {
                        &["x", "y", "z", "w"][..s.size()]
                    };
                    match names.iter().position(|n| *n == f) {
                        Some(i) => self.component_of(&recv, i),
                        None => self.unknown_field(&recv, name, names),
                    }
                }
                _ => self.unknown_field(&recv, name, &[]),
            },
        }
    }

    fn component_of(&mut self, v: &Value, i: usize) -> Value {
        match v.tensor() {
            Some(t) => known(Tensor::scalar(t.data[i])),
            None => term_value(component(&to_term(v).expect("numeric"), i)),
        }
    }

    fn unknown_field(&mut self, recv: &Value, name: &Ident, fields: &[&str]) -> Value {
        let mut d = Diagnostic::error(
            "joule::unknown_field",
            format!("{} has no field `{}`", describe_value(recv), name.name),
            name.span,
            "unknown field",
        );
        d = d.with_help(match suggest(&name.name, fields.iter().copied()) {
            Some(s) => s,
            None if fields.is_empty() => "this value has no fields".into(),
            None => format!(
                "its fields are {}",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        self.error(d);
        Value::Poison
    }

    /// Fields of particles and bodies: state reads, or initial values.
    fn handle_field(&mut self, ctx: &mut Ctx, h: &Value, name: &Ident, rspan: Span) -> Value {
        let f = name.name.as_str();
        let (pos, vel) = if ctx.prev {
            (State::PrevPos, State::PrevVel)
        } else {
            (State::Pos, State::Vel)
        };
        // Resolve a template argument to its concrete handle in instance mode.
        let (concrete, arg_at) = match h {
            Value::ArgHandle { arg, kind, offset } => match &ctx.template {
                Some(t) if !t.symbolic => {
                    let bound = &t.bound[*arg as usize];
                    let c = match (bound, kind) {
                        (Value::Element(_, v), HandleKind::Particle) => {
                            Value::Particle(v[*offset as usize / 3])
                        }
                        (b, _) => b.clone(),
                    };
                    (Some(c), None)
                }
                _ => (None, Some((*arg, *kind, *offset))),
            },
            other => (Some(other.clone()), None),
        };
        let is_arg = matches!(h, Value::ArgHandle { .. });
        let kind = match h {
            Value::Particle(_) => HandleKind::Particle,
            Value::Body(_) => HandleKind::Body,
            Value::ArgHandle { kind, .. } => *kind,
            _ => unreachable!(),
        };
        let fields: &[&str] = match kind {
            HandleKind::Particle => &["x", "v", "mass"],
            HandleKind::Body => &["x", "R", "v", "w", "mass"],
            _ => &[],
        };
        if !fields.contains(&f) {
            return self.unknown_field(h, name, fields);
        }
        if f == "mass" && is_arg {
            // A per-instance constant: a slot in symbolic mode, a value per instance.
            if let Some(t) = &ctx.template {
                if t.symbolic {
                    return self.const_site(
                        ctx,
                        Shape::Scalar,
                        &format!("{}.mass", self.snippet(rspan)),
                    );
                }
            }
        }
        let dofs = |base: DofAt, first: u16, n: u16, state: State| -> Vec<Arc<Term>> {
            (first..first + n)
                .map(|k| {
                    let at = match base {
                        DofAt::Arg { arg, offset } => DofAt::Arg {
                            arg,
                            offset: offset + k,
                        },
                        DofAt::Global(g) => DofAt::Global(g + k as u32),
                    };
                    input(Input::Dof { at, state })
                })
                .collect()
        };
        if let Some((arg, kind, offset)) = arg_at {
            let base = DofAt::Arg { arg, offset };
            return match (kind, f) {
                (_, "x") => term_value(pack(Shape::Vec(3), dofs(base, 0, 3, pos))),
                (_, "v") => term_value(pack(Shape::Vec(3), dofs(base, 0, 3, vel))),
                (HandleKind::Body, "R") => term_value(pack(Shape::Mat(3), dofs(base, 3, 9, pos))),
                (HandleKind::Body, "w") => body_omega(
                    pack(Shape::Mat(3), dofs(base, 3, 9, pos)),
                    pack(Shape::Mat(3), dofs(base, 3, 9, vel)),
                ),
                _ => unreachable!("fields checked above"),
            };
        }
        let concrete = concrete.expect("concrete handle");
        match concrete {
            Value::Particle(p) => {
                let part = &self.model.particles[p as usize];
                let value = match f {
                    "mass" => {
                        let m = part.mass;
                        if is_arg {
                            let t = ctx.template.as_mut().expect("instance mode");
                            t.cursor += 1;
                            t.values.push(m);
                        }
                        return known(Tensor::scalar(m));
                    }
                    "x" => part.x,
                    _ => part.v,
                };
                match (ctx.initial, part.dof) {
                    (true, _) => known(Tensor::new(Shape::Vec(3), &value)),
                    (false, None) => known(Tensor::new(
                        Shape::Vec(3),
                        if f == "x" { &part.x } else { &[0.0; 3] },
                    )),
                    (false, Some(d)) => term_value(pack(
                        Shape::Vec(3),
                        dofs(DofAt::Global(d), 0, 3, if f == "x" { pos } else { vel }),
                    )),
                }
            }
            Value::Body(b) => {
                let body = &self.model.bodies[b as usize];
                if f == "mass" {
                    let m = body.mass;
                    if is_arg {
                        let t = ctx.template.as_mut().expect("instance mode");
                        t.cursor += 1;
                        t.values.push(m);
                    }
                    return known(Tensor::scalar(m));
                }
                let r0 = quat_to_mat(body.rotation);
                match (ctx.initial, body.dof) {
                    (false, Some(d)) => match f {
                        "x" => term_value(pack(Shape::Vec(3), dofs(DofAt::Global(d), 0, 3, pos))),
                        "v" => term_value(pack(Shape::Vec(3), dofs(DofAt::Global(d), 0, 3, vel))),
                        "R" => term_value(pack(Shape::Mat(3), dofs(DofAt::Global(d), 3, 9, pos))),
                        _ => body_omega(
                            pack(Shape::Mat(3), dofs(DofAt::Global(d), 3, 9, pos)),
                            pack(Shape::Mat(3), dofs(DofAt::Global(d), 3, 9, vel)),
                        ),
                    },
                    (initial, _) => {
                        let moving = initial; // fixed bodies do not move
                        let zero = [0.0; 3];
                        match f {
                            "x" => known(Tensor::new(Shape::Vec(3), &body.x)),
                            "R" => known(Tensor::new(Shape::Mat(3), &r0)),
                            "v" => known(Tensor::new(
                                Shape::Vec(3),
                                if moving { &body.v } else { &zero },
                            )),
                            _ => known(Tensor::new(
                                Shape::Vec(3),
                                if moving { &body.w } else { &zero },
                            )),
                        }
                    }
                }
            }
            _ => unreachable!("handles are particles or bodies"),
        }
    }

    fn method(
        &mut self,
        ctx: &mut Ctx,
        recv: Value,
        name: &Ident,
        args: &[Arg],
        span: Span,
    ) -> Value {
        if matches!(recv, Value::Poison) {
            return Value::Poison;
        }
        let is_body = matches!(
            recv,
            Value::Body(_)
                | Value::ArgHandle {
                    kind: HandleKind::Body,
                    ..
                }
        );
        if !(is_body && name.name == "point") {
            let mut d = Diagnostic::error(
                "joule::unknown_field",
                format!("{} has no method `{}`", describe_value(&recv), name.name),
                name.span,
                "unknown method",
            );
            d = d.with_help(if is_body {
                "bodies have one method, `point(r)`: the world position of body-frame point `r`"
            } else {
                "only bodies have a method, `A.point(r)`"
            });
            self.error(d);
            return Value::Poison;
        }
        if !self.arity(name, 1, args.len(), span) {
            return Value::Poison;
        }
        let r = self.eval(ctx, &args[0].value);
        if r.shape() != Some(Shape::Vec(3)) {
            if !matches!(r, Value::Poison) {
                self.err(
                    "joule::type_mismatch",
                    format!(
                        "`point` takes a vec3 in the body frame, not {}",
                        r.type_name()
                    ),
                    args[0].value.span,
                    "not a vec3",
                );
            }
            return Value::Poison;
        }
        let mk = |s: &str| Ident {
            name: s.into(),
            span: name.span,
        };
        let x = self.handle_field(ctx, &recv, &mk("x"), span);
        let rot = self.handle_field(ctx, &recv, &mk("R"), span);
        let rr = self.binary(BinOp::Mul, rot, r, span, span, span);
        self.binary(BinOp::Add, x, rr, span, span, span)
    }

    fn index(
        &mut self,
        ctx: &mut Ctx,
        recv: Value,
        indices: &[Expr],
        rspan: Span,
        span: Span,
    ) -> Value {
        let mut idx = vec![];
        for e in indices {
            let v = self.eval(ctx, e);
            match self.as_int(&v, e.span, "an index") {
                Some(i) => idx.push(i),
                None => return Value::Poison,
            }
        }
        let one = |r: &mut Self, n: usize| -> Option<usize> {
            if idx.len() != 1 {
                r.err(
                    "joule::arity",
                    format!("expected 1 index, found {}", idx.len()),
                    span,
                    "wrong number of indices",
                );
                return None;
            }
            r.check_range(idx[0], 0, n as i64, indices[0].span, |r| {
                format!("`{}`", r.snippet(rspan))
            })
        };
        match &recv {
            Value::Poison => Value::Poison,
            Value::Array(a) => {
                let a = *a;
                // Borrowed, not cloned: an index into a 64 x 64 cloth is
                // evaluated for every instance that names one.
                let arr = &self.arrays[a as usize];
                if idx.len() != arr.dims.len() {
                    let arr = arr.clone();
                    self.error(
                        Diagnostic::error(
                            "joule::arity",
                            format!(
                                "`{}` has {} dimension{}, but {} ind{} given",
                                arr.name,
                                arr.dims.len(),
                                plural(arr.dims.len()),
                                idx.len(),
                                if idx.len() == 1 {
                                    "ex was"
                                } else {
                                    "ices were"
                                }
                            ),
                            span,
                            "wrong number of indices",
                        )
                        .with_help(format!(
                            "write `{}[{}]`",
                            arr.name,
                            (0..arr.dims.len())
                                .map(|k| ["i", "j", "k", "l"].get(k).unwrap_or(&"n").to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                    return Value::Poison;
                }
                let mut flat = 0usize;
                for (k, i) in idx.iter().enumerate() {
                    let (lo, hi) = self.arrays[a as usize].dims[k];
                    let what =
                        |r: &Self| format!("`{}` (dimension {})", r.arrays[a as usize].name, k + 1);
                    let Some(off) = self.check_range(*i, lo, hi, indices[k].span, what) else {
                        return Value::Poison;
                    };
                    flat = flat * (hi - lo) as usize + off;
                }
                match self.arrays[a as usize].slots[flat] {
                    Some(id) => self.array_element(a, id),
                    None => {
                        let arr = &self.arrays[a as usize];
                        let shown = idx
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.error(
                            Diagnostic::error(
                                "joule::index_out_of_range",
                                format!("`{}[{shown}]` does not exist", arr.name),
                                span,
                                "removed by the declaration's guard",
                            )
                            .with_help(
                                "the guard in the declaration of this array excluded this element",
                            ),
                        );
                        Value::Poison
                    }
                }
            }
            Value::Mesh(m) => {
                let n = self.meshes[*m as usize].particles.len();
                match one(self, n) {
                    Some(i) => Value::Particle(self.meshes[*m as usize].particles[i]),
                    None => Value::Poison,
                }
            }
            Value::Element(kind, v) => match one(self, kind.vertices()) {
                Some(i) => Value::Particle(v[i]),
                None => Value::Poison,
            },
            Value::ArgHandle { arg, kind, offset }
                if *kind != HandleKind::Particle && *kind != HandleKind::Body =>
            {
                match one(self, kind.vertices()) {
                    Some(i) => Value::ArgHandle {
                        arg: *arg,
                        kind: HandleKind::Particle,
                        offset: offset + 3 * i as u16,
                    },
                    None => Value::Poison,
                }
            }
            Value::List(l) | Value::Tuple(l) => match one(self, l.len()) {
                Some(i) => l[i].clone(),
                None => Value::Poison,
            },
            _ => match recv.shape() {
                Some(Shape::Vec(n)) | Some(Shape::Mat(n))
                    if idx.len() == 1 && matches!(recv.shape(), Some(Shape::Vec(_))) =>
                {
                    match one(self, n as usize) {
                        Some(i) => self.component_of(&recv, i),
                        None => Value::Poison,
                    }
                }
                Some(Shape::Mat(n)) if idx.len() == 2 => {
                    let what = |r: &Self| format!("`{}`", r.snippet(rspan));
                    let i = self.check_range(idx[0], 0, n as i64, indices[0].span, what);
                    let j = self.check_range(idx[1], 0, n as i64, indices[1].span, what);
                    match (i, j) {
                        (Some(i), Some(j)) => self.component_of(&recv, j * n as usize + i),
                        _ => Value::Poison,
                    }
                }
                _ => {
                    self.error(
                        Diagnostic::error("joule::type_mismatch", format!("cannot index {}", describe_value(&recv)), rspan, "not indexable")
                            .with_help("index arrays (`p[i, j]`), meshes (`m[k]`), elements (`t[0]`), vectors (`v[0]`) or matrices (`M[i, j]`)"),
                    );
                    Value::Poison
                }
            },
        }
    }

    /// `i` in `lo..hi`: the offset from `lo`, or an error naming the range.
    /// `what` names the indexed thing (built only for the error).
    fn check_range(
        &mut self,
        i: i64,
        lo: i64,
        hi: i64,
        span: Span,
        what: impl FnOnce(&Self) -> String,
    ) -> Option<usize> {
        if i >= lo && i < hi {
            return Some((i - lo) as usize);
        }
        let what = what(self);
        self.error(
            Diagnostic::error(
                "joule::index_out_of_range",
                format!("index {i} is out of range for {what}"),
                span,
                format!("valid indices are {lo}..{hi} (up to {})", hi - 1),
            )
            .with_help("ranges are half-open: `0..N` stops at `N - 1`"),
        );
        None
    }
}

impl Resolver<'_> {
    /// Whether two bodies need a contact energy, decided at compile time: each
    /// pair once (a < b), not both fixed, not joined by an earlier instance
    /// (joints), and not overlapping in the initial configuration (bounding
    /// spheres; parts that start interpenetrating are assembled on purpose).
    fn may_touch(&self, a: u32, b: u32) -> bool {
        let (ba, bb) = (
            &self.model.bodies[a as usize],
            &self.model.bodies[b as usize],
        );
        let fixed = |id: u32| self.fixed_bodies[id as usize];
        let d = (0..3)
            .map(|k| (ba.x[k] - bb.x[k]).powi(2))
            .sum::<f64>()
            .sqrt();
        a < b
            && !(fixed(a) && fixed(b))
            && !self.connected.contains(&(a, b))
            && d > ba.shape.bounding_radius() + bb.shape.bounding_radius()
    }
}

/// Points of a shape that can touch a plane, as `(r, radius)` pairs (body frame):
/// the sphere's centre, a box's 8 corners, a capsule's two end-sphere centres,
/// and 8 rim points on each end of a cylinder.
fn contact_points(shape: &BodyShape) -> Value {
    list(
        contact_point_list(shape)
            .into_iter()
            .map(|(r, radius)| {
                Value::Tuple(Arc::new(vec![
                    Value::Num(Tensor::new(Shape::Vec(3), &r)),
                    Value::Num(Tensor::scalar(radius)),
                ]))
            })
            .collect(),
    )
}

/// `(r, radius)` contact points of a shape (see [`contact_points`]).
fn contact_point_list(shape: &BodyShape) -> Vec<([f64; 3], f64)> {
    match *shape {
        BodyShape::Sphere { radius } => vec![([0.0; 3], radius)],
        BodyShape::Box { size } => (0..8)
            .map(|k| {
                let s = |bit: usize, l: f64| if k >> bit & 1 == 1 { l / 2.0 } else { -l / 2.0 };
                ([s(2, size[0]), s(1, size[1]), s(0, size[2])], 0.0)
            })
            .collect(),
        BodyShape::Capsule { radius, length } => {
            vec![
                ([0.0, 0.0, -length / 2.0], radius),
                ([0.0, 0.0, length / 2.0], radius),
            ]
        }
        BodyShape::Cylinder { radius, length } => [-1.0, 1.0]
            .iter()
            .flat_map(|end| {
                (0..8).map(move |k| {
                    let a = k as f64 * std::f64::consts::PI / 4.0;
                    (
                        [radius * a.cos(), radius * a.sin(), end * length / 2.0],
                        0.0,
                    )
                })
            })
            .collect(),
        BodyShape::Compound { ref parts } => parts
            .iter()
            .flat_map(|(part, c)| {
                contact_point_list(part)
                    .into_iter()
                    .map(move |(r, radius)| ([r[0] + c[0], r[1] + c[1], r[2] + c[2]], radius))
            })
            .collect(),
    }
}

/// Angular velocity of an affine body: the axial vector of the skew part of `Rdot R^T`.
fn body_omega(r: Arc<Term>, rdot: Arc<Term>) -> Value {
    let m3 = Shape::Mat(3);
    let rt = Term::rc(m3, TermKind::Call(Builtin::Transpose, vec![r]));
    let w = Term::rc(m3, TermKind::Binary(BinOp::Mul, rdot, rt));
    let e = |i: usize, j: usize| component(&w, j * 3 + i);
    let half = lit(Tensor::scalar(0.5));
    let axial = |a: Arc<Term>, b: Arc<Term>| {
        let d = Term::rc(Shape::Scalar, TermKind::Binary(BinOp::Sub, a, b));
        Term::rc(Shape::Scalar, TermKind::Binary(BinOp::Mul, half.clone(), d))
    };
    term_value(pack(
        Shape::Vec(3),
        vec![
            axial(e(2, 1), e(1, 2)),
            axial(e(0, 2), e(2, 0)),
            axial(e(1, 0), e(0, 1)),
        ],
    ))
}

/// A compile-time number as a value (`Bool` shape becomes `Value::Bool`).
pub fn known(t: Tensor) -> Value {
    match t.shape {
        Shape::Bool => Value::Bool(t.x() != 0.0),
        _ => Value::Num(t),
    }
}

/// A term as a value, unwrapping literals.
pub fn term_value(t: Arc<Term>) -> Value {
    match &t.kind {
        TermKind::Lit(v) => known(*v),
        _ => Value::Runtime(t),
    }
}

/// A value described for messages: "a particle", "a vec3", ...
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("the integer {i}"),
        Value::Num(t) if t.shape == Shape::Scalar => format!("the number {}", t.x()),
        Value::Array(_) => "a whole array".into(),
        v => {
            let n = v.type_name();
            let article = if n.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {n}")
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
