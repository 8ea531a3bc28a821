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
