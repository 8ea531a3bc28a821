//! `reset` items: how an episode's start is drawn. Each entry sets (`=`) or
//! moves (`+=`) joint coordinates (`A.q`, all of them as `qpos`), joint
//! rates (`A.qdot`, `qvel`) or a param; its value is made of compile-time
//! numbers and draws, `uniform(lo, hi)` and `normal(mean, std)`, each a
//! slot of the model's [`Reset`] that the runtime fills per episode (read
//! as [`Input::Const`]). A `let` in a `reset` item is drawn once per
//! episode; an entry's scalar value is drawn anew for each component of its
//! target.

use super::eval::{input, lit, pack, to_term, Ctx};
use super::*;

/// What a reset may write, for diagnostics.
const TARGETS: &str = "a `reset` entry sets joint coordinates (`A.q`, or `qpos` for all of them), joint rates (`A.qdot`, `qvel`) or a `param`";

impl Resolver<'_> {
    /// Resolves one `reset` item into [`Model::reset`].
    pub(super) fn reset(&mut self, entries: &[ResetEntry]) {
        let mut ctx = Ctx::declaration();
        ctx.draws = true;
        for entry in entries {
            let first = self.model.reset.slots.len() as u32;
            match entry {
                ResetEntry::Let(l) => {
                    let v = self.eval(&mut ctx, &l.value);
                    let Some(value) = self.drawn_value(&v, l.value.span) else {
                        ctx.locals.push((l.name.name.clone(), Value::Poison));
                        continue;
                    };
                    let draws = first..self.model.reset.slots.len() as u32;
                    if draws.is_empty() {
                        // Known at compile time: nothing to draw.
                        ctx.locals.push((l.name.name.clone(), v));
                        continue;
                    }
                    let n = value.shape.size();
                    let at = self.model.reset.slots.len() as u32;
                    self.model.reset.slots.extend((0..n).map(|_| Slot::Let));
                    let bound = match value.shape {
                        Shape::Scalar => input(Input::Const(at)),
                        shape => pack(
                            shape,
                            (0..n as u32).map(|k| input(Input::Const(at + k))).collect(),
                        ),
                    };
                    ctx.locals
                        .push((l.name.name.clone(), Value::Runtime(bound)));
                    self.model.reset.steps.push(ResetStep {
                        target: ResetTarget::Let(at..at + n as u32),
                        add: false,
                        draws,
                        value,
                    });
                }
                ResetEntry::Set { target, add, value } => {
                    let Some(target) = self.reset_target(&mut ctx, target) else {
                        continue;
                    };
                    let v = self.eval(&mut ctx, value);
                    let Some(term) = self.drawn_value(&v, value.span) else {
                        continue;
                    };
                    let n = match &target {
                        ResetTarget::Pos(rows) | ResetTarget::Vel(rows) => rows.len(),
                        _ => 1,
                    };
                    let fits = term.shape == Shape::Scalar
                        || matches!(term.shape, Shape::Vec(k) if k as usize == n);
                    if !fits {
                        self.err_help(
                            "joule::type_mismatch",
                            format!(
                                "the target has {n} component{}, the value is {}",
                                if n == 1 { "" } else { "s" },
                                term.shape.name()
                            ),
                            value.span,
                            "does not fit the target",
                            "give a scalar (drawn anew for each component) or a vector of the target's length",
                        );
                        continue;
                    }
                    self.model.reset.steps.push(ResetStep {
                        target,
                        add: *add,
                        draws: first..self.model.reset.slots.len() as u32,
                        value: term,
                    });
                }
            }
        }
    }

    /// The term of a reset value: numbers and draws only.
    fn drawn_value(&mut self, v: &Value, span: Span) -> Option<Arc<Term>> {
        if matches!(v, Value::Poison) {
            return None;
        }
        let term = match v.shape() {
            Some(Shape::Scalar | Shape::Vec(_)) => to_term(v),
            _ => None,
        };
        let Some(term) = term else {
            self.err_help(
                "joule::type_mismatch",
                format!(
                    "a reset value is a number or a vector, not {}",
                    v.type_name()
                ),
                span,
                "not a number",
                "write numbers, constants and draws: `uniform(lo, hi)`, `normal(mean, std)`",
            );
            return None;
        };
        let mut reads = None;
        term.for_each_input(&mut |i| {
            if !matches!(i, Input::Const(_)) {
                reads = Some(i);
            }
        });
        if let Some(i) = reads {
            let what = match i {
                Input::Param(p) => {
                    format!("the parameter `{}`", self.model.params[p as usize].name)
                }
                Input::Control(_) | Input::ArgControl(_) => "a control".into(),
                _ => "the state".into(),
            };
            self.err_help(
                "joule::reset_value",
                format!("a reset value cannot read {what}"),
                span,
                "read at an episode's start",
                "a reset is drawn from constants: write the nominal value as a `const` and draw around it, e.g. `m = m0 * uniform(0.8, 1.2)`",
            );
            return None;
        }
        Some(term)
    }

    /// Where a reset entry writes.
    fn reset_target(&mut self, ctx: &mut Ctx, target: &Expr) -> Option<ResetTarget> {
        match &target.kind {
            ExprKind::Name(n) => match self.globals.get(n.as_str()).map(|(g, _)| g.clone()) {
                Some(Global::Param(p)) => return Some(ResetTarget::Param(p)),
                None if n == "qpos" || n == "qvel" => {
                    let rows: Vec<u32> = self
                        .model
                        .bodies
                        .iter()
                        .filter_map(|b| b.joint.as_ref())
                        .flat_map(Attachment::rows)
                        .collect();
                    if rows.is_empty() {
                        self.err_help(
                                "joule::joint",
                                format!("the scene has no joint coordinates, so no `{n}`"),
                                target.span,
                                "nothing to set",
                                "`qpos` and `qvel` are the coordinates and rates of every body's `joint = ..`",
                            );
                        return None;
                    }
                    return Some(if n == "qpos" {
                        ResetTarget::Pos(rows)
                    } else {
                        ResetTarget::Vel(rows)
                    });
                }
                _ => {}
            },
            ExprKind::Field { recv, name } if name.name == "q" || name.name == "qdot" => {
                let v = self.eval(ctx, recv);
                match v {
                    Value::Body(b) => return self.joint_rows(b, &name.name, target.span),
                    Value::Poison => return None,
                    _ => {}
                }
            }
            // An element of a param array, `w[k]`.
            ExprKind::Index { .. } => match self.eval(ctx, target) {
                Value::Runtime(t) => {
                    if let TermKind::Input(Input::Param(p)) = t.kind {
                        return Some(ResetTarget::Param(p));
                    }
                }
                Value::Poison => return None,
                _ => {}
            },
            _ => {}
        }
        self.err_help(
            "joule::reset_target",
            format!("cannot reset `{}`", self.snippet(target.span)),
            target.span,
            "not a joint coordinate, rate or param",
            TARGETS,
        );
        None
    }

    /// The state rows of body `b`'s joint coordinates (`q`) or rates.
    fn joint_rows(&mut self, b: u32, f: &str, span: Span) -> Option<ResetTarget> {
        let body = &self.model.bodies[b as usize];
        let rows = body.joint.as_ref().map_or(0..0, Attachment::rows);
        if rows.is_empty() {
            let name = body.name.clone();
            self.err_help(
                "joule::joint",
                format!("`{name}` has no joint coordinates, so no `.{f}` to reset"),
                span,
                "no joint coordinates",
                TARGETS,
            );
            return None;
        }
        let rows = rows.collect();
        Some(if f == "q" {
            ResetTarget::Pos(rows)
        } else {
            ResetTarget::Vel(rows)
        })
    }

    /// `uniform(lo, hi)` or `normal(mean, std)` in a `reset` item: `lo + (hi
    /// - lo) u` or `mean + std n` with `u`, `n` a new slot's standard variate.
    pub(super) fn draw(
        &mut self,
        ctx: &Ctx,
        func: &Ident,
        vals: &[Value],
        spans: &[Span],
        span: Span,
    ) -> Value {
        let name = func.name.as_str();
        if !ctx.draws {
            self.err_help(
                "joule::draw_outside_reset",
                format!("`{name}(...)` draws a random number; it can only appear in a `reset` item"),
                func.span,
                "not in a `reset` item",
                "draws make an episode's start: `reset { qpos += uniform(-0.1, 0.1) }`; a value known at compile time is a `const`",
            );
            return Value::Poison;
        }
        if !self.arity(func, 2, vals.len(), span) {
            return Value::Poison;
        }
        let mut args = [0.0; 2];
        for (k, (v, s)) in vals.iter().zip(spans).enumerate() {
            match v
                .tensor()
                .filter(|t| t.shape == Shape::Scalar && t.x().is_finite())
            {
                Some(t) => args[k] = t.x(),
                None => {
                    self.err_help(
                        "joule::draw_argument",
                        format!(
                            "`{name}` takes finite numbers known at compile time, not {}",
                            super::eval::describe_value(v)
                        ),
                        *s,
                        "not a finite compile-time number",
                        "write the bounds with numbers and `const`s",
                    );
                    return Value::Poison;
                }
            }
        }
        let (slot, offset, scale) = match name {
            "uniform" => (Slot::Uniform, args[0], args[1] - args[0]),
            _ => (Slot::Normal, args[0], args[1]),
        };
        if scale < 0.0 {
            let (what, help) = match slot {
                Slot::Uniform => ("`uniform(lo, hi)` needs lo <= hi", "swap the bounds"),
                _ => (
                    "`normal(mean, std)` needs std >= 0",
                    "a standard deviation is not negative",
                ),
            };
            self.err_help(
                "joule::draw_argument",
                what,
                span,
                "empty distribution",
                help,
            );
            return Value::Poison;
        }
        let k = self.model.reset.slots.len() as u32;
        self.model.reset.slots.push(slot);
        let scaled = Term::rc(
            Shape::Scalar,
            TermKind::Binary(
                crate::model::BinOp::Mul,
                lit(Tensor::scalar(scale)),
                input(Input::Const(k)),
            ),
        );
        Value::Runtime(Term::rc(
            Shape::Scalar,
            TermKind::Binary(
                crate::model::BinOp::Add,
                lit(Tensor::scalar(offset)),
                scaled,
            ),
        ))
    }
}
