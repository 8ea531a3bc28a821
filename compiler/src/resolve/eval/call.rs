//! Calls: vector, matrix and quaternion constructors, `axis_angle`, shapes
//! (`sphere`, `box`, `capsule`, `cylinder`, `compound`), `len`, the body
//! queries `may_touch` and `contact_points`, the built-in functions
//! ([`Builtin`]s, folded when their arguments are known), and inlined `fn`s
//! with their parameter types.

use super::super::MAX_FN_DEPTH;
use super::*;
use crate::names::{SPECIAL_CALLS, TYPE_NAMES};

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
    pub(super) fn call(&mut self, ctx: &mut Ctx, func: &Ident, args: &[Arg], span: Span) -> Value {
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
            "rest" | "prev" | "held" => return self.rest_or_prev(ctx, name, args, span),
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
            "uniform" | "normal" => self.draw(ctx, func, &vals, &spans, span),
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
                let angle = match &vals[1] {
                    Value::Runtime(t) if t.shape == Shape::Scalar => Some(None),
                    v => v
                        .tensor()
                        .filter(|t| t.shape == Shape::Scalar)
                        .map(|t| Some(t.x())),
                };
                match (vals[0].tensor(), angle) {
                    (Some(ax), Some(an)) if ax.shape == Shape::Vec(3) => {
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
                        let axis = [ax.data[0] / n, ax.data[1] / n, ax.data[2] / n];
                        let Some(an) = an else {
                            // A runtime angle (a parameter's): cos and sin
                            // of its half at run time.
                            let angle = to_term(&vals[1]).expect("a runtime scalar");
                            let half =
                                binary(BinOp::Mul, Shape::Scalar, angle, lit(Tensor::scalar(0.5)));
                            let f =
                                |b| Term::rc(Shape::Scalar, TermKind::Call(b, vec![half.clone()]));
                            let (c, s) = (f(Builtin::Cos), f(Builtin::Sin));
                            let scaled = |k: f64| {
                                binary(BinOp::Mul, Shape::Scalar, lit(Tensor::scalar(k)), s.clone())
                            };
                            return term_value(pack(
                                Shape::Quat,
                                vec![c, scaled(axis[0]), scaled(axis[1]), scaled(axis[2])],
                            ));
                        };
                        let (s, c) = (an / 2.0).sin_cos();
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
                            "`axis_angle(axis, angle)` takes a compile-time vec3 and an angle",
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
                let usage = "write `compound(shape, offset, shape, offset, rotation, ...)`: each part a shape, its offset and optionally its rotation, e.g. `compound(sphere(0.1), vec3(0, 0, 0.2), capsule(0.05, 0.4), vec3(0, 0, 0), axis_angle(vec3(1, 0, 0), 90deg))`";
                if vals.is_empty() {
                    self.error(
                        Diagnostic::error(
                            "joule::arity",
                            "`compound` takes its parts: a shape, its offset and optionally its rotation each",
                            span,
                            "no parts",
                        )
                        .with_help(usage),
                    );
                    return Value::Poison;
                }
                let mut parts = vec![];
                let mut i = 0;
                while i < vals.len() {
                    let offset = vals.get(i + 1).and_then(Value::tensor);
                    let (shape, at) = match (&vals[i], offset) {
                        (Value::Shape(s), Some(t)) if t.shape == Shape::Vec(3) => {
                            (s.clone(), [t.data[0], t.data[1], t.data[2]])
                        }
                        _ => {
                            let end = spans.get(i + 1).copied().unwrap_or(spans[i]);
                            self.error(
                                Diagnostic::error(
                                    "joule::type_mismatch",
                                    "expected a shape and a compile-time vec3 offset",
                                    spans[i].to(end),
                                    "not a shape and an offset",
                                )
                                .with_help(usage),
                            );
                            return Value::Poison;
                        }
                    };
                    i += 2;
                    let mut rotation = crate::math::IDENTITY;
                    if let Some(q) = vals.get(i).and_then(Value::tensor) {
                        if q.shape == Shape::Quat {
                            let q = [q.data[0], q.data[1], q.data[2], q.data[3]];
                            let Some(q) = crate::math::qnormalize(q) else {
                                self.error(
                                    Diagnostic::error(
                                        "joule::invalid_value",
                                        "the part's rotation quaternion is zero",
                                        spans[i],
                                        "zero quaternion",
                                    )
                                    .with_help("turn the part by a nonzero quaternion (w, x, y, z), e.g. `axis_angle(vec3(0, 1, 0), 90deg)`, or leave the rotation out"),
                                );
                                return Value::Poison;
                            };
                            rotation = q;
                            i += 1;
                        }
                    }
                    parts.push((shape, at, rotation));
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
                        .chain(["uniform", "normal"])
                        .collect();
                    let mut d = Diagnostic::error(
                        "joule::unknown_name",
                        format!("unknown function `{name}`"),
                        func.span,
                        "not a function",
                    );
                    let help = match self.globals.get(name) {
                        Some((Global::Energy(_), _)) => Some(format!("`{name}` is an energy; its instances are items of their own, not expressions")),
                        Some((g, _)) => Some(format!("`{name}` is {}, not a function", g.describe())),
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

    pub(in crate::resolve) fn arity(
        &mut self,
        func: &Ident,
        want: usize,
        got: usize,
        span: Span,
    ) -> bool {
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
                let elementwise = shapes.iter().any(|s| *s != Shape::Scalar)
                    && builtin_shape(b, &vec![Shape::Scalar; shapes.len()]).is_ok();
                d = d.with_help(if b == Builtin::Select {
                    "`select(a < b, x, y)` picks `x` where the comparison holds, `y` elsewhere".to_string()
                } else if elementwise {
                    format!("`{}` acts on numbers: apply it to components (`{}(v.x)`), or build the vector from them (`vec3({0}(v.x), {0}(v.y), {0}(v.z))`)", b.name(), b.name())
                } else {
                    "the labels give each argument's shape; a vector's components are `v.x`, `v.y`, `v.z`, a number makes a vector with `vec3(a, b, c)`; docs/LANGUAGE.md lists every built-in's arguments".to_string()
                });
                self.error(d);
                return Value::Poison;
            }
        };
        let known_args: Option<Vec<Tensor>> = vals.iter().map(Value::tensor).collect();
        if let Some(t) = known_args {
            return self.finite(fold_builtin(b, &t, shape), span);
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
                        .with_label(ty.span, "declared here")
                        .with_help(format!(
                            "pass {} here, as `{}` declares its argument `{}`",
                            crate::resolve::instances::article(&ty.name),
                            decl.name,
                            p.name.name
                        )),
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
    pub(in crate::resolve) fn check_type_name(&mut self, ty: &Ident) -> bool {
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
            .flat_map(|(part, c, q)| {
                contact_point_list(part)
                    .into_iter()
                    .map(move |(r, radius)| {
                        (crate::math::add(*c, crate::math::rotate(*q, r)), radius)
                    })
            })
            .collect(),
    }
}
