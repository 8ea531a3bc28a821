//! Generators: expanding `for` clauses (ranges, collections, guards) with a
//! size limit checked before expansion, for items and declarations, and
//! `sum(... for ...)` expressions.

use super::super::ArrayKind;
use super::*;

impl Resolver<'_> {
    /// Expands generators, calling `f` for each combination that passes the guard.
    pub(in crate::resolve) fn expand(
        &mut self,
        ctx: &mut Ctx,
        gens: &Generators,
        f: &mut dyn FnMut(&mut Self, &mut Ctx),
    ) {
        // Size check before expansion, where the ranges do not depend on each
        // other, of the product with the enclosing generators' sizes.
        let (before, budget) = (self.diags.len(), self.budget);
        let mut estimate: u64 = 1;
        let mut exact = true;
        for g in &gens.gens {
            match self.gen_values(ctx, g) {
                Some(v) => estimate = estimate.saturating_mul(v.len() as u64),
                None => exact = false,
            }
        }
        // Errors here are reported (once) by the expansion itself.
        self.diags.truncate(before);
        self.budget.spent = budget.spent;
        let outer = self.budget.nesting;
        let nested = outer.saturating_mul(estimate);
        if exact && nested > MAX_EXPANSION {
            self.too_large(gens.span, nested);
            return;
        }
        let mut count = 0u64;
        let depth = ctx.locals.len();
        if exact {
            self.budget.nesting = nested;
        }
        self.expand_from(ctx, gens, 0, &mut count, f);
        self.budget.nesting = outer;
        ctx.locals.truncate(depth);
    }

    fn too_large(&mut self, span: Span, n: u64) {
        self.budget.spent = true;
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
            return !self.budget.spent; // a limit hit inside stops the expansion
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
                // In 128 bits: `h - l` may not fit 64.
                let n = (i128::from(h) - i128::from(l)).max(0);
                if n > i128::from(MAX_EXPANSION) {
                    self.too_large(g.span, u64::try_from(n).unwrap_or(u64::MAX));
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

    pub(super) fn array_element(&self, a: u32, id: u32) -> Value {
        match self.arrays[a as usize].kind {
            ArrayKind::Particle => Value::Particle(id),
            ArrayKind::Body => Value::Body(id),
            ArrayKind::Control => Value::Control(id),
            ArrayKind::Param => Value::Runtime(super::input(Input::Param(id))),
        }
    }

    pub(super) fn sum(
        &mut self,
        ctx: &mut Ctx,
        body: &Expr,
        gens: &Generators,
        span: Span,
    ) -> Value {
        let mut acc: Option<Value> = None;
        self.expand(ctx, gens, &mut |r, ctx| {
            let v = r.eval(ctx, body);
            let sum = match acc.take() {
                None => v,
                Some(a) => r.binary(BinOp::Add, a, v, span, span, body.span),
            };
            // Checked as each term is added, so an over-long sum stops there.
            acc = Some(match sum {
                Value::Runtime(t) if r.term_too_large(&t, span) => Value::Poison,
                v => v,
            });
        });
        acc.unwrap_or(Value::Int(0))
    }
}
