//! The expression evaluator: partial evaluation of AST expressions to
//! compile-time values where everything is known, and to typed runtime
//! [`Term`]s where DOFs, params or controls are involved. The same evaluator
//! serves constants, declarations, guards, objectives, and energy templates
//! (symbolically once per template, then per instance for `rest(...)`).
//!
//! This module is the evaluation core: the evaluation contexts ([`Ctx`],
//! [`TemplateCtx`]), term and value helpers, and the evaluation of
//! expressions (numbers, names, operators, `let` blocks, compile-time truth
//! values and integers). The rest is split by job:
//! - [`call`]: calls of built-in functions, constructors, shapes and `fn`s;
//! - [`rest`]: `rest(...)`, `prev(...)` and the constant slots of templates;
//! - [`access`]: fields (`a.x`, `a.R`, `m.tets`, `v.z`), the `point` method
//!   and indexing (`a[i, j]`);
//! - [`generators`]: `for` generators of items and `sum(... for ...)`.

mod access;
mod call;
mod generators;
mod rest;

use super::value::*;
use super::{
    list, suggest, Global, Resolver, MAX_EVAL_STEPS, MAX_EXPANSION, MAX_TERM_DEPTH, MAX_TERM_SIZE,
};
use crate::model::*;
// The model's operators, not the AST's: `eval` converts them where they leave the syntax.
use crate::model::{BinOp, UnOp};
use crate::names::{COLLECTIONS, CONSTANTS};
use joule_grammar::ast::*;
use joule_grammar::Diagnostic;
use std::sync::Arc;

pub use call::fits_type;

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
    /// Inside `held(...)` (and not inside a `prev(...)` within it).
    pub held: bool,
    /// Set while evaluating an energy template.
    pub template: Option<TemplateCtx>,
    /// Inside a template's `rest(...)` whose value reads params: its
    /// arguments' state reads are per-instance constants (their initial
    /// values), the params stay inputs.
    pub rest_sites: bool,
    /// In a `reset` item: `uniform(..)` and `normal(..)` draw.
    pub draws: bool,
    /// `fn`s being inlined (outermost first), to reject recursion.
    fn_stack: Vec<usize>,
    next_local: u32,
    /// `let` locals whose value reads the current state (`prev` of such a
    /// local would silently read the current state: refused).
    current_lets: Vec<u32>,
}

/// Whether a term reads the current (not the previous) state, directly or
/// through one of the `lets` (ids of locals that do).
fn reads_current(t: &Term, lets: &[u32]) -> bool {
    match &t.kind {
        TermKind::Lit(_) => false,
        TermKind::Input(Input::Dof { state, .. }) => matches!(state, State::Pos | State::Vel),
        TermKind::Input(_) => false,
        TermKind::Local(id) => lets.contains(id),
        TermKind::Pack(parts) | TermKind::Call(_, parts) => {
            parts.iter().any(|p| reads_current(p, lets))
        }
        TermKind::Get(x, _) | TermKind::Unary(_, x) => reads_current(x, lets),
        TermKind::Binary(_, a, b) => reads_current(a, lets) || reads_current(b, lets),
        TermKind::Let { value, body, .. } => {
            reads_current(value, lets) || reads_current(body, lets)
        }
    }
}

