//! Declarations: settings, params, controls, particles, bodies, meshes, fixes,
//! objectives and policies.

use super::eval::{binary, describe_value, lit, to_term, Ctx};
use super::joints::written_kind;
use super::mesh::{self, MeshData};
use super::start::ParamMass;
use super::value::{ShapeValue, Value};
use super::{suggest, ArrayDecl, ArrayKind, Global, MeshDecl, Resolver, MAX_EXPANSION};
use crate::model::*;
// The model's kind, not the AST's (converted where the item is read).
use crate::model::ObjectiveKind;
use joule_grammar::ast::*;
use joule_grammar::Diagnostic;
use std::collections::HashMap;

/// Calls inside which an angle literal is expected.
const ANGLE_CALLS: &[&str] = &["sin", "cos", "tan", "axis_angle", "atan2"];

/// The first `deg` literal in `e` that is not an argument of a trigonometric call.
fn stray_angle(e: &Expr) -> Option<Span> {
    match &e.kind {
        ExprKind::Num { unit: Some(u), .. } if u.name == "deg" => Some(e.span),
        ExprKind::Call { func, .. } if ANGLE_CALLS.contains(&func.name.as_str()) => None,
        ExprKind::Call { args, .. } | ExprKind::Method { args, .. } => {
            args.iter().find_map(|a| stray_angle(&a.value))
        }
        ExprKind::Unary(_, x) | ExprKind::Field { recv: x, .. } => stray_angle(x),
        ExprKind::Binary(_, a, b) => stray_angle(a).or_else(|| stray_angle(b)),
        ExprKind::Tuple(v) | ExprKind::List(v) => v.iter().find_map(stray_angle),
        _ => None,
    }
}

/// Fields of one declaration, checked for duplicates and unknown names.
struct Fields<'a> {
    map: HashMap<&'a str, &'a FieldDef>,
}

