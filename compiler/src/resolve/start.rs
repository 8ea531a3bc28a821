//! Particles' and bodies' fields that read parameters. Initial-state fields
//! are checked once the DOFs are numbered (a fixed particle or body has no
//! state rows to start; a jointed body starts at its joints' coordinates, so
//! only a free joint's origin and velocities can follow a parameter). A mass
//! that reads parameters keeps its value at the declared parameters in the
//! mass matrix; in an implicit step the difference is an energy, the
//! prelude's `added_mass` or `added_body_mass`, whose inertia term makes the
//! step's exactly the true mass's (and is differentiated like any energy);
//! an explicit step scales the owner's accelerations at run time, and a
//! step in joint coordinates a link's inertia (`Model::masses`). A gravity that reads parameters adds the weight of its
//! difference from the declared gravity (`added_weight`).

use super::eval::{binary, lit, term_value};
use super::value::Value;
use super::Resolver;
use crate::model::{
    BinOp, Builtin, Input, JointKind, MassField, Shape, StartKey, Tensor, Term, TermKind,
};
use joule_grammar::ast::{Expr, ExprKind, Span};
use joule_grammar::Diagnostic;
use std::sync::Arc;

/// A particle's or body's mass that reads parameters.
#[derive(Debug, Clone)]
pub(super) struct ParamMass {
    /// Whether the owner is a particle (else a body).
    pub(super) particle: bool,
    /// The particle or body.
    pub(super) owner: u32,
    /// The mass.
    pub(super) mass: Arc<Term>,
    /// Its value at the declared parameters (the mass matrix's).
    pub(super) declared: f64,
    /// The `mass` or `density` field's value.
    pub(super) span: Span,
    /// A body's centre of mass and inertia tensor (about it, body axes,
    /// column-major) where they read params; `None`: the distribution
    /// scales with the mass.
    pub(super) distribution: Option<(Arc<Term>, Arc<Term>)>,
}

impl ParamMass {
    /// The stiffness of its body's `rigidity`, `gamma / h^2` times its
    /// largest second moment (`implicit`; else the smallest), which the
    /// declared distribution gives as `declared_k`: scaled with the mass, or
    /// from the `com` and `inertia` that read params
    /// (`m c_j^2 + tr(I)/2 - I_jj`).
    pub(super) fn rigidity(
        &self,
        declared_k: f64,
        gamma_over_h2: f64,
        implicit: bool,
    ) -> Arc<Term> {
        let Some((com, tensor)) = &self.distribution else {
            return binary(
                BinOp::Mul,
                Shape::Scalar,
                lit(Tensor::scalar(declared_k / self.declared)),
                self.mass.clone(),
            );
        };
        let get = |t: &Arc<Term>, k: u8| Term::rc(Shape::Scalar, TermKind::Get(t.clone(), k));
        let trace = Term::rc(
            Shape::Scalar,
            TermKind::Call(Builtin::Trace, vec![tensor.clone()]),
        );
        let half = binary(BinOp::Mul, Shape::Scalar, lit(Tensor::scalar(0.5)), trace);
        let moment = |j: u8| {
            let c = get(com, j);
            let cc = binary(BinOp::Mul, Shape::Scalar, c.clone(), c);
            let mcc = binary(BinOp::Mul, Shape::Scalar, self.mass.clone(), cc);
            let s_c = binary(BinOp::Sub, Shape::Scalar, half.clone(), get(tensor, 4 * j));
            binary(BinOp::Add, Shape::Scalar, mcc, s_c)
        };
        let pick = if implicit { Builtin::Max } else { Builtin::Min };
        let two = |a, b| Term::rc(Shape::Scalar, TermKind::Call(pick, vec![a, b]));
        let extreme = two(moment(0), two(moment(1), moment(2)));
        binary(
            BinOp::Mul,
            Shape::Scalar,
            lit(Tensor::scalar(gamma_over_h2)),
            extreme,
        )
    }
}