impl Ctx {
    /// For constants and declarations: handles read initial values.
    pub fn declaration() -> Self {
        Ctx {
            locals: vec![],
            initial: true,
            prev: false,
            held: false,
            template: None,
            rest_sites: false,
            draws: false,
            fn_stack: vec![],
            next_local: 0,
            current_lets: vec![],
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

    pub(super) fn lookup(&self, name: &str) -> Option<&Value> {
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

/// `a op b` of two terms, of shape `shape` (checked by the caller).
pub fn binary(op: BinOp, shape: Shape, a: Arc<Term>, b: Arc<Term>) -> Arc<Term> {
    Term::rc(shape, TermKind::Binary(op, a, b))
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

/// What one item has spent of its limits (see [`MAX_EVAL_STEPS`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Expressions evaluated.
    steps: u64,
    /// Product of the sizes of the generators being expanded.
    nesting: u64,
    /// A limit was reported: the rest of the item evaluates to poison.
    spent: bool,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            steps: 0,
            nesting: 1,
            spent: false,
        }
    }
}

impl Resolver<'_> {
    /// Evaluates an expression; errors are reported and yield [`Value::Poison`].
    /// Checks the item's budget first, and the size of a runtime result.
    pub(super) fn eval(&mut self, ctx: &mut Ctx, e: &Expr) -> Value {
        if self.budget.spent {
            return Value::Poison;
        }
        self.budget.steps += 1;
        if self.budget.steps > MAX_EVAL_STEPS {
            self.budget.spent = true;
            self.error(
                Diagnostic::error(
                    "joule::too_large",
                    format!("this item takes more than {MAX_EVAL_STEPS} evaluation steps to expand"),
                    e.span,
                    "still expanding here",
                )
                .with_help("a `fn` that calls another more than once, or `sum`s inside `sum`s, multiply the work; bind shared values with `let` and check the ranges"),
            );
            return Value::Poison;
        }
        let v = self.eval_unchecked(ctx, e);
        match v {
            Value::Runtime(t) if self.term_too_large(&t, e.span) => Value::Poison,
            v => v,
        }
    }

    /// Whether a runtime term is over [`MAX_TERM_SIZE`] or [`MAX_TERM_DEPTH`];
    /// if so reports it at `span` and spends the item's budget.
    pub(super) fn term_too_large(&mut self, t: &Term, span: Span) -> bool {
        let (what, n, limit) = if t.size() > MAX_TERM_SIZE {
            ("terms", t.size(), MAX_TERM_SIZE)
        } else if t.depth() > MAX_TERM_DEPTH {
            (
                "levels of nesting",
                u64::from(t.depth()),
                u64::from(MAX_TERM_DEPTH),
            )
        } else {
            return false;
        };
        self.budget.spent = true;
        self.error(
            Diagnostic::error(
                "joule::too_large",
                format!("this expression has at least {n} {what} after inlining `fn`s and expanding `sum`s, more than the limit of {limit}"),
                span,
                "expands too far",
            )
            .with_help("a runtime `sum` of many terms, or a `fn` that calls another more than once, grows the expression; sum fewer terms (or use energy instances: `name(...) for i in ...`) and bind shared values with `let`"),
        );
        true
    }

    fn eval_unchecked(&mut self, ctx: &mut Ctx, e: &Expr) -> Value {
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
            None => self.finite(Tensor::scalar(value), span),
            Some(u) if u.name == "deg" => self.finite(Tensor::scalar(value.to_radians()), span),
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
            if let (true, Value::Runtime(t)) = (ctx.prev || ctx.held, v) {
                if reads_current(t, &ctx.current_lets) {
                    let (f, reads) = if ctx.prev {
                        ("prev", "the start of the step")
                    } else {
                        ("held", "the step's solution")
                    };
                    self.error(
                        Diagnostic::error(
                            "joule::prev_of_local",
                            format!("`{f}` of `{n}`, which holds the current state"),
                            span,
                            format!("evaluated before `{f}`: this reads the current state"),
                        )
                        .with_help(format!(
                            "`{f}(...)` reads {reads} where it wraps the state reads themselves: write `{f}(...)` around the expression `{n}` is bound to (e.g. `let {n}_t = {f}(A.point(r).z)`)"
                        )),
                    );
                    return Value::Poison;
                }
            }
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
                        format!("`{n}` is {}, not a value", g.describe()),
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
                self.error(
                    Diagnostic::error(
                        "joule::type_mismatch",
                        format!("{what} must be an integer, not {}", describe_value(v)),
                        span,
                        "not an integer",
                    )
                    .with_help("indices and range bounds count: write a whole number (`0..3`, `a[2]`); `/` gives a fraction, so halve an integer as `(N - N % 2) / 2`"),
                );
                None
            }
        }
    }

    fn unary(&mut self, op: UnOp, v: Value, span: Span) -> Value {
        match (&v, op) {
            (Value::Poison, _) => Value::Poison,
            (Value::Int(i), UnOp::Neg) => match i.checked_neg() {
                Some(n) => Value::Int(n),
                None => self.overflow(span),
            },
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
                        Some(t) => self.finite(fold_unary(op, &t), span),
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
                    Rem => x.checked_rem_euclid(y),
                    Div if y == 0 => {
                        return self.division_by_zero("division by zero", bspan);
                    }
                    Div => return self.finite(Tensor::scalar(x as f64 / y as f64), span),
                    Pow if y >= 0 => u32::try_from(y).ok().and_then(|e| x.checked_pow(e)),
                    Pow => return self.finite(Tensor::scalar((x as f64).powf(y as f64)), span),
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
                    None => self.overflow(span),
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
                (Some(x), Some(y)) => self.finite(fold_binary(op, &x, &y, shape), span),
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

    /// A value folded at compile time, or an error at `span` where it is not
    /// finite (NaN or infinite). At an instance's rest configuration
    /// (`instance_eval`) a non-finite value is checked where it is used.
    pub(super) fn finite(&mut self, t: Tensor, span: Span) -> Value {
        if self.instance_eval || t.comps().iter().all(|x| x.is_finite()) {
            return known(t);
        }
        let (what, label) = if t.comps().iter().any(|x| x.is_nan()) {
            ("NaN (not a number)", "evaluates to NaN")
        } else {
            ("infinite", "evaluates to an infinity")
        };
        self.error(
            Diagnostic::error(
                "joule::non_finite",
                format!("this compile-time value is {what}"),
                span,
                label,
            )
            .with_help("compile-time values must be finite: `log` and `sqrt` need positive arguments, powers and `exp` must stay below about 1e308; check the constants it is built from"),
        );
        Value::Poison
    }

    /// An integer result outside 64 bits (`+ - * ^ %`, negation, `abs`).
    pub(super) fn overflow(&mut self, span: Span) -> Value {
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
                    if reads_current(&t, &ctx.current_lets) {
                        ctx.current_lets.push(id);
                    }
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
