//! The `--emit model` text form: stable, readable, and used as snapshots.
//! Long tables are elided in the middle (first and last rows shown with a count).

use crate::model::*;
use std::sync::Arc;

/// Rows shown in full before a table is elided.
const SHOW_ROWS: usize = 8;

/// Renders a model as text.
pub fn model_text(m: &Model) -> String {
    let mut o = String::new();
    let w = &mut o;
    if let Some(t) = &m.title {
        wl(w, format!("scene {t:?}"));
    }
    let s = &m.settings;
    let integ = match &s.integrator {
        Integrator::SymplecticEuler => "symplectic_euler".to_string(),
        Integrator::ImplicitEuler {
            iterations,
            tolerance,
            kinematics,
        } => {
            let linear = match kinematics {
                Kinematics::Exact => "",
                Kinematics::Linear => ", kinematics = linear",
            };
            format!("implicit_euler(iterations = {iterations}, tolerance = {tolerance:e}{linear})")
        }
        Integrator::RungeKutta4 {
            iterations,
            tolerance,
        } => format!("rk4(iterations = {iterations}, tolerance = {tolerance:e})"),
    };
    wl(
        w,
        format!(
            "settings dt = {} substeps = {} gravity = {} integrator = {integ} precision = {}",
            s.dt,
            s.substeps,
            tuple(&s.gravity),
            match s.precision {
                Precision::F64 => "f64",
                Precision::F32 => "f32",
            }
        ),
    );
    wl(w, format!("params ({})", m.params.len()));
    for (i, p) in m.params.iter().enumerate() {
        let b = p
            .bounds
            .map(|(l, h)| format!(" in {l}..{h}"))
            .unwrap_or_default();
        wl(w, format!("  p{i} {} = {}{b}", p.name, p.value));
    }
    wl(w, format!("controls ({})", m.controls.len()));
    rows(w, m.controls.len(), |i| {
        let c = &m.controls[i];
        let b = c
            .bounds
            .map(|(l, h)| format!(" in {l}..{h}"))
            .unwrap_or_default();
        format!("u{i} {}{b}", c.name)
    });
    let fixed = m.particles.iter().filter(|p| p.dof.is_none()).count();
    wl(w, format!("dofs {} free", m.dof_count));
    wl(
        w,
        format!("particles ({}, {fixed} fixed)", m.particles.len()),
    );
    rows(w, m.particles.len(), |i| {
        let p = &m.particles[i];
        let at = match p.dof {
            Some(d) => format!("dofs {d}..{}", d + 3),
            None => "fixed".into(),
        };
        format!(
            "{} {at} x = {} v = {} mass = {}",
            p.name,
            tuple(&p.x),
            tuple(&p.v),
            p.mass
        )
    });
    wl(w, format!("bodies ({})", m.bodies.len()));
    rows(w, m.bodies.len(), |i| {
        let b = &m.bodies[i];
        let at = match b.dof {
            Some(d) => format!("dofs {d}..{}", d + 12),
            None => "fixed".into(),
        };
        let inertia = match &b.inertia {
            Some(i) => format!(
                " com = {} inertia = ({}, {}, {})",
                tuple(&i.com),
                tuple(&i.tensor[0]),
                tuple(&i.tensor[1]),
                tuple(&i.tensor[2])
            ),
            None => String::new(),
        };
        let joint = match &b.joint {
            Some(a) => format!(" joint = {}", attachment(m, a)),
            None => String::new(),
        };
        format!(
            "{} {at} shape = {:?} mass = {}{inertia} x = {} rotation = {} v = {} w = {}{joint}",
            b.name,
            b.shape,
            b.mass,
            tuple(&b.x),
            tuple(&b.rotation),
            tuple(&b.v),
            tuple(&b.w)
        )
    });
    wl(w, format!("templates ({})", m.templates.len()));
    for t in &m.templates {
        template(w, m, t);
    }
    wl(w, format!("objectives ({})", m.objectives.len()));
    for o in &m.objectives {
        let p = Printer {
            model: m,
            template: None,
        };
        wl(
            w,
            format!(
                "  {} {}: {} = {}",
                o.kind.keyword(),
                o.name,
                o.value.shape.name(),
                p.term(&o.value, 0)
            ),
        );
    }
    if !m.planners.is_empty() {
        wl(w, format!("planners ({})", m.planners.len()));
        for p in &m.planners {
            let cost: Vec<String> = p
                .reward
                .iter()
                .map(|r| format!("reward {r}"))
                .chain(p.loss.iter().map(|l| format!("loss {l}")))
                .collect();
            let learn: Vec<&str> = p.learn.iter().map(|&i| m.params[i].name.as_str()).collect();
            wl(
                w,
                format!(
                    "  {} trajopt horizon = {} iters = {}{} cost = [{}] learn = [{}]",
                    p.name,
                    p.horizon,
                    p.iters,
                    if p.hold > 1 {
                        format!(" hold = {}", p.hold)
                    } else {
                        String::new()
                    },
                    cost.join(", "),
                    learn.join(", ")
                ),
            );
        }
    }
    if !m.policies.is_empty() {
        wl(w, format!("policies ({})", m.policies.len()));
        for p in &m.policies {
            let inputs: Vec<&str> = p
                .inputs
                .iter()
                .map(|i| m.objectives[*i].name.as_str())
                .collect();
            wl(
                w,
                format!(
                    "  {} mlp inputs = [{}] outputs = {} controls hidden = {:?} activation = {:?} init = {:?}",
                    p.name,
                    inputs.join(", "),
                    p.outputs.len(),
                    p.hidden,
                    p.activation,
                    p.init
                ),
            );
        }
    }
    if !m.reset.steps.is_empty() {
        let slots: Vec<String> = m
            .reset
            .slots
            .iter()
            .enumerate()
            .map(|(k, s)| format!("c{k} {s:?}"))
            .collect();
        wl(
            w,
            format!(
                "reset ({}): slots {}",
                m.reset.steps.len(),
                slots.join(", ")
            ),
        );
        let p = Printer {
            model: m,
            template: None,
        };
        let rows = |r: &[u32]| r.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
        for s in &m.reset.steps {
            let target = match &s.target {
                ResetTarget::Let(r) => format!("c{}..c{}", r.start, r.end),
                ResetTarget::Pos(r) => format!("x[{}]", rows(r)),
                ResetTarget::Vel(r) => format!("v[{}]", rows(r)),
                ResetTarget::Param(i) => m.params[*i as usize].name.clone(),
            };
            let op = if s.add { "+=" } else { "=" };
            wl(
                w,
                format!(
                    "  {target} {op} {} (draws c{}..c{})",
                    p.term(&s.value, 0),
                    s.draws.start,
                    s.draws.end
                ),
            );
        }
    }
    o
}