impl Resolver<'_> {
    fn fields<'a>(&mut self, what: &str, fields: &'a [FieldDef], allowed: &[&str]) -> Fields<'a> {
        let mut map: HashMap<&str, &FieldDef> = HashMap::new();
        for f in fields {
            let n = f.name.name.as_str();
            if !allowed.contains(&n) {
                let help = suggest(n, allowed.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "{what} fields are {}",
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                self.error(
                    Diagnostic::error(
                        "joule::unknown_field",
                        format!("{what} has no field `{n}`"),
                        f.name.span,
                        "unknown field",
                    )
                    .with_help(help),
                );
            } else if let (Some((lo, hi)), false) = (&f.bounds, n == "joint") {
                self.error(
                    Diagnostic::error(
                        "joule::misplaced_range",
                        format!("`{n}` takes no range"),
                        lo.span.to(hi.span),
                        "`in lo..hi` here",
                    )
                    .with_help("`in lo..hi` after a field is the range of a body's hinge or slider `joint`; parameters and controls take theirs after the declaration (`param k = 1 in 0..10`)"),
                );
            } else if let Some(old) = map.insert(n, f) {
                self.error(
                    Diagnostic::error(
                        "joule::duplicate_name",
                        format!("field `{n}` is given twice"),
                        f.name.span,
                        "second value",
                    )
                    .with_label(old.name.span, "first value"),
                );
            }
        }
        Fields { map }
    }

    /// Evaluates a field to a compile-time tensor of `shape` (ints become scalars).
    fn field_value(
        &mut self,
        ctx: &mut Ctx,
        f: &FieldDef,
        shape: Shape,
        physical: bool,
    ) -> Option<Tensor> {
        self.const_value(ctx, &f.name.name, &f.value, shape, physical)
    }

    /// Evaluates the value `e` of `name` (a field or named argument) to a
    /// finite compile-time tensor of `shape`; `physical` values are not angles
    /// (a `deg` literal outside a trigonometric call is an error).
    pub(super) fn const_value(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        e: &Expr,
        shape: Shape,
        physical: bool,
    ) -> Option<Tensor> {
        if physical && !self.no_stray_angle(name, e) {
            return None;
        }
        let v = self.eval(ctx, e);
        self.const_of(name, e, &v, shape)
    }

    /// A particle's or body's field `f` that may read parameters (its initial
    /// state and mass): a compile-time value, or one that reads parameters
    /// (and nothing else of the runtime), returned with its term; the value
    /// is then the term's at the declared parameters.
    fn param_field(
        &mut self,
        ctx: &mut Ctx,
        f: &FieldDef,
        shape: Shape,
        physical: bool,
    ) -> Option<(Tensor, Option<std::sync::Arc<Term>>)> {
        let name = f.name.name.as_str();
        if physical && !self.no_stray_angle(name, &f.value) {
            return None;
        }
        let v = self.eval(ctx, &f.value);
        let Value::Runtime(t) = &v else {
            return self.const_of(name, &f.value, &v, shape).map(|t| (t, None));
        };
        let mut other = false;
        t.for_each_input(&mut |i| other |= !matches!(i, Input::Param(_)));
        if other || t.shape != shape {
            return self.const_of(name, &f.value, &v, shape).map(|t| (t, None));
        }
        let params: Vec<f64> = self.model.params.iter().map(|p| p.value).collect();
        let input = |i: Input| match i {
            Input::Param(p) => params[p as usize],
            _ => f64::NAN,
        };
        let value = crate::reset::evaluate(t, &input, &mut vec![]);
        let value = self.finite_field(name, &f.value, value)?;
        Some((value, Some(t.clone())))
    }

    /// A jointed body's initial joint coordinates or rates `f` (one per
    /// coordinate: a scalar or a vector), as a term: a literal, or one that
    /// reads parameters. A free joint starts from `x`, `v` and `w`; a
    /// coordinate must start strictly inside its joint's range.
    fn joint_start(
        &mut self,
        ctx: &mut Ctx,
        f: &FieldDef,
        joint: Option<&Attachment>,
    ) -> Option<(std::sync::Arc<Term>, Span)> {
        let name = f.name.name.as_str();
        let n = joint.map_or(0, |a| a.coordinates() as usize);
        let free = joint.is_some_and(|a| a.joints.iter().any(|j| j.kind == JointKind::Free));
        if n == 0 || free || n > 4 {
            let why = match joint {
                None => "the body has no joint",
                Some(_) if free => "a free joint starts from the body's `x`, `v` and `w`",
                Some(_) if n == 0 => "a weld has no coordinates",
                Some(_) => "its joints have more than 4 coordinates",
            };
            self.error(
                Diagnostic::error(
                    "joule::joint",
                    format!("`{name}` gives initial joint coordinates, but {why}"),
                    f.name.span,
                    "no coordinates to start",
                )
                .with_help("`q` and `qdot` start a hinge's, slider's or ball's coordinates (a scalar for one, a vector for 2 to 4) away from the declared pose, which is `q = 0`"),
            );
            return None;
        }
        let shape = if n == 1 {
            Shape::Scalar
        } else {
            Shape::Vec(n as u8)
        };
        let (value, term) = self.param_field(ctx, f, shape, name == "qdot")?;
        if name == "q" {
            let joint = joint.expect("coordinates");
            let ranged = joint.joints.iter().scan(0, |k, j| {
                let at = *k;
                *k += j.kind.dofs();
                Some((at, j))
            });
            for (k, j) in ranged {
                let Some((lo, hi)) = j.range.filter(|_| j.soft.is_none()) else {
                    continue;
                };
                let q = value.comps()[k];
                if !(lo < q && q < hi) {
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "the initial coordinate is outside its joint's range",
                            f.value.span,
                            format!("{q} is not strictly inside {lo}..{hi}"),
                        )
                        .with_label(j.span, "the joint")
                        .with_help("a range is a barrier that is never crossed: start the coordinate inside it (at the params' declared values too), or make the range a spring with `soft = 0.02`"),
                    );
                    return None;
                }
            }
        }
        Some((term.unwrap_or_else(|| lit(value)), f.value.span))
    }

    /// Rejects a `deg` literal in a value that is not an angle.
    fn no_stray_angle(&mut self, name: &str, e: &Expr) -> bool {
        let Some(s) = stray_angle(e) else { return true };
        self.error(
            Diagnostic::error(
                "joule::wrong_unit",
                format!("`{name}` is not an angle, but this is given in degrees"),
                s,
                "an angle",
            )
            .with_help(
                "`deg` converts angles to radians; use it for rotations and inside `sin`/`cos`/`axis_angle`",
            ),
        );
        false
    }

    /// `t` if every component is finite.
    fn finite_field(&mut self, name: &str, e: &Expr, t: Tensor) -> Option<Tensor> {
        if t.comps().iter().all(|x| x.is_finite()) {
            return Some(t);
        }
        self.err(
            "joule::invalid_value",
            format!("`{name}` is not finite"),
            e.span,
            format!("evaluates to {:?}", t.comps()),
        );
        None
    }

    /// The compile-time tensor of shape `shape` that `v` (the value of `e`) is.
    fn const_of(&mut self, name: &str, e: &Expr, v: &Value, shape: Shape) -> Option<Tensor> {
        match (v, v.tensor()) {
            (Value::Poison, _) => None,
            (_, Some(t)) if t.shape == shape => self.finite_field(name, e, t),
            (Value::Runtime(_) | Value::Control(_), _) => {
                self.error(
                    Diagnostic::error(
                        "joule::runtime_in_const",
                        format!("`{name}` must be known at compile time"),
                        e.span,
                        "depends on runtime values",
                    )
                    .with_help("settings, shapes and joints are compile-time values; parameters act through energies, observations, objectives, masses and the initial state (a particle's or body's `mass`, `density`, `com`, `inertia`, `x`, `v`, `rotation`, `w`, `q`, `qdot` may read them)"),
                );
                None
            }
            _ => {
                self.err(
                    "joule::type_mismatch",
                    format!(
                        "`{name}` must be a {}, not {}",
                        shape.name(),
                        describe_value(v)
                    ),
                    e.span,
                    format!("expected {}", shape.name()),
                );
                None
            }
        }
    }

    fn positive(&mut self, f: &FieldDef, x: f64) -> Option<f64> {
        if x > 0.0 {
            Some(x)
        } else {
            self.error(
                Diagnostic::error(
                    "joule::invalid_value",
                    format!("`{}` must be positive", f.name.name),
                    f.value.span,
                    format!("this is {x}"),
                )
                .with_help(
                    "masses, densities, sizes and time steps are positive numbers in SI units",
                ),
            );
            None
        }
    }

    /// A `settings` block: one per file, applied once the file's items are
    /// declared ([`Resolver::end_settings`]), so that a file's fields
    /// override those of the files it `use`s (the scene's own over an
    /// imported MJCF model's time step, a `use`d env's over its model's).
    pub(super) fn settings(&mut self, span: Span, fields: &[FieldDef]) {
        let file = self.settings_stack.last_mut().expect("a file is declared");
        match &file.own {
            Some((old, _)) => {
                let old = *old;
                self.twice(span, old);
            }
            None => file.own = Some((span, fields.to_vec())),
        }
    }

    /// The end of a file's declarations: its `settings` applied over those
    /// of the files it used; among the files one file uses, one may have
    /// a block.
    pub(super) fn end_settings(&mut self) {
        let file = self.settings_stack.pop().expect("a file is declared");
        let Some((span, fields)) = file.own else {
            return;
        };
        if let Some(parent) = self.settings_stack.last_mut() {
            if let Some(old) = parent.used.replace(span) {
                self.twice(span, old);
                return;
            }
        }
        self.apply_settings(&fields);
    }

    fn twice(&mut self, span: Span, old: Span) {
        self.error(
            Diagnostic::error(
                "joule::duplicate_name",
                "`settings` is given twice",
                span,
                "second settings",
            )
            .with_label(old, "first settings")
            .with_help("merge them into one `settings { ... }` block"),
        );
    }

    /// Sets the settings' fields that `fields` gives.
    pub(super) fn apply_settings(&mut self, fields: &[FieldDef]) {
        let allowed = [
            "dt",
            "substeps",
            "gravity",
            "integrator",
            "precision",
            "surrogate",
        ];
        let fs = self.fields("settings", fields, &allowed);
        let mut ctx = Ctx::declaration();
        if let Some(f) = fs.map.get("dt") {
            if let Some(t) = self.field_value(&mut ctx, f, Shape::Scalar, true) {
                if let Some(dt) = self.positive(f, t.x()) {
                    self.model.settings.dt = dt;
                }
            }
        }
        if let Some(f) = fs.map.get("substeps") {
            let v = self.eval(&mut ctx, &f.value);
            if let Some(n) = self.as_int(&v, f.value.span, "`substeps`") {
                if (1..=10_000).contains(&n) {
                    self.model.settings.substeps = n as u32;
                } else {
                    self.err(
                        "joule::invalid_value",
                        "`substeps` must be between 1 and 10000",
                        f.value.span,
                        format!("this is {n}"),
                    );
                }
            }
        }
        if let Some(f) = fs.map.get("gravity") {
            if let Some((t, term)) = self.param_field(&mut ctx, f, Shape::Vec(3), true) {
                self.model.settings.gravity = [t.data[0], t.data[1], t.data[2]];
                self.param_gravity = term.map(|t| (t, f.value.span));
            }
        }
        if let Some(f) = fs.map.get("integrator") {
            self.integrator(&mut ctx, f);
        }
        if let Some(f) = fs.map.get("precision") {
            match &f.value.kind {
                ExprKind::Name(n) if n == "f64" => self.model.settings.precision = Precision::F64,
                ExprKind::Name(n) if n == "f32" => self.model.settings.precision = Precision::F32,
                _ => self.error(
                    Diagnostic::error(
                        "joule::invalid_value",
                        "unknown precision",
                        f.value.span,
                        "not a precision",
                    )
                    .with_help("write `precision = f64` (default) or `precision = f32`"),
                ),
            }
        }
        if let Some(f) = fs.map.get("surrogate") {
            match &f.value.kind {
                ExprKind::Name(n) if n == "energy" => {
                    self.model.settings.surrogate = SurrogateMode::Energy
                }
                ExprKind::Name(n) if n == "model" => {
                    self.model.settings.surrogate = SurrogateMode::Model
                }
                ExprKind::Call { func, args } if func.name == "model" => {
                    self.model.settings.surrogate = SurrogateMode::Model;
                    self.surrogate_options(args);
                }
                _ => self.error(
                    Diagnostic::error(
                        "joule::invalid_value",
                        "unknown surrogate mode",
                        f.value.span,
                        "not a surrogate mode",
                    )
                    .with_help(
                        "write `surrogate = energy` (default: the adjoint differentiates each `backward =` energy at the simulated states) or `surrogate = model` (it differentiates a step of the surrogate model taken from each simulated state; `model(kinematics = exact)` steps it on the trees' configurations)",
                    ),
                ),
            }
        }
    }

    /// The options of `surrogate = model(...)`: the surrogate model's
    /// kinematics (`kinematics = exact` or `linear`), the one option.
    fn surrogate_options(&mut self, args: &[Arg]) {
        for a in args {
            let kinematics = match (&a.name, &a.value.kind) {
                (Some(n), ExprKind::Name(k)) if n.name == "kinematics" && k == "exact" => {
                    Kinematics::Exact
                }
                (Some(n), ExprKind::Name(k)) if n.name == "kinematics" && k == "linear" => {
                    Kinematics::Linear
                }
                _ => {
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "the surrogate model's one option is its kinematics",
                            a.value.span,
                            "not `kinematics = exact` or `kinematics = linear`",
                        )
                        .with_help("write `surrogate = model(kinematics = exact)`: MuJoCo's Euler (`kinematics = linear`) forward, implicit Euler on the trees' configurations in the gradients"),
                    );
                    continue;
                }
            };
            self.model.settings.surrogate_kinematics = Some(kinematics);
        }
    }

    fn integrator(&mut self, ctx: &mut Ctx, f: &FieldDef) {
        let known = ["symplectic_euler", "implicit_euler", "rk4"];
        let (name, args) = match &f.value.kind {
            ExprKind::Name(n) => (
                Ident {
                    name: n.clone(),
                    span: f.value.span,
                },
                vec![],
            ),
            ExprKind::Call { func, args } => (func.clone(), args.clone()),
            _ => {
                self.err(
                    "joule::invalid_value",
                    "an integrator is a name or a call",
                    f.value.span,
                    "not an integrator",
                );
                return;
            }
        };
        self.integrator_span = Some(f.value.span);
        match name.name.as_str() {
            "symplectic_euler" if args.is_empty() => {
                self.model.settings.integrator = Integrator::SymplecticEuler;
            }
            "implicit_euler" => {
                let (iterations, tolerance, kinematics) =
                    self.solver_options(ctx, "implicit_euler", &args);
                self.model.settings.integrator = Integrator::ImplicitEuler {
                    iterations,
                    tolerance,
                    kinematics,
                };
            }
            "rk4" => {
                let (iterations, tolerance, _) = self.solver_options(ctx, "rk4", &args);
                self.model.settings.integrator = Integrator::RungeKutta4 {
                    iterations,
                    tolerance,
                };
            }
            other => {
                let help = suggest(other, known.iter().copied())
                    .unwrap_or_else(|| "integrators are `symplectic_euler`, `implicit_euler(iterations = .., tolerance = ..)` and `rk4(iterations = .., tolerance = ..)`".into());
                self.error(
                    Diagnostic::error(
                        "joule::unknown_name",
                        format!("unknown integrator `{other}`"),
                        name.span,
                        "not an integrator",
                    )
                    .with_help(help),
                );
            }
        }
    }

    /// The named options of an integrator that solves (`implicit_euler`,
    /// whose options include `kinematics`, and `rk4`): Newton's iterations
    /// and tolerance, and the kinematics.
    fn solver_options(
        &mut self,
        ctx: &mut Ctx,
        integrator: &str,
        args: &[Arg],
    ) -> (u32, f64, Kinematics) {
        let (mut iterations, mut tolerance) = (20u32, 1e-8);
        let mut kinematics = Kinematics::Exact;
        let options: &[&str] = if integrator == "rk4" {
            &["iterations", "tolerance"]
        } else {
            &["iterations", "tolerance", "kinematics"]
        };
        for a in args {
            let Some(n) = &a.name else {
                self.error(
                    Diagnostic::error(
                        "joule::named_argument",
                        "integrator options are named",
                        a.value.span,
                        "unnamed",
                    )
                    .with_help(format!(
                        "write `{integrator}(iterations = 10, tolerance = 1e-8)`"
                    )),
                );
                continue;
            };
            if n.name == "kinematics" && options.contains(&"kinematics") {
                match &a.value.kind {
                    ExprKind::Name(k) if k == "exact" => kinematics = Kinematics::Exact,
                    ExprKind::Name(k) if k == "linear" => kinematics = Kinematics::Linear,
                    _ => self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "`kinematics` is `exact` or `linear`",
                            a.value.span,
                            "not a kinematics",
                        )
                        .with_help("write `kinematics = exact` (default: the step minimises over the trees' configurations) or `kinematics = linear` (linear about the step's start: MuJoCo's Euler step)"),
                    ),
                }
                continue;
            }
            if !options.contains(&n.name.as_str()) {
                let list = options
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    Diagnostic::error(
                        "joule::unknown_field",
                        format!("`{integrator}` has no option `{}`", n.name),
                        n.span,
                        "unknown option",
                    )
                    .with_help(
                        suggest(&n.name, options.iter().copied())
                            .unwrap_or_else(|| format!("its options are {list}")),
                    ),
                );
                continue;
            }
            let v = self.eval(ctx, &a.value);
            match n.name.as_str() {
                "iterations" => {
                    if let Some(i) = self.as_int(&v, a.value.span, "`iterations`") {
                        if (1..=10_000).contains(&i) {
                            iterations = i as u32;
                        } else {
                            self.err(
                                "joule::invalid_value",
                                "`iterations` must be between 1 and 10000",
                                a.value.span,
                                format!("this is {i}"),
                            );
                        }
                    }
                }
                // `tolerance`, the only other option.
                _ => match v.tensor() {
                    Some(t) if t.shape == Shape::Scalar && t.x() > 0.0 => tolerance = t.x(),
                    _ => self.err(
                        "joule::invalid_value",
                        "`tolerance` must be a positive number",
                        a.value.span,
                        "not a positive number",
                    ),
                },
            }
        }
        (iterations, tolerance, kinematics)
    }

    fn bounds(&mut self, ctx: &mut Ctx, bounds: Option<&(Expr, Expr)>) -> Option<(f64, f64)> {
        let (lo, hi) = bounds?;
        let l = self
            .eval(ctx, lo)
            .tensor()
            .filter(|t| t.shape == Shape::Scalar);
        let h = self
            .eval(ctx, hi)
            .tensor()
            .filter(|t| t.shape == Shape::Scalar);
        match (l, h) {
            (Some(l), Some(h)) if l.x() < h.x() => Some((l.x(), h.x())),
            (Some(l), Some(h)) => {
                self.error(
                    Diagnostic::error(
                        "joule::invalid_value",
                        "empty range",
                        lo.span.to(hi.span),
                        format!("{} is not below {}", l.x(), h.x()),
                    )
                    .with_help("write the range as `lo..hi` with lo < hi"),
                );
                None
            }
            _ => {
                self.err(
                    "joule::type_mismatch",
                    "range bounds must be compile-time numbers",
                    lo.span.to(hi.span),
                    "not compile-time numbers",
                );
                None
            }
        }
    }

    /// `param NAME[dims] = value [in lo..hi]`: one param, or one per
    /// element of an array (`w[3]`), whose default and range are evaluated
    /// per element (they may read the index variables:
    /// `param w[k in 0..4] = 0.1 * k in -1..1`).
    pub(super) fn param(
        &mut self,
        name: &Ident,
        dims: Option<&Dims>,
        value: &Expr,
        bounds: Option<&(Expr, Expr)>,
    ) {
        self.declare_array(name, dims, ArrayKind::Param, &mut |r, ctx, label| {
            let v = r.eval(ctx, value);
            let x = match v.tensor() {
                Some(t) if t.shape == Shape::Scalar => t.x(),
                _ => {
                    if !matches!(v, Value::Poison) {
                        r.error(
                            Diagnostic::error("joule::type_mismatch", format!("parameter `{label}` needs a compile-time scalar default, not {}", describe_value(&v)), value.span, "not a scalar")
                                .with_help("a parameter holds one number per environment; its default must be a constant"),
                        );
                    }
                    return None;
                }
            };
            let b = r.bounds(ctx, bounds);
            if let (Some((lo, hi)), Some((_, _))) = (b, bounds) {
                if !(lo..=hi).contains(&x) {
                    r.err(
                        "joule::invalid_value",
                        format!("the default {x} of `{label}` lies outside its range {lo}..{hi}"),
                        value.span,
                        "outside the range",
                    );
                    r.diags.last_mut().expect("just pushed").help =
                        Some("move the default into the range, or widen the range".into());
                    return None;
                }
            }
            let id = r.model.params.len() as u32;
            r.model.params.push(ParamDecl {
                name: label,
                value: x,
                bounds: b,
                span: name.span,
            });
            Some(id)
        });
    }

    pub(super) fn control(
        &mut self,
        name: &Ident,
        dims: Option<&Dims>,
        bounds: Option<&(Expr, Expr)>,
    ) {
        // The range is evaluated per element, so it may read the array's
        // index variables (`control u[k in 0..2] in lo[k]..hi[k]`).
        self.declare_array(name, dims, ArrayKind::Control, &mut |r, ctx, label| {
            let b = r.bounds(ctx, bounds);
            let id = r.model.controls.len() as u32;
            r.model.controls.push(ControlDecl {
                name: label,
                bounds: b,
            });
            Some(id)
        });
    }

    pub(super) fn particles(&mut self, name: &Ident, dims: Option<&Dims>, fields: &[FieldDef]) {
        let fs = self.fields("a particle", fields, &["x", "v", "mass"]);
        for required in ["x", "mass"] {
            if !fs.map.contains_key(required) {
                self.error(
                    Diagnostic::error(
                        "joule::missing_field",
                        format!("particle `{}` has no `{required}`", name.name),
                        name.span,
                        format!("`{required}` missing"),
                    )
                    .with_help("a particle needs a position `x = vec3(..)` and a `mass`"),
                );
                return;
            }
        }
        let fs = fs.map;
        self.declare_array(name, dims, ArrayKind::Particle, &mut |r, ctx, label| {
            let mut start = vec![];
            let mut field = |r: &mut Resolver, ctx: &mut Ctx, key: StartKey| {
                let Some(f) = fs.get(key.name()) else {
                    return Some(Tensor::new(Shape::Vec(3), &[0.0; 3]));
                };
                let (t, term) = r.param_field(ctx, f, Shape::Vec(3), true)?;
                start.extend(term.map(|t| (key, t, f.value.span)));
                Some(t)
            };
            let x = field(r, ctx, StartKey::X)?;
            let v = field(r, ctx, StartKey::V)?;
            let (m, mass_term) = r.param_field(ctx, fs["mass"], Shape::Scalar, true)?;
            let mass = r.positive(fs["mass"], m.x())?;
            let id = r.add_particle(
                label,
                [x.data[0], x.data[1], x.data[2]],
                [v.data[0], v.data[1], v.data[2]],
                mass,
            );
            r.model
                .start
                .extend(start.into_iter().map(|(key, value, span)| StartField {
                    owner: id,
                    particle: true,
                    key,
                    value,
                    span,
                }));
            r.param_masses.extend(mass_term.map(|mass| ParamMass {
                particle: true,
                owner: id,
                mass,
                declared: m.x(),
                span: fs["mass"].value.span,
                distribution: None,
            }));
            Some(id)
        });
    }

    fn add_particle(&mut self, name: String, x: [f64; 3], v: [f64; 3], mass: f64) -> u32 {
        let id = self.model.particles.len() as u32;
        self.model.particles.push(Particle {
            name,
            x,
            v,
            mass,
            dof: None,
        });
        self.fixed_particles.push(false);
        id
    }

    pub(super) fn bodies(&mut self, name: &Ident, dims: Option<&Dims>, fields: &[FieldDef]) {
        let fs = self
            .fields(
                "a body",
                fields,
                &[
                    "shape", "density", "mass", "x", "rotation", "v", "w", "com", "inertia",
                    "joint", "q", "qdot",
                ],
            )
            .map;
        if !fs.contains_key("shape") {
            self.error(
                Diagnostic::error("joule::missing_field", format!("body `{}` has no `shape`", name.name), name.span, "`shape` missing")
                    .with_help("give a shape: `shape = sphere(r)`, `box(vec3(..))`, `capsule(r, length)` or `cylinder(r, length)`"),
            );
            return;
        }
        if fs.contains_key("density") == fs.contains_key("mass") {
            self.error(
                Diagnostic::error(
                    "joule::missing_field",
                    format!(
                        "body `{}` needs exactly one of `density` and `mass`",
                        name.name
                    ),
                    name.span,
                    "mass undetermined",
                )
                .with_help("give `density = ..` (kg/m^3) or `mass = ..` (kg)"),
            );
            return;
        }
        if fs.contains_key("density") && fs.contains_key("inertia")
            || fs.contains_key("com") && !fs.contains_key("inertia")
        {
            let f = fs.get("com").unwrap_or(&fs["inertia"]);
            self.error(
                Diagnostic::error(
                    "joule::missing_field",
                    format!("body `{}`: `com` and `inertia` go together with `mass`", name.name),
                    f.name.span,
                    "incomplete mass distribution",
                )
                .with_help("give `mass = ..` (kg) and `inertia = mat3(..)` (kg m^2, about the centre of mass, body axes), optionally `com = vec3(..)` (body frame)"),
            );
            return;
        }
        if let Some(j) = fs.get("joint") {
            let moved = written_kind(&j.value).is_some_and(|k| k != "free");
            if let Some(f) = ["v", "w"].iter().find_map(|k| fs.get(k)).filter(|_| moved) {
                self.error(
                    Diagnostic::error(
                        "joule::joint",
                        format!("body `{}` has a joint and an initial `{}`", name.name, f.name.name),
                        f.name.span,
                        "initial velocity",
                    )
                    .with_label(j.value.span, "its joint")
                    .with_help("velocities of jointed bodies come from their joints, whose initial velocities are 0; only a `free` body takes `v` and `w`"),
                );
                return;
            }
        }
        self.declare_array(name, dims, ArrayKind::Body, &mut |r, ctx, label| {
            let f = fs["shape"];
            let shape = match r.eval(ctx, &f.value) {
                Value::Shape(s) => r.body_shape(&s, f.value.span)?,
                Value::Poison => return None,
                v => {
                    r.err(
                        "joule::type_mismatch",
                        format!("`shape` must be a shape, not {}", describe_value(&v)),
                        f.value.span,
                        "not a shape",
                    );
                    return None;
                }
            };
            let mut start = vec![];
            let mut field = |r: &mut Resolver, ctx: &mut Ctx, key: StartKey, shape: Shape| {
                let f = fs.get(key.name())?;
                let physical = matches!(key, StartKey::X | StartKey::V);
                let Some((t, term)) = r.param_field(ctx, f, shape, physical) else {
                    return Some(None);
                };
                start.extend(term.map(|t| (key, t, f.value.span)));
                Some(Some(t))
            };
            let mut vector = |r: &mut Resolver, ctx: &mut Ctx, key: StartKey| match field(
                r,
                ctx,
                key,
                Shape::Vec(3),
            ) {
                None => Some([0.0; 3]),
                Some(t) => t.map(|t| [t.data[0], t.data[1], t.data[2]]),
            };
            let f = fs.get("mass").or(fs.get("density")).expect("checked above");
            let (m, mass_term) = r.param_field(ctx, f, Shape::Scalar, true)?;
            let m = r.positive(f, m.x())?;
            // A density is per cubic metre of the shape.
            let (mass, mass_term) = if fs.contains_key("mass") {
                (m, mass_term)
            } else {
                let volume = lit(Tensor::scalar(shape.volume()));
                let times = |t| binary(crate::model::BinOp::Mul, Shape::Scalar, t, volume);
                (m * shape.volume(), mass_term.map(times))
            };
            let x = vector(r, ctx, StartKey::X)?;
            let v = vector(r, ctx, StartKey::V)?;
            let w = vector(r, ctx, StartKey::W)?;
            let rotation = match fs.get("rotation") {
                None => [1.0, 0.0, 0.0, 0.0],
                Some(f) => {
                    let q = field(r, ctx, StartKey::Rotation, Shape::Quat)??;
                    let n = q.comps().iter().map(|c| c * c).sum::<f64>().sqrt();
                    if n == 0.0 {
                        r.err(
                            "joule::invalid_value",
                            "the rotation quaternion is zero",
                            f.value.span,
                            "zero quaternion",
                        );
                        return None;
                    }
                    [q.data[0] / n, q.data[1] / n, q.data[2] / n, q.data[3] / n]
                }
            };
            // An explicit mass distribution, and its terms where it reads params.
            let (inertia, distribution) = match fs.get("inertia") {
                None => (None, None),
                Some(f) => {
                    let (com, com_term) = match fs.get("com") {
                        Some(c) => r.param_field(ctx, c, Shape::Vec(3), true)?,
                        None => (Tensor::new(Shape::Vec(3), &[0.0; 3]), None),
                    };
                    let (tensor, tensor_term) = r.param_field(ctx, f, Shape::Mat(3), true)?;
                    let com_v = [com.data[0], com.data[1], com.data[2]];
                    let inertia = r.inertia(f, &tensor, com_v)?;
                    let span = f.value.span;
                    let terms = (com_term.is_some() || tensor_term.is_some()).then(|| {
                        (
                            com_term.unwrap_or_else(|| lit(com)),
                            tensor_term.unwrap_or_else(|| lit(tensor)),
                            span,
                        )
                    });
                    (Some(inertia), terms)
                }
            };
            let id = r.model.bodies.len() as u32;
            let (joint, pending) = match fs.get("joint") {
                Some(f) => {
                    let (a, p) = r.joint_field(ctx, f, id, x)?;
                    (Some(a), p)
                }
                None => (None, None),
            };
            for key in [StartKey::Q, StartKey::Qdot] {
                if let Some(f) = fs.get(key.name()) {
                    let (value, span) = r.joint_start(ctx, f, joint.as_ref())?;
                    start.push((key, value, span));
                }
            }
            // Only a body that is declared waits for its parent.
            r.pending_parents.extend(pending);
            r.model
                .start
                .extend(start.into_iter().map(|(key, value, span)| StartField {
                    owner: id,
                    particle: false,
                    key,
                    value,
                    span,
                }));
            // A distribution that reads params makes the mass one too.
            if mass_term.is_some() || distribution.is_some() {
                // Where a diagnostic points: the mass, else the distribution.
                let span = match (&mass_term, &distribution) {
                    (None, Some((.., span))) => *span,
                    _ => f.value.span,
                };
                r.param_masses.push(ParamMass {
                    particle: false,
                    owner: id,
                    mass: mass_term.unwrap_or_else(|| lit(Tensor::scalar(mass))),
                    declared: mass,
                    span,
                    distribution: distribution.map(|(com, tensor, _)| (com, tensor)),
                });
            }
            r.model.bodies.push(Body {
                name: label,
                shape,
                mass,
                x,
                rotation,
                v,
                w,
                inertia,
                dof: None,
                joint,
            });
            r.fixed_bodies.push(false);
            Some(id)
        });
    }

    /// A body's `inertia` field `f` of value `t`: a symmetric mat3 whose
    /// second-moment matrix `tr(I)/2 - I` is positive definite (the triangle
    /// inequality, strictly).
    fn inertia(&mut self, f: &FieldDef, t: &Tensor, com: [f64; 3]) -> Option<Inertia> {
        // Column-major storage: M[j, k] is data[3 k + j].
        let tensor: [[f64; 3]; 3] =
            std::array::from_fn(|j| std::array::from_fn(|k| t.data[3 * k + j]));
        let inertia = Inertia { com, tensor };
        let s = inertia.second_moments();
        let scale = tensor.iter().flatten().map(|x| x.abs()).fold(0.0, f64::max);
        let symmetric =
            (0..3).all(|j| (0..3).all(|k| (tensor[j][k] - tensor[k][j]).abs() <= 1e-12 * scale));
        // Sylvester's criterion on S.
        let m2 = s[0][0] * s[1][1] - s[0][1] * s[1][0];
        let m3 = s[0][0] * (s[1][1] * s[2][2] - s[1][2] * s[2][1])
            - s[0][1] * (s[1][0] * s[2][2] - s[1][2] * s[2][0])
            + s[0][2] * (s[1][0] * s[2][1] - s[1][1] * s[2][0]);
        if !symmetric || s[0][0] <= 0.0 || m2 <= 0.0 || m3 <= 0.0 {
            self.error(
                Diagnostic::error(
                    "joule::invalid_value",
                    "`inertia` is not the inertia tensor of a solid body",
                    f.value.span,
                    if symmetric { "principal moments violate the triangle inequality" } else { "not symmetric" },
                )
                .with_help("give the symmetric inertia tensor about the centre of mass in body axes (kg m^2); its principal moments must satisfy I1 < I2 + I3"),
            );
            return None;
        }
        Some(inertia)
    }

    fn body_shape(&mut self, s: &ShapeValue, span: Span) -> Option<BodyShape> {
        let bad = |r: &mut Self, why: &str| {
            r.error(
                Diagnostic::error("joule::invalid_value", format!("invalid `{}`: {why}", s.kind), span, "invalid shape")
                    .with_help("sizes are positive numbers in metres: `sphere(r)`, `box(vec3(lx, ly, lz))` (edge lengths), `capsule(r, length)`, `cylinder(r, length)`"),
            );
            None
        };
        let pos = |t: &Tensor| t.shape == Shape::Scalar && t.x() > 0.0 && t.x().is_finite();
        if s.kind == "compound" {
            let mut parts = vec![];
            for (part, offset, rotation) in &s.parts {
                parts.push((self.body_shape(part, span)?, *offset, *rotation));
            }
            return Some(BodyShape::Compound { parts });
        }
        match s.kind {
            "sphere" if pos(&s.args[0]) => Some(BodyShape::Sphere {
                radius: s.args[0].x(),
            }),
            "box"
                if s.args[0].shape == Shape::Vec(3)
                    && s.args[0].comps().iter().all(|x| *x > 0.0 && x.is_finite()) =>
            {
                Some(BodyShape::Box {
                    size: [s.args[0].data[0], s.args[0].data[1], s.args[0].data[2]],
                })
            }
            "capsule" if pos(&s.args[0]) && pos(&s.args[1]) => Some(BodyShape::Capsule {
                radius: s.args[0].x(),
                length: s.args[1].x(),
            }),
            "cylinder" if pos(&s.args[0]) && pos(&s.args[1]) => Some(BodyShape::Cylinder {
                radius: s.args[0].x(),
                length: s.args[1].x(),
            }),
            _ => bad(self, "sizes must be positive"),
        }
    }

    /// Declares a scalar or array of particles/bodies/controls. `make` creates one element
    /// (with generator variables bound in the context) from its display name.
    fn declare_array(
        &mut self,
        name: &Ident,
        dims: Option<&Dims>,
        kind: ArrayKind,
        make: &mut dyn FnMut(&mut Self, &mut Ctx, String) -> Option<u32>,
    ) {
        let mut ctx = Ctx::declaration();
        let Some(dims) = dims else {
            if let Some(id) = make(self, &mut ctx, name.name.clone()) {
                let g = match kind {
                    ArrayKind::Particle => Global::Particle(id),
                    ArrayKind::Body => Global::Body(id),
                    ArrayKind::Control => Global::Control(id),
                    ArrayKind::Param => Global::Param(id),
                };
                self.define(name, g);
            }
            return;
        };
        let (ranges, vars, guard) = match dims {
            Dims::Sizes(sizes) => {
                let mut r = vec![];
                for s in sizes {
                    let v = self.eval(&mut ctx, s);
                    match self.as_int(&v, s.span, "an array size") {
                        Some(n) if n >= 0 => r.push((0, n)),
                        Some(n) => {
                            self.err(
                                "joule::invalid_value",
                                "array sizes cannot be negative",
                                s.span,
                                format!("this is {n}"),
                            );
                            return;
                        }
                        None => return,
                    }
                }
                (r, vec![], None)
            }
            Dims::Gens(g) => {
                let mut r = vec![];
                for gen in &g.gens {
                    let GenSource::Range(lo, hi) = &gen.source else {
                        self.error(
                            Diagnostic::error("joule::invalid_value", "array dimensions are integer ranges", gen.span, "not a range")
                                .with_help("write `name[i in 0..N]`; iterate over collections in instances and `fix`"),
                        );
                        return;
                    };
                    let l = self.eval(&mut ctx, lo);
                    let h = self.eval(&mut ctx, hi);
                    let (Some(l), Some(h)) = (
                        self.as_int(&l, lo.span, "a range bound"),
                        self.as_int(&h, hi.span, "a range bound"),
                    ) else {
                        return;
                    };
                    r.push((l, h.max(l)));
                }
                (
                    r,
                    g.gens
                        .iter()
                        .map(|g| g.var.name.clone())
                        .collect::<Vec<_>>(),
                    g.guard.as_deref(),
                )
            }
        };
        let total = ranges.iter().fold(1u64, |acc, (l, h)| {
            // In 128 bits: `h - l` may not fit 64.
            let n = i128::from(*h) - i128::from(*l);
            acc.saturating_mul(u64::try_from(n).unwrap_or(u64::MAX))
        });
        if total > MAX_EXPANSION {
            self.error(
                Diagnostic::error(
                    "joule::too_large",
                    format!(
                        "`{}` would have {total} elements, more than the limit of {MAX_EXPANSION}",
                        name.name
                    ),
                    name.span,
                    "too many elements",
                )
                .with_help("check the sizes; coarsen the model or split it"),
            );
            return;
        }
        let arr_id = self.arrays.len() as u32;
        let mut slots = vec![None; total as usize];
        let mut idx = vec![0i64; ranges.len()];
        for (flat, slot) in slots.iter_mut().enumerate() {
            // Row-major: innermost index last.
            let mut rem = flat;
            for k in (0..ranges.len()).rev() {
                let n = (ranges[k].1 - ranges[k].0) as usize;
                idx[k] = ranges[k].0 + (rem % n) as i64;
                rem /= n;
            }
            let depth = ctx.locals.len();
            for (v, i) in vars.iter().zip(&idx) {
                ctx.locals.push((v.clone(), Value::Int(*i)));
            }
            let keep = match guard {
                None => true,
                Some(g) => self.eval_static_bool(&mut ctx, g, "a guard") == Some(true),
            };
            if keep {
                let label = format!(
                    "{}[{}]",
                    name.name,
                    idx.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let before = self.diags.len();
                *slot = make(self, &mut ctx, label);
                if self.diags.len() > before {
                    // One element failed: report once, not per element.
                    ctx.locals.truncate(depth);
                    break;
                }
            }
            ctx.locals.truncate(depth);
        }
        self.arrays.push(ArrayDecl {
            name: name.name.clone(),
            kind,
            dims: ranges,
            slots,
        });
        self.define(name, Global::Array(arr_id));
    }

    pub(super) fn mesh(&mut self, name: &Ident, source: &Expr, fields: &[FieldDef]) {
        let fs = self.fields("a mesh", fields, &["density"]).map;
        let mut ctx = Ctx::declaration();
        let density = match fs.get("density") {
            Some(f) => match self.field_value(&mut ctx, f, Shape::Scalar, true) {
                Some(t) => match self.positive(f, t.x()) {
                    Some(d) => d,
                    None => return,
                },
                None => return,
            },
            None => 1.0,
        };
        let ExprKind::Call { func, args } = &source.kind else {
            self.mesh_help(source.span);
            return;
        };
        let data = match func.name.as_str() {
            "grid" | "tetgrid" => {
                let dim = if func.name == "grid" { 2 } else { 3 };
                let Some(d) = self.mesh_generator(&mut ctx, func, args, dim, density) else {
                    return;
                };
                d
            }
            "load" => {
                let Some(ExprKind::Str(path)) = args.first().map(|a| &a.value.kind) else {
                    self.err(
                        "joule::type_mismatch",
                        "`load` takes a file name string",
                        func.span,
                        "expected `load(\"file.obj\")`",
                    );
                    return;
                };
                let span = args[0].value.span;
                let base = self
                    .sources
                    .get(span.file)
                    .path
                    .as_ref()
                    .and_then(|p| p.parent().map(|p| p.to_path_buf()))
                    .unwrap_or_default();
                let full = base.join(path);
                let read = crate::read_input(&full, crate::MAX_INPUT_BYTES);
                let text = match read.map(String::from_utf8) {
                    Ok(Ok(t)) => t,
                    Ok(Err(_)) => {
                        self.error(
                            Diagnostic::error(
                                "joule::invalid_utf8",
                                format!("`{}` is not a text file", full.display()),
                                span,
                                "not UTF-8",
                            )
                            .with_help("`load` reads Wavefront OBJ meshes (text)"),
                        );
                        return;
                    }
                    Err(e) => {
                        let help = crate::read_help(&e)
                            .unwrap_or_else(|| "paths are relative to the scene file".into());
                        self.error(
                            Diagnostic::error(
                                "joule::use_not_found",
                                format!("cannot read `{}`: {e}", full.display()),
                                span,
                                "mesh file",
                            )
                            .with_help(help),
                        );
                        return;
                    }
                };
                match mesh::parse_obj(&text, density) {
                    Ok(d) => d,
                    Err(e) => {
                        self.err_help(
                            "joule::invalid_value",
                            format!("cannot load `{path}`: {}", e.message),
                            span,
                            "invalid OBJ file",
                            e.help,
                        );
                        return;
                    }
                }
            }
            _ => {
                self.mesh_help(source.span);
                return;
            }
        };
        let particles: Vec<u32> = (0..data.vertices.len())
            .map(|k| {
                self.add_particle(
                    format!("{}[{k}]", name.name),
                    data.vertices[k],
                    [0.0; 3],
                    data.masses[k],
                )
            })
            .collect();
        let id = self.meshes.len() as u32;
        self.model
            .surfaces
            .extend(data.tris.iter().map(|t| t.map(|i| particles[i as usize])));
        self.meshes.push(MeshDecl { particles, data });
        self.define(name, Global::Mesh(id));
    }

    fn mesh_help(&mut self, span: Span) {
        self.error(
            Diagnostic::error("joule::type_mismatch", "a mesh is made by `grid`, `tetgrid` or `load`", span, "not a mesh generator")
                .with_help("`grid(cells = (nx, ny), size = vec2(..), at = vec3(..))`, `tetgrid(cells = (nx, ny, nz), size = vec3(..), at = vec3(..))` or `load(\"file.obj\")`"),
        );
    }

    fn mesh_generator(
        &mut self,
        ctx: &mut Ctx,
        func: &Ident,
        args: &[Arg],
        dim: usize,
        density: f64,
    ) -> Option<MeshData> {
        let mut cells = None;
        let mut size = None;
        let mut at = [0.0; 3];
        for a in args {
            let Some(n) = &a.name else {
                self.error(
                    Diagnostic::error(
                        "joule::named_argument",
                        format!("`{}` options are named", func.name),
                        a.value.span,
                        "unnamed",
                    )
                    .with_help(format!(
                        "write `{}(cells = .., size = .., at = ..)`",
                        func.name
                    )),
                );
                return None;
            };
            let v = self.eval(ctx, &a.value);
            match n.name.as_str() {
                "cells" => {
                    let items = match &v {
                        Value::Tuple(t) if t.len() == dim => t.clone(),
                        _ => {
                            self.err(
                                "joule::type_mismatch",
                                format!("`cells` must be a tuple of {dim} integers"),
                                a.value.span,
                                format!(
                                    "expected ({})",
                                    if dim == 2 { "nx, ny" } else { "nx, ny, nz" }
                                ),
                            );
                            return None;
                        }
                    };
                    let mut c = vec![];
                    for it in items.iter() {
                        match self.as_int(it, a.value.span, "a cell count")? {
                            n if n >= 1 => c.push(n as u64),
                            n => {
                                self.err(
                                    "joule::invalid_value",
                                    "cell counts must be at least 1",
                                    a.value.span,
                                    format!("has {n}"),
                                );
                                return None;
                            }
                        }
                    }
                    let verts = c.iter().fold(1u64, |acc, n| acc.saturating_mul(n + 1));
                    // The most numerous elements: 6 tets per cell of a
                    // `tetgrid`, 3 edges per cell (about) of a `grid`.
                    let n_cells = c.iter().fold(1u64, |acc, n| acc.saturating_mul(*n));
                    let (what, n) = if dim == 3 {
                        ("tetrahedra", n_cells.saturating_mul(6))
                    } else {
                        ("edges", n_cells.saturating_mul(3))
                    };
                    let (what, n) = if verts >= n {
                        ("vertices", verts)
                    } else {
                        (what, n)
                    };
                    if n > MAX_EXPANSION {
                        self.error(
                            Diagnostic::error("joule::too_large", format!("this mesh would have {n} {what}, more than the limit of {MAX_EXPANSION}"), a.value.span, "too many cells")
                                .with_help("coarsen the mesh"),
                        );
                        return None;
                    }
                    cells = Some(c.iter().map(|n| *n as usize).collect::<Vec<_>>());
                }
                "size" => match v.tensor() {
                    Some(t)
                        if t.shape == Shape::Vec(dim as u8)
                            && t.comps().iter().all(|x| *x > 0.0 && x.is_finite()) =>
                    {
                        size = Some(t)
                    }
                    _ => {
                        self.err(
                            "joule::type_mismatch",
                            format!("`size` must be a vec{dim} of positive lengths"),
                            a.value.span,
                            format!("expected vec{dim}"),
                        );
                        return None;
                    }
                },
                "at" => match v.tensor() {
                    Some(t) if t.shape == Shape::Vec(3) => at = [t.data[0], t.data[1], t.data[2]],
                    _ => {
                        self.err(
                            "joule::type_mismatch",
                            "`at` must be a vec3",
                            a.value.span,
                            "expected vec3",
                        );
                        return None;
                    }
                },
                other => {
                    self.error(
                        Diagnostic::error(
                            "joule::unknown_field",
                            format!("`{}` has no option `{other}`", func.name),
                            n.span,
                            "unknown option",
                        )
                        .with_help(
                            suggest(other, ["cells", "size", "at"].into_iter())
                                .unwrap_or_else(|| "options are `cells`, `size` and `at`".into()),
                        ),
                    );
                    return None;
                }
            }
        }
        let (Some(c), Some(s)) = (cells, size) else {
            self.error(
                Diagnostic::error(
                    "joule::missing_field",
                    format!("`{}` needs `cells` and `size`", func.name),
                    func.span,
                    "missing options",
                )
                .with_help(format!(
                    "write `{}(cells = .., size = .., at = ..)`",
                    func.name
                )),
            );
            return None;
        };
        Some(if dim == 2 {
            mesh::grid([c[0], c[1]], [s.data[0], s.data[1]], at, density)
        } else {
            mesh::tetgrid(
                [c[0], c[1], c[2]],
                [s.data[0], s.data[1], s.data[2]],
                at,
                density,
            )
        })
    }

    pub(super) fn fix(&mut self, targets: &[Expr], gens: Option<&Generators>) {
        let mut ctx = Ctx::declaration();
        let mut apply = |r: &mut Self, ctx: &mut Ctx| {
            for t in targets {
                let v = r.eval(ctx, t);
                r.fix_value(&v, t.span);
            }
        };
        match gens {
            Some(g) => self.expand(&mut ctx, g, &mut apply),
            None => apply(self, &mut ctx),
        }
    }

    fn fix_value(&mut self, v: &Value, span: Span) {
        match v {
            Value::Particle(p) => self.fixed_particles[*p as usize] = true,
            Value::Body(b) => {
                if self.fixable(*b, span) {
                    self.fixed_bodies[*b as usize] = true;
                }
            }
            Value::Element(k, vs) => {
                for p in &vs[..k.vertices()] {
                    self.fixed_particles[*p as usize] = true;
                }
            }
            Value::List(items) => items.iter().for_each(|i| self.fix_value(i, span)),
            Value::Array(a) => {
                let arr = &self.arrays[*a as usize];
                let (kind, ids): (ArrayKind, Vec<u32>) =
                    (arr.kind, arr.slots.iter().flatten().copied().collect());
                for id in ids {
                    match kind {
                        ArrayKind::Particle => self.fixed_particles[id as usize] = true,
                        ArrayKind::Body if !self.fixable(id, span) => return,
                        ArrayKind::Body => self.fixed_bodies[id as usize] = true,
                        ArrayKind::Control | ArrayKind::Param => {
                            let (what, help) = if kind == ArrayKind::Control {
                                (
                                    "control",
                                    "a control is set by a policy, a plan or `--controls`",
                                )
                            } else {
                                ("param", "a param is set by its declaration, `--param NAME=VALUE` or a `reset`")
                            };
                            self.err_help(
                                "joule::type_mismatch",
                                format!("{what}s cannot be fixed"),
                                span,
                                format!("a {what}"),
                                format!("`fix` holds particles and bodies in place; {help}"),
                            );
                            return;
                        }
                    }
                }
            }
            Value::Mesh(m) => {
                for p in self.meshes[*m as usize].particles.clone() {
                    self.fixed_particles[p as usize] = true;
                }
            }
            Value::Poison => {}
            other => {
                let help = if other.shape().is_some() {
                    "fix the particle or body itself, not one of its fields: `fix p`, not `fix p.x`"
                } else {
                    "`fix` takes particles, bodies, mesh elements or lists of them (e.g. `fix cloth[0, 0]`, `fix block.surface`)"
                };
                self.error(
                    Diagnostic::error(
                        "joule::type_mismatch",
                        format!("cannot fix {}", describe_value(other)),
                        span,
                        "not a particle or body",
                    )
                    .with_help(help),
                )
            }
        }
    }

    /// Whether body `b` may be fixed: not when a joint moves it (reported at `span`).
    fn fixable(&mut self, b: u32, span: Span) -> bool {
        let body = &self.model.bodies[b as usize];
        let Some(joint) = &body.joint else {
            return true;
        };
        let d = Diagnostic::error(
            "joule::joint",
            format!("`{}` has a joint and cannot be fixed", body.name),
            span,
            "fixed here",
        )
        .with_label(joint.span, "its joint")
        .with_help("a jointed body moves with its joints; hold it in place with `joint = weld(world)`, or fix its parent");
        self.error(d);
        false
    }

    pub(super) fn objective(&mut self, kind: ObjectiveKind, name: &Ident, value: &Expr) {
        let mut ctx = Ctx::runtime();
        let v = self.eval(&mut ctx, value);
        if matches!(v, Value::Poison) {
            return;
        }
        let want: &[Shape] = match kind {
            ObjectiveKind::Observe => &[
                Shape::Scalar,
                Shape::Vec(2),
                Shape::Vec(3),
                Shape::Vec(4),
                Shape::Mat(2),
                Shape::Mat(3),
                Shape::Quat,
            ],
            ObjectiveKind::Reward | ObjectiveKind::Loss => &[Shape::Scalar],
            ObjectiveKind::Done => &[Shape::Bool],
        };
        let Some(term) = to_term(&v).filter(|t| want.contains(&t.shape)) else {
            let expected = match kind {
                ObjectiveKind::Observe => "a number, vector, matrix or quaternion",
                ObjectiveKind::Reward | ObjectiveKind::Loss => "a scalar",
                ObjectiveKind::Done => "a condition (a comparison such as `torso.x.z < 0.2`)",
            };
            let mut d = Diagnostic::error(
                "joule::type_mismatch",
                format!(
                    "`{} {}` must be {expected}, not {}",
                    kind.keyword(),
                    name.name,
                    describe_value(&v)
                ),
                value.span,
                format!("this is {}", describe_value(&v)),
            );
            if matches!(kind, ObjectiveKind::Reward | ObjectiveKind::Loss)
                && matches!(v.shape(), Some(Shape::Vec(_)))
            {
                d = d.with_help("reduce it to a number, e.g. with `norm(...)` or `dot(...)`");
            } else if kind == ObjectiveKind::Done {
                d = d
                    .with_help("compare it with a threshold, e.g. `done fallen = torso.x.z < 0.2`");
            }
            self.error(d);
            return;
        };
        if self.define(name, Global::Objective) {
            self.model.objectives.push(Objective {
                kind,
                name: name.name.clone(),
                value: term,
                span: name.span,
            });
        }
    }

    pub(super) fn policy(&mut self, name: &Ident, value: &Expr) {
        let usage = "write `policy NAME = mlp(inputs = [obs, ...], outputs = CONTROL, hidden = [64, 64], activation = tanh)` or `policy NAME = trajopt(horizon = 30, cost = REWARD)`";
        let ExprKind::Call { func, args } = &value.kind else {
            self.error(
                Diagnostic::error(
                    "joule::type_mismatch",
                    "a policy is an `mlp(...)` or a `trajopt(...)`",
                    value.span,
                    "not a policy",
                )
                .with_help(usage),
            );
            return;
        };
        if func.name == "trajopt" {
            self.planner(name, value, args);
            return;
        }
        if func.name != "mlp" {
            self.error(
                Diagnostic::error(
                    "joule::unknown_name",
                    format!("unknown policy kind `{}`", func.name),
                    func.span,
                    "not a policy",
                )
                .with_help(usage),
            );
            return;
        }
        let mut policy = Policy {
            name: name.name.clone(),
            inputs: vec![],
            outputs: vec![],
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            init: Init::Small,
        };
        let (mut has_in, mut has_out) = (false, false);
        for a in args {
            let Some(n) = &a.name else {
                self.error(
                    Diagnostic::error(
                        "joule::named_argument",
                        "`mlp` options are named",
                        a.value.span,
                        "unnamed",
                    )
                    .with_help(usage),
                );
                return;
            };
            match (n.name.as_str(), &a.value.kind) {
                ("inputs", ExprKind::List(items)) => {
                    has_in = true;
                    for it in items {
                        let found =
                            match &it.kind {
                                ExprKind::Name(o) => self.model.objectives.iter().position(|ob| {
                                    ob.kind == ObjectiveKind::Observe && &ob.name == o
                                }),
                                _ => None,
                            };
                        match found {
                            Some(i) => policy.inputs.push(i),
                            None => {
                                let names: Vec<String> = self
                                    .model
                                    .objectives
                                    .iter()
                                    .filter(|o| o.kind == ObjectiveKind::Observe)
                                    .map(|o| o.name.clone())
                                    .collect();
                                self.not_one_of(
                                    it.span,
                                    "an observation",
                                    "not an `observe` item",
                                    &names,
                                    "policy inputs are names of `observe` items declared before the policy",
                                );
                                return;
                            }
                        }
                    }
                }
                ("outputs", _) => {
                    has_out = true;
                    let mut ctx = Ctx::declaration();
                    match self.eval(&mut ctx, &a.value) {
                        Value::Control(c) => policy.outputs.push(c),
                        Value::Array(arr)
                            if self.arrays[arr as usize].kind == ArrayKind::Control =>
                        {
                            policy
                                .outputs
                                .extend(self.arrays[arr as usize].slots.iter().flatten());
                        }
                        Value::Poison => return,
                        v => {
                            self.error(
                                Diagnostic::error(
                                    "joule::type_mismatch",
                                    format!(
                                        "policy outputs must be a control, not {}",
                                        describe_value(&v)
                                    ),
                                    a.value.span,
                                    "not a control",
                                )
                                .with_help(usage),
                            );
                            return;
                        }
                    }
                }
                ("hidden", ExprKind::List(items)) => {
                    policy.hidden.clear();
                    let mut ctx = Ctx::declaration();
                    for it in items {
                        let v = self.eval(&mut ctx, it);
                        match self.as_int(&v, it.span, "a layer width") {
                            Some(w) if (1..=65536).contains(&w) => policy.hidden.push(w as usize),
                            Some(w) => {
                                self.err(
                                    "joule::invalid_value",
                                    "layer widths must be between 1 and 65536",
                                    it.span,
                                    format!("this is {w}"),
                                );
                                return;
                            }
                            None => return,
                        }
                    }
                }
                ("activation", ExprKind::Name(act)) => {
                    policy.activation = match act.as_str() {
                        "tanh" => Activation::Tanh,
                        "relu" => Activation::Relu,
                        "elu" => Activation::Elu,
                        "sigmoid" => Activation::Sigmoid,
                        "swish" => Activation::Swish,
                        "identity" => Activation::Identity,
                        other => {
                            let help = suggest(
                                other,
                                ["tanh", "relu", "elu", "sigmoid", "swish", "identity"].into_iter(),
                            )
                            .unwrap_or_else(|| {
                                "activations are tanh, relu, elu, sigmoid, swish, identity".into()
                            });
                            self.error(
                                Diagnostic::error(
                                    "joule::unknown_name",
                                    format!("unknown activation `{other}`"),
                                    a.value.span,
                                    "not an activation",
                                )
                                .with_help(help),
                            );
                            return;
                        }
                    }
                }
                ("init", ExprKind::Name(init)) => {
                    policy.init = match init.as_str() {
                        "small" => Init::Small,
                        "lecun" => Init::Lecun,
                        other => {
                            let help = suggest(other, ["small", "lecun"].into_iter())
                                .unwrap_or_else(|| {
                                    "initialisations are small (controls start mid-range) and lecun (Brax's)".into()
                                });
                            self.error(
                                Diagnostic::error(
                                    "joule::unknown_name",
                                    format!("unknown initialisation `{other}`"),
                                    a.value.span,
                                    "not an initialisation",
                                )
                                .with_help(help),
                            );
                            return;
                        }
                    }
                }
                (other, _) => {
                    let known = ["inputs", "outputs", "hidden", "activation", "init"];
                    let help = if known.contains(&other) {
                        usage.to_string()
                    } else {
                        suggest(other, known.into_iter()).unwrap_or_else(|| usage.to_string())
                    };
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            format!("invalid `mlp` option `{other}`"),
                            a.value.span,
                            "not valid here",
                        )
                        .with_help(help),
                    );
                    return;
                }
            }
        }
        if !(has_in && has_out) {
            self.error(
                Diagnostic::error(
                    "joule::missing_field",
                    "an `mlp` policy needs `inputs` and `outputs`",
                    value.span,
                    "missing options",
                )
                .with_help(usage),
            );
            return;
        }
        if self.define(name, Global::Policy) {
            self.model.policies.push(policy);
        }
    }
}
