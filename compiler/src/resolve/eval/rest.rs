//! `rest(...)`, `prev(...)` and `held(...)`: values at the rest
//! configuration (constant slots of a template, allocated in the symbolic
//! pass and filled per instance), reads of the previous state, and reads of
//! the held state (the step's solution, held fixed in its potential).

use super::*;

impl Resolver<'_> {
    pub(super) fn rest_or_prev(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        args: &[Arg],
        span: Span,
    ) -> Value {
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
        if name == "held" {
            if ctx.template.is_none() {
                self.err_help(
                    "joule::held_outside_energy",
                    "`held(...)` outside an energy",
                    span,
                    "only an energy's potential holds a value fixed",
                    "`held(e)` is `e` at the step's solution, held fixed while the step's potential is minimised (a force that is not a potential's, such as friction bounded by the step's own normal force); elsewhere write `e` itself",
                );
                return Value::Poison;
            }
            let was = ctx.held;
            ctx.held = true;
            let v = self.eval(ctx, arg);
            ctx.held = was;
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
            let mark = (t.sites.len(), t.const_names.len());
            let v = self.eval(ctx, arg);
            let v = self.check_rest_value(v, arg.span);
            if reads_param(&v) {
                // Again, its arguments' state reads as constant slots.
                let t = ctx.template.as_mut().expect("template");
                t.sites.truncate(mark.0);
                t.const_names.truncate(mark.1);
                return self.eval_rest_sites(ctx, arg);
            }
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
            let mark = (t.cursor, t.values.len());
            let v = self.eval(ctx, arg);
            if reads_param(&v) {
                let t = ctx.template.as_mut().expect("template");
                t.cursor = mark.0;
                t.values.truncate(mark.1);
                return self.eval_rest_sites(ctx, arg);
            }
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

    /// A template's `rest(arg)` whose value reads params: `arg` with its
    /// arguments' state reads as per-instance constants (their initial
    /// values, `rest_state_site`) and the params as inputs, so the rest
    /// value follows the params at run time.
    fn eval_rest_sites(&mut self, ctx: &mut Ctx, arg: &Expr) -> Value {
        let was = (ctx.rest_sites, ctx.initial);
        // Handles that are not arguments read their initial values.
        (ctx.rest_sites, ctx.initial) = (true, true);
        let v = self.eval(ctx, arg);
        (ctx.rest_sites, ctx.initial) = was;
        v
    }

    /// A value inside `rest(...)` may not depend on controls (params are
    /// read at run time: the rest value follows them).
    fn check_rest_value(&mut self, v: Value, span: Span) -> Value {
        let mut control = matches!(v, Value::Control(_) | Value::ArgControl(_));
        if let Value::Runtime(t) = &v {
            t.for_each_input(&mut |i| {
                control |= matches!(i, Input::Control(_) | Input::ArgControl(_));
            });
        }
        if !control {
            return v;
        }
        self.error(
            Diagnostic::error("joule::rest_runtime", "`rest(...)` depends on a control", span, "changes every step")
                .with_help("`rest(...)` is computed from the initial configuration (and the params); move the control outside: `(1 - u) * rest(norm(a.x - b.x))`"),
        );
        Value::Poison
    }

    /// Symbolic mode: allocates constant slots of `shape` and returns their term.
    pub(super) fn const_site(&mut self, ctx: &mut Ctx, shape: Shape, label: &str) -> Value {
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
}

/// Whether a value reads a param.
fn reads_param(v: &Value) -> bool {
    let mut param = false;
    if let Value::Runtime(t) = v {
        t.for_each_input(&mut |i| param |= matches!(i, Input::Param(_)));
    }
    param
}