/// A body's joints as the language writes them, with checked values (unit
/// axes, ranges in radians or metres) and the parent by name, then the rows
/// of their coordinates.
fn attachment(m: &Model, a: &Attachment) -> String {
    let parent = a
        .parent
        .map_or("world", |p| m.bodies[p as usize].name.as_str());
    let joint = |j: &Joint| {
        let mut args = vec![parent.to_string()];
        match j.kind {
            JointKind::Free => return "free".to_string(),
            JointKind::Ball => args.push(format!("at = {}", tuple(&j.at))),
            JointKind::Hinge | JointKind::Slider => {
                args.push(format!("at = {}", tuple(&j.at)));
                args.push(format!("axis = {}", tuple(&j.axis)));
            }
        }
        if let Some((lo, hi)) = j.range {
            args.push(format!("range = [{lo}, {hi}]"));
        }
        match j.soft {
            Some(SoftRange::Spring(t)) => args.push(format!("soft = {t}")),
            Some(SoftRange::Mujoco(l)) => {
                args.push(format!("solref = {}", tuple(&l.solref)));
                args.push(format!("solimp = {}", tuple(&l.solimp)));
                args.push(format!("margin = {}", l.margin));
            }
            None => {}
        }
        for (name, v) in [
            ("armature", j.armature),
            ("damping", j.damping),
            ("stiffness", j.stiffness),
        ] {
            if v != 0.0 {
                args.push(format!("{name} = {v}"));
            }
        }
        for (what, coef, act) in [("motor", "gear", j.motor), ("servo", "kp", j.servo)] {
            if let Some((c, k)) = act {
                args.push(format!(
                    "{what} = {}, {coef} = {k}",
                    m.controls[c as usize].name
                ));
            }
        }
        format!("{}({})", j.kind.name(), args.join(", "))
    };
    let n = a.coordinates();
    let coords = if n == 0 {
        String::new()
    } else {
        format!(" coords {}..{}", a.coord, a.coord + n)
    };
    let joints = match a.joints.as_slice() {
        [] => format!("weld({parent})"),
        [j] => joint(j),
        js => format!("[{}]", js.iter().map(joint).collect::<Vec<_>>().join(", ")),
    };
    joints + &coords
}