impl Resolver<'_> {
    /// Refuses the start fields the state cannot follow.
    pub(super) fn check_start(&mut self) {
        for k in 0..self.model.start.len() {
            let f = &self.model.start[k];
            let (key, span) = (f.key, f.span);
            let why = if f.particle {
                let p = &self.model.particles[f.owner as usize];
                p.dof.is_none().then(|| {
                    (
                        format!("particle `{}` is fixed", p.name),
                        "a fixed particle stays where it is declared; fix it at a compile-time position, or leave it free and hold it with an energy whose anchor reads the parameter",
                    )
                })
            } else {
                let b = &self.model.bodies[f.owner as usize];
                let free = b
                    .joint
                    .as_ref()
                    .is_none_or(|a| matches!(a.joints[..], [ref j] if j.kind == JointKind::Free));
                if b.dof.is_none() {
                    Some((
                        format!("body `{}` is fixed", b.name),
                        "a fixed body stays where it is declared; give it a compile-time pose",
                    ))
                } else if matches!(key, StartKey::Q | StartKey::Qdot) {
                    // Checked where they are declared.
                    None
                } else if !free {
                    Some((
                        format!("body `{}` hangs in a joint tree", b.name),
                        "a jointed body's initial pose defines its joints' frames and is known at compile time; only a `free` joint's `x`, `rotation`, `v` and `w` may read parameters (other joints start away from it by `q` and `qdot`)",
                    ))
                } else {
                    None
                }
            };
            if let Some((what, help)) = why {
                self.error(
                    Diagnostic::error(
                        "joule::runtime_in_const",
                        format!("`{}` cannot read a parameter here: {what}", key.name()),
                        span,
                        "reads a parameter",
                    )
                    .with_help(help),
                );
            }
        }
    }
}

