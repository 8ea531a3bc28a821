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

use super::eval::{lit, term_value};
use super::value::Value;
use super::Resolver;
use crate::model::{
    BinOp, Integrator, JointKind, MassField, Shape, StartKey, Tensor, Term, TermKind,
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
}

/// `a op b` of two runtime terms.
fn binary(op: BinOp, shape: Shape, a: Arc<Term>, b: Arc<Term>) -> Arc<Term> {
    Term::rc(shape, TermKind::Binary(op, a, b))
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
                } else if !free || (b.joint.is_some() && key == StartKey::Rotation) {
                    Some((
                        format!("body `{}` hangs in a joint tree", b.name),
                        "a jointed body's initial pose defines its joints' frames and is known at compile time; only a `free` joint's `x`, `v` and `w` may read parameters",
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
    /// `.mass` or `.inertia` of a particle or body whose mass reads
    /// parameters (`None` when it does not, and for `.com`, which does not
    /// change with it): the runtime values read directly, an error through
    /// an energy's argument (whose per-instance constants are numbers).
    pub(super) fn param_mass(
        &mut self,
        particle: bool,
        owner: u32,
        is_arg: bool,
        field: &str,
        span: Span,
    ) -> Option<Value> {
        // The centre of mass does not move with the mass.
        if field == "com" {
            return None;
        }
        let pm = self
            .param_masses
            .iter()
            .find(|m| m.particle == particle && m.owner == owner)?
            .clone();
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
        Some(match (field, body) {
            ("mass", _) => term_value(pm.mass.clone()),
            // The distribution scales with the mass.
            (_, Some(p)) => {
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

    /// Whether body `b` hangs in a joint tree whose root has a free joint.
    fn floating(&self, mut b: u32) -> bool {
        // The parent relation has no cycle (checked before).
        for _ in 0..self.model.bodies.len() {
            match &self.model.bodies[b as usize].joint {
                Some(a) => match a.parent {
                    Some(p) if self.model.bodies[p as usize].joint.is_some() => b = p,
                    _ => return a.joints.iter().any(|j| j.kind == JointKind::Free),
                },
                None => return false,
            }
        }
        false
    }

    /// One `added_mass` (`added_body_mass`) instance per moving particle
    /// (body) whose mass reads parameters in an implicit step; in an
    /// explicit one, the mass for the runtime to scale accelerations by.
    pub(super) fn added_mass_instances(&mut self) {
        let s = &self.model.settings;
        let (h, g) = (s.substep(), s.gravity);
        let implicit = matches!(s.integrator, Integrator::ImplicitEuler { .. });
        for pm in self.param_masses.clone() {
            let (name, dof, jointed) = if pm.particle {
                let p = &self.model.particles[pm.owner as usize];
                (p.name.clone(), p.dof, false)
            } else {
                let b = &self.model.bodies[pm.owner as usize];
                (b.name.clone(), b.dof, b.joint.is_some())
            };
            let why = match (jointed, implicit) {
                (true, false) => Some(("its joint tree steps in symplectic Euler", "set `integrator = implicit_euler(..)` in `settings`: the implicit step in joint coordinates scales a link's inertia by its mass")),
                (true, true) if self.floating(pm.owner) => Some(("its joint tree hangs from a free joint", "a floating tree's prediction moves its centre of mass by the links' compile-time masses; a link of a tree fixed to the world or to a body, a particle or an affine body can identify its mass")),
                _ => None,
            };
            if let Some((what, help)) = why {
                self.error(
                    Diagnostic::error(
                        "joule::runtime_in_const",
                        format!("the mass of `{name}` cannot read a parameter: {what}"),
                        pm.span,
                        "reads a parameter",
                    )
                    .with_help(help),
                );
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
                // The mass matrix's blocks scale with the mass: m, m c and the
                // second moments about the origin, m c c^T + S_c (S_c those
                // about the centre of mass, tr(I)/2 - I).
                let p = self.model.bodies[pm.owner as usize].mass_props();
                let (c, i) = (p.com, p.inertia);
                let half_trace = (i[0][0] + i[1][1] + i[2][2]) / 2.0;
                let per_kg: [f64; 9] = std::array::from_fn(|k| {
                    let (col, row) = (k / 3, k % 3);
                    let s_c = if row == col { half_trace } else { 0.0 } - i[row][col];
                    c[row] * c[col] + s_c / pm.declared
                });
                let dmc = binary(
                    BinOp::Mul,
                    Shape::Vec(3),
                    dm.clone(),
                    lit(Tensor::new(Shape::Vec(3), &c)),
                );
                let ds = binary(
                    BinOp::Mul,
                    Shape::Mat(3),
                    dm.clone(),
                    lit(Tensor::new(Shape::Mat(3), &per_kg)),
                );
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
            let m = match self
                .param_masses
                .iter()
                .find(|m| m.particle == particle && m.owner == owner)
            {
                Some(pm) => Value::Runtime(pm.mass.clone()),
                None => Value::Num(Tensor::scalar(mass)),
            };
            let handle = if particle {
                Value::Particle(owner)
            } else {
                Value::Body(owner)
            };
            let Some(eid) = self.added_weight[usize::from(!particle)] else {
                continue;
            };
            let def = self.energies[eid].clone();
            self.instance(
                eid,
                &def,
                &[handle, m, Value::Runtime(dg.clone())],
                &[&at, &at, &at],
            );
        }
    }
}
