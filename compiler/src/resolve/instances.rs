//! Energy instances: each `TEMPLATE(args) for gens` item is expanded; instances
//! are grouped into templates by how their arguments bind (handles, controls and
//! constants are per-instance data; runtime expressions and `int`/`bool`
//! arguments specialise the code), and `rest(...)` is evaluated per instance.

use super::eval::{describe_value, fits_type, input, pack, Ctx, TemplateCtx};
use super::value::{HandleKind, Value};
use super::{suggest, Global, Resolver};
use crate::model::*;
// The model's kind, not the AST's (converted where the template is built).
use crate::model::EnergyKind;
use joule_grammar::ast::*;
use joule_grammar::Diagnostic;
use std::sync::Arc;

/// How one argument enters the template key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum KeyArg {
    /// Per-instance data (handle, control, compile-time number).
    Data,
    /// Shared runtime expression.
    Runtime(Arc<Term>),
    /// Specialised compile-time `int`/`bool`.
    Static(Value),
}

/// Resolver-side bookkeeping of one template.
pub(super) struct TemplateInfo {
    energy: usize,
    key: Vec<KeyArg>,
    /// Constant sites recorded by the symbolic pass, replayed per instance.
    sites: Vec<Option<Shape>>,
    /// Symbolic evaluation failed; instances are skipped.
    failed: bool,
}

fn handle_kind(ty: &str) -> Option<HandleKind> {
    Some(match ty {
        "particle" => HandleKind::Particle,
        "body" => HandleKind::Body,
        "tet" => HandleKind::Tet,
        "tri" => HandleKind::Tri,
        "edge" => HandleKind::Edge,
        _ => return None,
    })
}