impl Resolver<'_> {
    /// `.mass`, `.com` or `.inertia` of a particle or body whose mass or mass
    /// distribution reads parameters (`None` when it does not, and for
    /// `.com` when only the mass does): the runtime values read directly, an
    /// error through an energy's argument (whose per-instance constants are
    /// numbers).
    pub(super) fn param_mass(
        &mut self,
        particle: bool,
        owner: u32,
        is_arg: bool,
        field: &str,
        span: Span,
    ) -> Option<Value> {
        let pm = self
            .param_masses
            .iter()
            .find(|m| m.particle == particle && m.owner == owner)?
            .clone();
        // The centre of mass does not move with the mass alone.
        if field == "com" && pm.distribution.is_none() {
            return None;
        }
        if is_arg {
            let name = if particle {
                &self.model.particles[owner as usize].name
            } else {
                &self.model.bodies[owner as usize].name
            };
            self.error(
                Diagnostic::error(
                    "joule::runtime_in_const",
                    format!("`.{field}` of `{name}` reads a parameter, which an energy's argument cannot carry"),
                    span,
                    "its mass reads a parameter",
                )
                .with_label(pm.span, "the mass")
                .with_help("pass the value to the energy as an argument instead (`weight(ball, m)` with the `param m` the mass reads)"),
            );
            return Some(Value::Poison);
        }
        let body = (!particle).then(|| self.model.bodies[owner as usize].mass_props());
        Some(match (field, body, &pm.distribution) {
            ("mass", ..) => term_value(pm.mass.clone()),
            ("com", _, Some((com, _))) => term_value(com.clone()),
            (_, _, Some((_, tensor))) => term_value(tensor.clone()),
            // The distribution scales with the mass.
            (_, Some(p), None) => {
                let scale = binary(
                    BinOp::Div,
                    Shape::Scalar,
                    pm.mass.clone(),
                    lit(Tensor::scalar(pm.declared)),
                );
                let i0 = lit(Tensor::new(Shape::Mat(3), p.inertia.as_flattened()));
                term_value(binary(BinOp::Mul, Shape::Mat(3), scale, i0))
            }
            _ => unreachable!("a particle has a mass only"),
        })
    }

    /// Whether a mass that reads params is positive at every corner of the
    /// ranges of the params it reads (all ranged, at most 10 of them; a mass
    /// is monotone in them in every usual form: `m`, `rho * volume`,
    /// `m0 * scale`); else an error at the mass.
    fn positive_over_ranges(&mut self, pm: &ParamMass, name: &str) -> bool {
        let mut read = vec![];
        pm.mass.for_each_input(&mut |i| {
            if let Input::Param(p) = i {
                read.push(p as usize);
            }
        });
        read.sort_unstable();
        read.dedup();
        let ranges: Option<Vec<(f64, f64)>> =
            read.iter().map(|&p| self.model.params[p].bounds).collect();
        let Some(ranges) = ranges.filter(|r| r.len() <= 10) else {
            return true;
        };
        let defaults: Vec<f64> = self.model.params.iter().map(|p| p.value).collect();
        for corner in 0..1usize << read.len() {
            let mut values = defaults.clone();
            for (k, (&p, &(lo, hi))) in read.iter().zip(&ranges).enumerate() {
                values[p] = if corner >> k & 1 == 0 { lo } else { hi };
            }
            let input = |i: Input| match i {
                Input::Param(p) => values[p as usize],
                _ => f64::NAN,
            };
            let m = crate::reset::evaluate(&pm.mass, &input, &mut vec![]).x();
            if !(m > 0.0 && m.is_finite()) {
                let at: Vec<String> = read
                    .iter()
                    .map(|&p| format!("{} = {}", self.model.params[p].name, values[p]))
                    .collect();
                self.error(
                    Diagnostic::error(
                        "joule::invalid_value",
                        format!("the mass of `{name}` is {m} at {}", at.join(", ")),
                        pm.span,
                        "not positive over its params' ranges",
                    )
                    .with_help("a mass must be positive for every value its params may take: narrow their ranges (`param m = 1 in 0.1..5`)"),
                );
                return false;
            }
        }
        true
    }

    /// One `added_mass` (`added_body_mass`) instance per moving particle
    /// (body) whose mass reads parameters in an implicit step; in an
    /// explicit one, the mass for the runtime to scale accelerations by.
    pub(super) fn added_mass_instances(&mut self) {
        let s = &self.model.settings;
        let (h, g) = (s.substep(), s.gravity);
        let implicit = s.integrator.is_implicit();
        for pm in self.param_masses.clone() {
            let (name, dof, jointed) = if pm.particle {
                let p = &self.model.particles[pm.owner as usize];
                (p.name.clone(), p.dof, false)
            } else {
                let b = &self.model.bodies[pm.owner as usize];
                (b.name.clone(), b.dof, b.joint.is_some())
            };
            if !self.positive_over_ranges(&pm, &name) {
                continue;
            }
            // A fixed particle's or body's mass acts on nothing.
            if dof.is_none() {
                continue;
            }
            // An explicit step scales the owner's accelerations at run time,
            // a step in joint coordinates its link's inertia.
            if !implicit || jointed {
                self.model.masses.push(MassField {
                    owner: pm.owner,
                    particle: pm.particle,
                    value: pm.mass.clone(),
                    declared: pm.declared,
                    distribution: pm.distribution.clone(),
                });
                continue;
            }
            let dm = binary(
                BinOp::Sub,
                Shape::Scalar,
                pm.mass.clone(),
                lit(Tensor::scalar(pm.declared)),
            );
            let runtime = |t: Arc<Term>| Value::Runtime(t);
            let num = |t: Tensor| Value::Num(t);
            let (k, vals) = if pm.particle {
                (
                    0,
                    vec![
                        Value::Particle(pm.owner),
                        runtime(dm),
                        num(Tensor::scalar(h)),
                        num(Tensor::new(Shape::Vec(3), &g)),
                    ],
                )
            } else {
                // The mass matrix's blocks: m, m c and the second moments
                // about the origin, m c c^T + S_c (S_c those about the
                // centre of mass, tr(I)/2 - I); they scale with the mass,
                // or follow the `com` and `inertia` that read params.
                let p = self.model.bodies[pm.owner as usize].mass_props();
                let (c, i) = (p.com, p.inertia);
                let half_trace = (i[0][0] + i[1][1] + i[2][2]) / 2.0;
                let per_kg: [f64; 9] = std::array::from_fn(|k| {
                    let (col, row) = (k / 3, k % 3);
                    let s_c = if row == col { half_trace } else { 0.0 } - i[row][col];
                    c[row] * c[col] + s_c / pm.declared
                });
                let (m3, v3) = (Shape::Mat(3), Shape::Vec(3));
                let (dmc, ds) = match &pm.distribution {
                    None => (
                        binary(BinOp::Mul, v3, dm.clone(), lit(Tensor::new(v3, &c))),
                        binary(BinOp::Mul, m3, dm.clone(), lit(Tensor::new(m3, &per_kg))),
                    ),
                    Some((com, tensor)) => {
                        let m0 = pm.declared;
                        let mc0: Vec<f64> = c.iter().map(|x| m0 * x).collect();
                        let s0: Vec<f64> = per_kg.iter().map(|x| m0 * x).collect();
                        let mc = binary(BinOp::Mul, v3, pm.mass.clone(), com.clone());
                        let outer = Term::rc(
                            m3,
                            TermKind::Call(Builtin::Outer, vec![com.clone(), com.clone()]),
                        );
                        let trace = Term::rc(
                            Shape::Scalar,
                            TermKind::Call(Builtin::Trace, vec![tensor.clone()]),
                        );
                        let half =
                            binary(BinOp::Mul, Shape::Scalar, lit(Tensor::scalar(0.5)), trace);
                        let identity: [f64; 9] =
                            std::array::from_fn(|k| if k % 4 == 0 { 1.0 } else { 0.0 });
                        let scaled_identity =
                            binary(BinOp::Mul, m3, half, lit(Tensor::new(m3, &identity)));
                        let s_c = binary(BinOp::Sub, m3, scaled_identity, tensor.clone());
                        let mcc = binary(BinOp::Mul, m3, pm.mass.clone(), outer);
                        let s = binary(BinOp::Add, m3, mcc, s_c);
                        (
                            binary(BinOp::Sub, v3, mc, lit(Tensor::new(v3, &mc0))),
                            binary(BinOp::Sub, m3, s, lit(Tensor::new(m3, &s0))),
                        )
                    }
                };
                (
                    1,
                    vec![
                        Value::Body(pm.owner),
                        runtime(dm),
                        runtime(dmc),
                        runtime(ds),
                        num(Tensor::scalar(h)),
                        num(Tensor::new(Shape::Vec(3), &g)),
                    ],
                )
            };
            let Some(eid) = self.added_mass[k] else {
                continue;
            };
            let def = self.energies[eid].clone();
            let at = Expr {
                kind: ExprKind::Bool(true),
                span: pm.span,
            };
            let exprs: Vec<&Expr> = vals.iter().map(|_| &at).collect();
            self.instance(eid, &def, &vals, &exprs);
        }
    }
}

