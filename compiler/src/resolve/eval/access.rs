//! Member access and indexing: fields of particles and bodies (`a.x`, `a.v`,
//! `a.R`, `a.w`, `a.mass`: state reads or initial values), of meshes
//! (`m.tets`, ...) and vectors (`v.z`), the body method `A.point(r)`, and
//! indexing of arrays (`a[i, j]`), meshes, elements, lists, vectors and
//! matrices.

use super::*;
use crate::math::quat_to_mat;

impl Resolver<'_> {
    pub(super) fn field(&mut self, ctx: &mut Ctx, recv: Value, name: &Ident, rspan: Span) -> Value {
        let f = name.name.as_str();
        match &recv {
            Value::Poison => Value::Poison,
            Value::ArgHandle { kind, .. } if ctx.rest_sites && state_field(*kind, f).is_some() => {
                self.rest_state_site(ctx, &recv, name, rspan)
            }
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
        } else if ctx.held {
            if matches!(f, "v" | "w" | "qdot") {
                self.err_help(
                    "joule::held_velocity",
                    format!("`held(...)` of a velocity (`.{f}`)"),
                    name.span,
                    "held values are positions",
                    "`held(...)` holds positions at the step's solution; write the velocity from positions, e.g. `(held(p.x) - prev(p.x)) / dt`",
                );
                return Value::Poison;
            }
            (State::Held, State::Vel)
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
            HandleKind::Body => &[
                "x", "R", "v", "w", "Rdot", "mass", "com", "inertia", "q", "qdot",
            ],
            _ => &[],
        };
        if !fields.contains(&f) {
            return self.unknown_field(h, name, fields);
        }
        // The mass distribution: per-instance constants (a slot in symbolic
        // mode, a value per instance).
        let shape = match f {
            "mass" => Some(Shape::Scalar),
            "com" => Some(Shape::Vec(3)),
            "inertia" => Some(Shape::Mat(3)),
            _ => None,
        };
        if let (Some(shape), true) = (shape, is_arg) {
            if let Some(t) = &ctx.template {
                if t.symbolic {
                    return self.const_site(ctx, shape, &format!("{}.{f}", self.snippet(rspan)));
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
        if (f == "q" || f == "qdot") && arg_at.is_some() {
            self.err_help(
                "joule::joint",
                format!("`.{f}` of a body parameter inside an energy or function is not supported yet"),
                name.span,
                "a joint coordinate of a template argument",
                "read the angle with `hinge_angle(A, B, axis)` (exact on jointed bodies), or read `.q` in `observe`, `reward`, `loss` and `done` items",
            );
            return Value::Poison;
        }
        if let Some((arg, kind, offset)) = arg_at {
            let base = DofAt::Arg { arg, offset };
            return match (kind, f) {
                (_, "x") => term_value(pack(Shape::Vec(3), dofs(base, 0, 3, pos))),
                (_, "v") => term_value(pack(Shape::Vec(3), dofs(base, 0, 3, vel))),
                (HandleKind::Body, "R") => term_value(pack(Shape::Mat(3), dofs(base, 3, 9, pos))),
                (HandleKind::Body, "Rdot") => {
                    term_value(pack(Shape::Mat(3), dofs(base, 3, 9, vel)))
                }
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
                        if let Some(v) = self.param_mass(true, p, is_arg, f, name.span) {
                            return v;
                        }
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
                if shape.is_some() {
                    if let Some(v) = self.param_mass(false, b, is_arg, f, name.span) {
                        return v;
                    }
                }
                let body = &self.model.bodies[b as usize];
                if let Some(shape) = shape {
                    let value = match f {
                        "mass" => Tensor::scalar(body.mass),
                        "com" => Tensor::new(shape, &body.mass_props().com),
                        _ => Tensor::new(shape, body.mass_props().inertia.as_flattened()),
                    };
                    if is_arg {
                        let t = ctx.template.as_mut().expect("instance mode");
                        t.cursor += 1;
                        t.values.extend_from_slice(value.comps());
                    }
                    return known(value);
                }
                if f == "q" || f == "qdot" {
                    let state = if f == "q" { pos } else { vel };
                    return self.joint_coordinates(ctx, b, f, state, name.span);
                }
                let r0 = quat_to_mat(body.rotation);
                match (ctx.initial, body.dof) {
                    (false, Some(d)) => match f {
                        "x" => term_value(pack(Shape::Vec(3), dofs(DofAt::Global(d), 0, 3, pos))),
                        "v" => term_value(pack(Shape::Vec(3), dofs(DofAt::Global(d), 0, 3, vel))),
                        "R" => term_value(pack(Shape::Mat(3), dofs(DofAt::Global(d), 3, 9, pos))),
                        "Rdot" => {
                            term_value(pack(Shape::Mat(3), dofs(DofAt::Global(d), 3, 9, vel)))
                        }
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
                            "Rdot" => {
                                // [w]x R, column by column.
                                let w = if moving { body.w } else { zero };
                                known(Tensor::new(
                                    Shape::Mat(3),
                                    &std::array::from_fn::<f64, 9, _>(|k| {
                                        let (c, i) = (k / 3, k % 3);
                                        let (a, b) = ((i + 1) % 3, (i + 2) % 3);
                                        w[a] * r0[3 * c + b] - w[b] * r0[3 * c + a]
                                    }),
                                ))
                            }
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

    /// A template argument's state read inside a `rest(...)` that reads
    /// params: a constant slot in symbolic mode, the instance's initial
    /// value (recorded for that slot) in instance mode.
    fn rest_state_site(&mut self, ctx: &mut Ctx, h: &Value, name: &Ident, rspan: Span) -> Value {
        let Value::ArgHandle { kind, .. } = h else {
            unreachable!("an argument's field")
        };
        let shape = state_field(*kind, &name.name).expect("a state field");
        let symbolic = ctx.template.as_ref().is_some_and(|t| t.symbolic);
        if symbolic {
            let label = format!("rest({}.{})", self.snippet(rspan), name.name);
            return self.const_site(ctx, shape, &label);
        }
        ctx.rest_sites = false;
        let v = self.handle_field(ctx, h, name, rspan);
        ctx.rest_sites = true;
        let t = ctx.template.as_mut().expect("instance mode");
        t.cursor += 1;
        match v.tensor() {
            Some(value) => t.values.extend_from_slice(value.comps()),
            // Its diagnostic is reported; the slot keeps its place.
            None => t.values.extend(std::iter::repeat_n(0.0, shape.size())),
        }
        v
    }

    /// `A.q` / `A.qdot` of a concrete body: its joints' coordinates (or
    /// their velocities) as a scalar (one coordinate) or a vector (2 to 4).
    fn joint_coordinates(&mut self, ctx: &Ctx, b: u32, f: &str, state: State, span: Span) -> Value {
        let body = &self.model.bodies[b as usize];
        let name = body.name.clone();
        let Some(att) = &body.joint else {
            self.err_help(
                "joule::joint",
                format!("`{name}` has no joint, so no `.{f}`"),
                span,
                "not a jointed body",
                "`.q` and `.qdot` are the coordinates of a body's `joint = ..` (hinge angle, slider offset, ball rotation vector)",
            );
            return Value::Poison;
        };
        let n = att.coordinates() as usize;
        let free = att.joints.iter().any(|j| j.kind == JointKind::Free);
        if n == 0 || n > 4 || free {
            self.err_help(
                "joule::joint",
                format!("`{name}`'s joint has {n} coordinates; `.{f}` reads 1 to 4 of a hinge, slider or ball"),
                span,
                "no coordinate vector",
                if free {
                    "a free body's coordinates are its pose: read `A.x`, `orientation(A)`, `A.v` and `A.w`"
                } else {
                    "a weld has no coordinates"
                },
            );
            return Value::Poison;
        }
        let shape = if n == 1 {
            Shape::Scalar
        } else {
            Shape::Vec(n as u8)
        };
        if ctx.initial {
            return known(Tensor::new(shape, &[0.0; 4][..n]));
        }
        let comps: Vec<Arc<Term>> = (0..n as u32)
            .map(|k| {
                input(Input::Dof {
                    at: DofAt::Global(att.coord + k),
                    state,
                })
            })
            .collect();
        if n == 1 {
            term_value(comps[0].clone())
        } else {
            term_value(pack(shape, comps))
        }
    }

    pub(super) fn method(
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

    pub(super) fn index(
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
            // In 128 bits: `i - lo` may not fit 64 (it fits `hi - lo`, a length).
            return Some((i128::from(i) - i128::from(lo)) as usize);
        }
        let what = what(self);
        self.error(
            Diagnostic::error(
                "joule::index_out_of_range",
                format!("index {i} is out of range for {what}"),
                span,
                format!(
                    "valid indices are {lo}..{hi} (up to {})",
                    i128::from(hi) - 1
                ),
            )
            .with_help("ranges are half-open: `0..N` stops at `N - 1`"),
        );
        None
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

/// The shape of a particle's or body's state field `f` (`None`: not a
/// state field of that kind).
fn state_field(kind: HandleKind, f: &str) -> Option<Shape> {
    match (kind, f) {
        (HandleKind::Particle | HandleKind::Body, "x" | "v") => Some(Shape::Vec(3)),
        (HandleKind::Body, "w") => Some(Shape::Vec(3)),
        (HandleKind::Body, "R" | "Rdot") => Some(Shape::Mat(3)),
        _ => None,
    }
}