impl Resolver<'_> {
    pub(super) fn instances(
        &mut self,
        template: &Ident,
        args: &[Arg],
        gens: Option<&Generators>,
        span: Span,
    ) {
        let eid = match self.globals.get(&template.name) {
            Some((Global::Energy(e), _)) => *e,
            other => {
                let what = other.map(|(g, _)| g.describe());
                let energies: Vec<&str> =
                    self.energies.iter().map(|e| e.name.name.as_str()).collect();
                let help = match what {
                    Some(w) => format!(
                        "`{}` is {w}; only energies and dissipations have instances",
                        template.name
                    ),
                    None => {
                        suggest(&template.name, energies.iter().copied()).unwrap_or_else(|| {
                            "define it first with `energy NAME(args) = expr`".into()
                        })
                    }
                };
                self.error(
                    Diagnostic::error(
                        "joule::unknown_name",
                        format!("unknown energy `{}`", template.name),
                        template.span,
                        "not an energy",
                    )
                    .with_help(help),
                );
                return;
            }
        };
        let def = self.energies[eid].clone();
        for p in &def.params {
            match &p.ty {
                Some(ty) => {
                    if !self.check_type_name(ty) {
                        return;
                    }
                }
                None => {
                    self.error(
                        Diagnostic::error("joule::missing_type", format!("argument `{}` of energy `{}` has no type", p.name.name, def.name.name), p.name.span, "type missing")
                            .with_help(format!("write `{}: particle` (or body, tet, tri, edge, control, scalar, vec3, ...)", p.name.name)),
                    );
                    return;
                }
            }
        }
        let Some(ordered) = self.order_args(&def, args, span) else {
            return;
        };
        let mut ctx = Ctx::runtime();
        let mut failed = false;
        let mut each = |r: &mut Self, ctx: &mut Ctx| {
            if failed {
                return;
            }
            let before = r.diags.len();
            let vals: Vec<Value> = ordered.iter().map(|e| r.eval(ctx, e)).collect();
            if r.diags.len() > before || !r.instance(eid, &def, &vals, &ordered) {
                failed = true;
            }
        };
        match gens {
            Some(g) => self.expand(&mut ctx, g, &mut each),
            None => each(self, &mut ctx),
        }
    }

    /// Positional then named arguments, in parameter order.
    fn order_args<'a>(
        &mut self,
        def: &EnergyDef,
        args: &'a [Arg],
        span: Span,
    ) -> Option<Vec<&'a Expr>> {
        let mut slots: Vec<Option<&Expr>> = vec![None; def.params.len()];
        for (i, a) in args.iter().enumerate() {
            let k = match &a.name {
                None if i < slots.len() => i,
                None => {
                    self.arity_error(def, args.len(), span);
                    return None;
                }
                Some(n) => match def.params.iter().position(|p| p.name.name == n.name) {
                    Some(k) => k,
                    None => {
                        let names = def.params.iter().map(|p| p.name.name.as_str());
                        let help = suggest(&n.name, names).unwrap_or_else(|| {
                            format!(
                                "its arguments are {}",
                                def.params
                                    .iter()
                                    .map(|p| format!("`{}`", p.name.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                        self.error(
                            Diagnostic::error(
                                "joule::unknown_field",
                                format!("`{}` has no argument `{}`", def.name.name, n.name),
                                n.span,
                                "unknown argument",
                            )
                            .with_help(help),
                        );
                        return None;
                    }
                },
            };
            if slots[k].replace(&a.value).is_some() {
                self.err(
                    "joule::duplicate_name",
                    format!("argument `{}` is given twice", def.params[k].name.name),
                    a.value.span,
                    "given again",
                );
                return None;
            }
        }
        if slots.iter().any(Option::is_none) {
            self.arity_error(def, args.len(), span);
            return None;
        }
        Some(slots.into_iter().map(|s| s.expect("checked")).collect())
    }

    fn arity_error(&mut self, def: &EnergyDef, got: usize, span: Span) {
        let sig = def
            .params
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.name.name,
                    p.ty.as_ref().map_or("?", |t| t.name.as_str())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.error(
            Diagnostic::error(
                "joule::arity",
                format!(
                    "`{}` takes {} argument{}, but {got} {} given",
                    def.name.name,
                    def.params.len(),
                    if def.params.len() == 1 { "" } else { "s" },
                    if got == 1 { "was" } else { "were" }
                ),
                span,
                "wrong number of arguments",
            )
            .with_label(
                def.name.span,
                format!("defined as `{}({sig})`", def.name.name),
            )
            .with_help(format!(
                "give one value per parameter, in order: `{}({sig})`",
                def.name.name
            )),
        );
    }

    /// Adds one instance; false after an error.
    pub(super) fn instance(
        &mut self,
        eid: usize,
        def: &EnergyDef,
        vals: &[Value],
        exprs: &[&Expr],
    ) -> bool {
        let mut key = vec![];
        for ((p, v), e) in def.params.iter().zip(vals).zip(exprs) {
            let ty = p.ty.as_ref().expect("types checked").name.as_str();
            let ok = fits_type(v, ty);
            if !ok {
                let mut d = Diagnostic::error(
                    "joule::type_mismatch",
                    format!(
                        "argument `{}` of `{}` must be {}, but this is {}",
                        p.name.name,
                        def.name.name,
                        article(ty),
                        describe_value(v)
                    ),
                    e.span,
                    format!("expected {ty}"),
                )
                .with_label(p.name.span, "declared here");
                d = d.with_help(
                    if ty == "particle" && matches!(v.shape(), Some(Shape::Vec(3))) {
                        "pass the particle itself, not its position: `p`, not `p.x`".to_string()
                    } else {
                        format!(
                            "pass {} here, as `{}` declares its argument `{}`",
                            article(ty),
                            def.name.name,
                            p.name.name
                        )
                    },
                );
                self.error(d);
                return false;
            }
            key.push(match (ty, v) {
                ("int" | "bool", v) => KeyArg::Static(v.clone()),
                (_, Value::Runtime(t)) => KeyArg::Runtime(t.clone()),
                (_, Value::Control(c)) if ty != "control" => {
                    KeyArg::Runtime(input(Input::Control(*c)))
                }
                _ => KeyArg::Data,
            });
        }
        // Bodies sharing an instance (joints) are `connected`: `may_touch` skips them.
        let bodies: Vec<u32> = vals
            .iter()
            .filter_map(|v| {
                if let Value::Body(b) = v {
                    Some(*b)
                } else {
                    None
                }
            })
            .collect();
        for (i, a) in bodies.iter().enumerate() {
            for b in &bodies[i + 1..] {
                self.connected.insert(((*a).min(*b), (*a).max(*b)));
            }
        }
        let tid = match self
            .tinfo
            .iter()
            .position(|t| t.energy == eid && t.key == key)
        {
            Some(t) => t,
            None => self.new_template(eid, def, vals, key),
        };
        if self.tinfo[tid].failed {
            return false;
        }
        self.add_instance(tid, def, vals)
    }

    /// The bindings of a template's arguments (handles symbolic; constants as slots or values).
    fn bindings(
        &self,
        def: &EnergyDef,
        vals: &[Value],
        symbolic: bool,
    ) -> (Vec<(String, Value)>, Vec<String>) {
        let mut locals = vec![];
        let mut const_names = vec![];
        for (i, (p, v)) in def.params.iter().zip(vals).enumerate() {
            let ty = p.ty.as_ref().expect("typed").name.as_str();
            let name = p.name.name.clone();
            let bound = match (handle_kind(ty), v) {
                (Some(kind), _) => Value::ArgHandle {
                    arg: i as u16,
                    kind,
                    offset: 0,
                },
                (None, Value::Control(_)) if ty == "control" => Value::ArgControl(i as u16),
                (None, Value::Int(_) | Value::Bool(_)) if ty == "int" || ty == "bool" => v.clone(),
                (None, Value::Int(_) | Value::Num(_)) if symbolic => {
                    let shape = v.shape().expect("numeric");
                    let first = const_names.len() as u32;
                    let n = shape.size();
                    for k in 0..n {
                        const_names.push(if n == 1 {
                            name.clone()
                        } else {
                            format!("{name}[{k}]")
                        });
                    }
                    let comps: Vec<_> = (0..n as u32)
                        .map(|k| input(Input::Const(first + k)))
                        .collect();
                    Value::Runtime(if n == 1 {
                        comps[0].clone()
                    } else {
                        pack(shape, comps)
                    })
                }
                _ => v.clone(),
            };
            locals.push((name, bound));
        }
        (locals, const_names)
    }

    fn new_template(
        &mut self,
        eid: usize,
        def: &EnergyDef,
        vals: &[Value],
        key: Vec<KeyArg>,
    ) -> usize {
        let (locals, const_names) = self.bindings(def, vals, true);
        let mut ctx = Ctx::template(TemplateCtx {
            symbolic: true,
            bound: vec![],
            sites: vec![],
            cursor: 0,
            const_names,
            values: vec![],
        });
        ctx.locals = locals;
        let before = self.diags.len();
        let body = self.eval(&mut ctx, &def.body);
        let body = self.energy_term(body, &def.body, def);
        let backward = def.backward.as_ref().map(|b| {
            let v = self.eval(&mut ctx, b);
            self.energy_term(v, b, def)
        });
        let failed = self.diags.len() > before;
        let t = ctx.template.take().expect("template context");
        let args = def
            .params
            .iter()
            .zip(vals)
            .zip(&key)
            .map(|((p, v), k)| {
                let ty = p.ty.as_ref().expect("typed").name.as_str();
                let binding = match (handle_kind(ty), k) {
                    (Some(kind), _) => ArgBinding::Handle {
                        kind: kind.name(),
                        width: kind.width(),
                    },
                    (None, KeyArg::Runtime(term)) => ArgBinding::Runtime(term.clone()),
                    (None, KeyArg::Static(v)) => ArgBinding::Static(match v {
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => String::new(),
                    }),
                    (None, KeyArg::Data) if ty == "control" => ArgBinding::Control,
                    (None, KeyArg::Data) => ArgBinding::Const {
                        shape: v.shape().unwrap_or(Shape::Scalar),
                        first: 0,
                    },
                };
                TemplateArg {
                    name: p.name.name.clone(),
                    binding,
                }
            })
            .collect::<Vec<_>>();
        // Number constant slots of constant arguments in order.
        let mut next = 0u32;
        let args = args
            .into_iter()
            .map(|mut a| {
                if let ArgBinding::Const { shape, first } = &mut a.binding {
                    *first = next;
                    next += shape.size() as u32;
                }
                a
            })
            .collect::<Vec<_>>();
        // Free rows read by name: after the arguments' in the DOF table.
        let mut globals = vec![];
        for t in body.iter().chain(backward.iter().flatten()) {
            t.for_each_input(&mut |i| {
                if let Input::Dof {
                    at: DofAt::Global(r),
                    ..
                } = i
                {
                    globals.push(r);
                }
            });
        }
        globals.sort_unstable();
        globals.dedup();
        let dof_width = args
            .iter()
            .map(|a| {
                if let ArgBinding::Handle { width, .. } = a.binding {
                    width as usize
                } else {
                    0
                }
            })
            .sum::<usize>()
            + globals.len();
        let control_width = args
            .iter()
            .filter(|a| a.binding == ArgBinding::Control)
            .count();
        let spec = self.tinfo.iter().filter(|t| t.energy == eid).count();
        let name = if spec == 0 {
            def.name.name.clone()
        } else {
            format!("{}#{spec}", def.name.name)
        };
        let lit0 = || Term::rc(Shape::Scalar, TermKind::Lit(Tensor::scalar(0.0)));
        self.model.templates.push(Template {
            name,
            kind: def.kind.into(),
            args,
            const_names: t.const_names,
            body: body.unwrap_or_else(lit0),
            backward: backward.map(|b| b.unwrap_or_else(lit0)),
            dofs: vec![],
            dof_width,
            globals,
            controls: vec![],
            control_width,
            consts: vec![],
            count: 0,
            span: def.name.span,
        });
        self.tinfo.push(TemplateInfo {
            energy: eid,
            key,
            sites: t.sites,
            failed,
        });
        self.tinfo.len() - 1
    }

    /// An energy body must be a scalar.
    fn energy_term(&mut self, v: Value, e: &Expr, def: &EnergyDef) -> Option<Arc<Term>> {
        let what = match EnergyKind::from(def.kind) {
            EnergyKind::Energy => "an energy",
            EnergyKind::Dissipation => "a dissipation potential",
        };
        match (&v, super::eval::to_term(&v)) {
            (Value::Poison, _) => None,
            (_, Some(t)) if t.shape == Shape::Scalar => Some(t),
            _ => {
                let mut d = Diagnostic::error(
                    "joule::type_mismatch",
                    format!(
                        "`{}` is {what}, so it must be a scalar, but its value is {}",
                        def.name.name,
                        describe_value(&v)
                    ),
                    e.span,
                    format!("this is {}", describe_value(&v)),
                );
                if matches!(v.shape(), Some(Shape::Vec(_))) {
                    d = d.with_help(
                        "energies are scalars: use `dot(d, d)` or `norm(d)^2` for a squared length",
                    );
                }
                self.error(d);
                None
            }
        }
    }

    fn add_instance(&mut self, tid: usize, def: &EnergyDef, vals: &[Value]) -> bool {
        let mut dofs = vec![];
        let mut controls = vec![];
        let mut consts = vec![];
        for (p, v) in def.params.iter().zip(vals) {
            let ty = p.ty.as_ref().expect("typed").name.as_str();
            match v {
                Value::Particle(id) => self.push_particle(*id, &mut dofs),
                Value::Element(kind, vs) => vs[..kind.vertices()]
                    .iter()
                    .for_each(|id| self.push_particle(*id, &mut dofs)),
                Value::Body(b) => {
                    let body = &self.model.bodies[*b as usize];
                    let r = crate::math::quat_to_mat(body.rotation);
                    let init: Vec<f64> = body.x.iter().chain(r.iter()).copied().collect();
                    dofs.extend(init.iter().enumerate().map(|(k, x)| match body.dof {
                        Some(d) => DofRef::Free(d + k as u32),
                        None => DofRef::Fixed(*x),
                    }));
                }
                Value::Control(c) if ty == "control" => controls.push(*c),
                Value::Int(_) | Value::Num(_) if ty != "int" && ty != "bool" => {
                    consts.extend_from_slice(v.tensor().expect("numeric").comps());
                }
                _ => {}
            }
        }
        let globals = &self.model.templates[tid].globals;
        dofs.extend(globals.iter().map(|&r| DofRef::Free(r)));
        let sites = &self.tinfo[tid].sites;
        if sites.iter().any(Option::is_some) {
            let (locals, _) = self.bindings(def, vals, false);
            self.instance_eval = true;
            let mut ctx = Ctx::template(TemplateCtx {
                symbolic: false,
                bound: vals.to_vec(),
                sites: sites.clone(),
                cursor: 0,
                const_names: vec![],
                values: vec![],
            });
            ctx.locals = locals;
            let before = self.diags.len();
            self.eval(&mut ctx, &def.body);
            if let Some(b) = &def.backward {
                self.eval(&mut ctx, b);
            }
            self.instance_eval = false;
            if self.diags.len() > before {
                return false;
            }
            let rest = ctx.template.take().expect("template context").values;
            if let Some(bad) = rest.iter().position(|x| !x.is_finite()) {
                let t = &self.model.templates[tid];
                let name = t.const_names[consts.len() + bad].clone();
                self.error(
                    Diagnostic::error("joule::invalid_value", format!("`{name}` is not finite for instance {} of `{}`", t.count, t.name), def.body.span, "evaluated at the rest configuration")
                        .with_help("two particles of this instance probably coincide in the initial configuration"),
                );
                return false;
            }
            consts.extend(rest);
        }
        let t = &mut self.model.templates[tid];
        debug_assert_eq!(consts.len(), t.const_names.len());
        t.dofs.extend(dofs);
        t.controls.extend(controls);
        t.consts.extend(consts);
        t.count += 1;
        true
    }

    fn push_particle(&self, id: u32, dofs: &mut Vec<DofRef>) {
        let p = &self.model.particles[id as usize];
        dofs.extend((0..3).map(|k| match p.dof {
            Some(d) => DofRef::Free(d + k),
            None => DofRef::Fixed(p.x[k as usize]),
        }));
    }
}

pub(super) fn article(ty: &str) -> String {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {ty}")
    } else {
        format!("a {ty}")
    }
}