fn wl(w: &mut String, line: String) {
    w.push_str(&line);
    w.push('\n');
}

fn tuple(v: &[f64]) -> String {
    format!(
        "({})",
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Writes `n` rows, eliding the middle of long tables.
fn rows(w: &mut String, n: usize, row: impl Fn(usize) -> String) {
    let show = |w: &mut String, i: usize| wl(w, format!("  {}", row(i)));
    if n <= SHOW_ROWS {
        (0..n).for_each(|i| show(w, i));
    } else {
        (0..SHOW_ROWS - 2).for_each(|i| show(w, i));
        wl(w, format!("  ... {} more ...", n - SHOW_ROWS));
        (n - 2..n).for_each(|i| show(w, i));
    }
}

fn template(w: &mut String, m: &Model, t: &Template) {
    let kind = match t.kind {
        EnergyKind::Energy => "energy",
        EnergyKind::Dissipation => "dissipation",
    };
    let p = Printer {
        model: m,
        template: Some(t),
    };
    let args: Vec<String> = t
        .args
        .iter()
        .map(|a| match &a.binding {
            ArgBinding::Handle { kind, .. } => format!("{}: {kind}", a.name),
            ArgBinding::Control => format!("{}: control", a.name),
            ArgBinding::Const { shape, .. } => format!("{}: const {}", a.name, shape.name()),
            ArgBinding::Runtime(term) => format!("{} = {}", a.name, p.term(term, 0)),
            ArgBinding::Static(v) => format!("{} = {v}", a.name),
        })
        .collect();
    wl(
        w,
        format!("  {kind} {}({}) x {}", t.name, args.join(", "), t.count),
    );
    if !t.const_names.is_empty() {
        let c: Vec<String> = t
            .const_names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("c{i} = {n}"))
            .collect();
        wl(w, format!("    consts {}", c.join(", ")));
    }
    wl(w, format!("    body {}", p.term(&t.body, 0)));
    if let Some(b) = &t.backward {
        wl(w, format!("    backward {}", p.term(b, 0)));
    }
    let nc = t.const_names.len();
    let mut lines = String::new();
    rows(&mut lines, t.count, |i| {
        let mut parts = vec![format!("{i}:")];
        if t.dof_width > 0 {
            let d: Vec<String> = t.dofs[i * t.dof_width..(i + 1) * t.dof_width]
                .iter()
                .map(|d| match d {
                    DofRef::Free(k) => format!("x{k}"),
                    DofRef::Fixed(v) => format!("={v}"),
                })
                .collect();
            parts.push(format!("dofs [{}]", d.join(" ")));
        }
        if t.control_width > 0 {
            let c: Vec<String> = t.controls[i * t.control_width..(i + 1) * t.control_width]
                .iter()
                .map(|c| format!("u{c}"))
                .collect();
            parts.push(format!("controls [{}]", c.join(" ")));
        }
        if nc > 0 {
            parts.push(format!("consts {}", tuple(&t.consts[i * nc..(i + 1) * nc])));
        }
        parts.join(" ")
    });
    for l in lines.lines() {
        wl(w, format!("    {}", l.trim_start()));
    }
}

/// Prints terms in infix form with minimal parentheses.
struct Printer<'a> {
    model: &'a Model,
    template: Option<&'a Template>,
}