impl Resolver<'_> {
    /// One `added_weight` (`added_body_weight`) instance per moving particle
    /// (body) when gravity reads parameters: the weight of the difference
    /// from its declared value, with each mass (its runtime value where it
    /// reads parameters too).
    pub(super) fn added_weight_instances(&mut self) {
        let Some((gravity, span)) = self.param_gravity.clone() else {
            return;
        };
        let g0 = self.model.settings.gravity;
        let dg = binary(
            BinOp::Sub,
            Shape::Vec(3),
            gravity,
            lit(Tensor::new(Shape::Vec(3), &g0)),
        );
        let at = Expr {
            kind: ExprKind::Bool(true),
            span,
        };
        let owners: Vec<(bool, u32, f64)> = (self.model.particles.iter().enumerate())
            .filter(|(_, p)| p.dof.is_some())
            .map(|(i, p)| (true, i as u32, p.mass))
            .chain(
                (self.model.bodies.iter().enumerate())
                    .filter(|(_, b)| b.dof.is_some())
                    .map(|(i, b)| (false, i as u32, b.mass)),
            )
            .collect();
        for (particle, owner, mass) in owners {
            let pm = self
                .param_masses
                .iter()
                .find(|m| m.particle == particle && m.owner == owner);
            let m = pm.map_or(Value::Num(Tensor::scalar(mass)), |pm| {
                Value::Runtime(pm.mass.clone())
            });
            let mut vals = vec![
                if particle {
                    Value::Particle(owner)
                } else {
                    Value::Body(owner)
                },
                m,
            ];
            if !particle {
                // A body's weight acts at its centre of mass.
                vals.push(match pm.and_then(|pm| pm.distribution.as_ref()) {
                    Some((com, _)) => Value::Runtime(com.clone()),
                    None => Value::Num(Tensor::new(
                        Shape::Vec(3),
                        &self.model.bodies[owner as usize].mass_props().com,
                    )),
                });
            }
            vals.push(Value::Runtime(dg.clone()));
            let Some(eid) = self.added_weight[usize::from(!particle)] else {
                continue;
            };
            let def = self.energies[eid].clone();
            let exprs: Vec<&Expr> = vals.iter().map(|_| &at).collect();
            self.instance(eid, &def, &vals, &exprs);
        }
    }
}