impl Printer<'_> {
    fn input(&self, i: Input) -> String {
        match i {
            Input::Dof { at, state } => {
                let s = state.name();
                match at {
                    DofAt::Global(g) => format!("{s}[{g}]"),
                    DofAt::Arg { arg, offset } => {
                        let name = self
                            .template
                            .map_or("?", |t| t.args[arg as usize].name.as_str());
                        format!("{s}({name}, {offset})")
                    }
                }
            }
            Input::Param(p) => self.model.params[p as usize].name.clone(),
            Input::Control(c) => self.model.controls[c as usize].name.clone(),
            Input::ArgControl(a) => self
                .template
                .map_or("?".into(), |t| t.args[a as usize].name.clone()),
            Input::Const(c) => format!("c{c}"),
        }
    }

    /// Prints `t` in a context of binding strength `ctx`.
    fn term(&self, t: &Term, ctx: u8) -> String {
        match &t.kind {
            TermKind::Lit(v) if v.shape == Shape::Scalar => {
                let s = v.x().to_string();
                if v.x() < 0.0 && ctx > 0 {
                    format!("({s})")
                } else {
                    s
                }
            }
            TermKind::Lit(v) if v.shape == Shape::Bool => (v.x() != 0.0).to_string(),
            TermKind::Lit(v) => format!("{}{}", v.shape.name(), tuple(v.comps())),
            TermKind::Input(i) => self.input(*i),
            TermKind::Pack(c) => {
                if let Some(s) = self.dof_range(c) {
                    return s;
                }
                format!(
                    "{}({})",
                    t.shape.name(),
                    self.columns(t.shape, c).join(", ")
                )
            }
            TermKind::Get(x, i) => format!("{}[{i}]", self.term(x, 9)),
            TermKind::Unary(op, x) => {
                let s = match op {
                    UnOp::Neg => format!("-{}", self.term(x, 6)),
                    UnOp::Not => format!("!{}", self.term(x, 6)),
                };
                if ctx > 6 {
                    format!("({s})")
                } else {
                    s
                }
            }
            TermKind::Binary(op, a, b) => {
                let p = op.precedence();
                let (lp, rp) = if *op == BinOp::Pow {
                    (p + 1, p)
                } else {
                    (p, p + 1)
                };
                let s = format!("{} {} {}", self.term(a, lp), op.symbol(), self.term(b, rp));
                if p < ctx {
                    format!("({s})")
                } else {
                    s
                }
            }
            TermKind::Call(b, args) => {
                let parts: Vec<String> = args.iter().map(|x| self.term(x, 0)).collect();
                format!("{}({})", b.name(), parts.join(", "))
            }
            TermKind::Let {
                local,
                name,
                value,
                body,
            } => {
                let s = format!(
                    "let {name}#{local} = {} in {}",
                    self.term(value, 0),
                    self.term(body, 0)
                );
                if ctx > 0 {
                    format!("({s})")
                } else {
                    s
                }
            }
            TermKind::Local(l) => format!("#{l}"),
        }
    }

    /// The parts of a pack: a matrix column taken whole from one vector prints as that vector.
    fn columns(&self, shape: Shape, c: &[Arc<Term>]) -> Vec<String> {
        let n = match shape {
            Shape::Mat(n) => n as usize,
            _ => return c.iter().map(|x| self.term(x, 0)).collect(),
        };
        // The vector a column was taken from whole, if it was.
        let source = |col: &[Arc<Term>]| -> Option<Arc<Term>> {
            let TermKind::Get(v, 0) = &col[0].kind else {
                return None;
            };
            let whole = col.iter().enumerate().all(|(k, x)| {
                matches!(&x.kind, TermKind::Get(w, i) if *i as usize == k && Arc::ptr_eq(w, v))
            });
            (whole && v.shape == Shape::Vec(n as u8)).then(|| v.clone())
        };
        c.chunks(n)
            .flat_map(|col| match source(col) {
                Some(v) => vec![self.term(&v, 0)],
                None => col.iter().map(|x| self.term(x, 0)).collect(),
            })
            .collect()
    }

    /// `x(a, 0..3)` for a pack of consecutive DOF reads of one argument.
    fn dof_range(&self, c: &[Arc<Term>]) -> Option<String> {
        let mut first: Option<(DofAt, State)> = None;
        for (k, t) in c.iter().enumerate() {
            let TermKind::Input(Input::Dof { at, state }) = t.kind else {
                return None;
            };
            match first {
                None => first = Some((at, state)),
                Some((f, s)) => {
                    let consecutive = match (f, at) {
                        (DofAt::Global(a), DofAt::Global(b)) => b == a + k as u32,
                        (DofAt::Arg { arg: a, offset: o }, DofAt::Arg { arg: b, offset: p }) => {
                            a == b && p == o + k as u16
                        }
                        _ => false,
                    };
                    if !consecutive || s != state {
                        return None;
                    }
                }
            }
        }
        let (at, state) = first?;
        let one = self.input(Input::Dof { at, state });
        let end = c.len();
        Some(match at {
            DofAt::Global(g) => one.replacen(
                &format!("[{g}]"),
                &format!("[{g}..{}]", g as usize + end),
                1,
            ),
            DofAt::Arg { offset, .. } => one.replacen(
                &format!(", {offset})"),
                &format!(", {offset}..{})", offset as usize + end),
                1,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use joule_grammar::ast;

    #[test]
    fn precedence_is_the_parsers() {
        use ast::BinOp::*;
        for op in [
            Add, Sub, Mul, Div, Rem, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or,
        ] {
            let model: crate::model::BinOp = op.into();
            assert_eq!(model.precedence(), op.precedence(), "{op:?}");
        }
    }
}
