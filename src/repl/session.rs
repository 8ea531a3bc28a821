//! The REPL's state and commands: a compiled scene (the loaded file plus the
//! items typed since), one environment's state, parameter and control
//! values, and the step count. Every command that changes the scene
//! recompiles it whole (tens of milliseconds) and carries the state over by
//! DOF name; an expression is compiled as a temporary `observe` item and
//! evaluated at the current state.

use crate::args;
use crate::files::write_atomically;
use crate::load;
use joule::model::Model;
use joule::{Emit, Objective, Scene, Sim};
use joule_compiler::model::ObjectiveKind;
use joule_grammar::ast::ItemKind;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The name of the temporary output an expression is compiled into.
const EXPR_OUTPUT: &str = "__repl";

/// What the loop does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next input.
    Continue,
    /// Leave the REPL.
    Quit,
}

/// A REPL session. Output goes to `out`; an error is returned as the text to print.
pub struct Session {
    path: Option<PathBuf>,
    /// The loaded file's text.
    base: String,
    /// Items typed in this session, in order.
    typed: Vec<String>,
    scene: Scene,
    x: Vec<f64>,
    v: Vec<f64>,
    params: Vec<f64>,
    controls: Vec<f64>,
    steps: usize,
    /// Print the wall time of each command.
    pub timing: bool,
    /// Colour in diagnostics.
    pub color: bool,
}

type Reply = Result<String, String>;

impl Session {
    /// A session on a scene file, or on an empty scene.
    pub fn new(path: Option<&Path>, color: bool) -> Result<Session, String> {
        let base = match path {
            Some(p) => crate::files::read_text(p, "check the scene file's path")
                .map_err(|e| format!("error: {e}\n"))?,
            None => String::new(),
        };
        let scene = load::text(path, &base, color)?;
        let mut s = Session {
            path: path.map(Path::to_path_buf),
            base,
            typed: vec![],
            scene,
            x: vec![],
            v: vec![],
            params: vec![],
            controls: vec![],
            steps: 0,
            timing: false,
            color,
        };
        s.reset();
        Ok(s)
    }

    /// Names for tab completion: parameters, controls, particles, bodies, outputs, templates.
    pub fn names(&self) -> Vec<String> {
        let m = self.scene.model();
        let base = |n: &str| n.split('[').next().unwrap_or(n).to_string();
        let mut v: Vec<String> = m
            .params
            .iter()
            .map(|p| p.name.clone())
            .chain(m.controls.iter().map(|c| base(&c.name)))
            .chain(m.particles.iter().map(|p| base(&p.name)))
            .chain(m.bodies.iter().map(|b| base(&b.name)))
            .chain(m.objectives.iter().map(|o| o.name.clone()))
            .chain(m.templates.iter().map(|t| t.name.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Handles one input: a `:command`, new items, or an expression.
    pub fn handle(&mut self, input: &str) -> (Flow, Reply) {
        let input = joule_grammar::trivia::trim_end(input.trim());
        if input.is_empty() {
            return (Flow::Continue, Ok(String::new()));
        }
        let start = Instant::now();
        let (flow, mut reply) = match input.strip_prefix(':') {
            Some(cmd) => self.command(cmd),
            None if self.is_item(input) => (Flow::Continue, self.add_items(input)),
            None => (Flow::Continue, self.eval(input)),
        };
        if self.timing {
            let note = format!("({:.1} ms)\n", start.elapsed().as_secs_f64() * 1e3);
            match &mut reply {
                Ok(s) | Err(s) => s.push_str(&note),
            }
        }
        (flow, reply)
    }

    fn command(&mut self, cmd: &str) -> (Flow, Reply) {
        let mut words = cmd.split_whitespace();
        let name = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let reply = match (name, args.as_slice()) {
            ("q" | "quit" | "exit", []) => return (Flow::Quit, Ok(String::new())),
            ("help" | "h", []) => Ok(help()),
            ("load", [file]) => self.load(Path::new(file)),
            ("reload", []) => self.reload(),
            ("step", []) => self.step(1),
            ("step", [n]) => count(n).and_then(|n| self.step(n)),
            ("run", [n]) => count(n).and_then(|n| self.run(n)),
            ("reset", []) => {
                self.reset();
                Ok("t = 0 s\n".into())
            }
            ("set", [name, value]) => self.set(name, value),
            ("get", [name]) => self.get(name),
            ("grad", [name, rest @ ..]) => self.grad(name, rest),
            ("info", []) => Ok(self.info()),
            ("emit", [what, rest @ ..]) if rest.len() <= 1 => {
                self.emit(what, rest.first().copied())
            }
            ("time", []) => {
                self.timing = !self.timing;
                Ok(format!(
                    "timing {}\n",
                    if self.timing { "on" } else { "off" }
                ))
            }
            ("save", [file]) => self.save(Path::new(file)),
            _ => Err(
                match super::helper::COMMANDS
                    .iter()
                    .find(|(c, ..)| c[1..] == *name)
                {
                    Some((c, synopsis, _)) => format!("error: usage: {c} {synopsis}\n"),
                    None => format!(
                        "error: unknown command `:{name}`\n  help: `:help` lists the commands\n"
                    ),
                },
            ),
        };
        (Flow::Continue, reply)
    }

    // ------------------------------------------------------------ state

    /// The initial state and the scene's parameter defaults.
    fn reset(&mut self) {
        let sim = self.scene.batch_threads(1, 1);
        self.x = sim.positions(0);
        self.v = sim.velocities(0);
        self.params = self.scene.model().params.iter().map(|p| p.value).collect();
        self.controls = vec![0.0; self.scene.model().controls.len()];
        self.steps = 0;
    }

    /// A one-environment simulation of `scene` (this scene or an extension of
    /// it with the same DOFs) at the current state.
    fn sim<'s>(&self, scene: &'s Scene) -> Sim<'s> {
        let mut sim = scene.batch_threads(1, 1);
        for (p, v) in self.scene.model().params.iter().zip(&self.params) {
            sim.set_param(&p.name, *v)
                .expect("the scene declares its params");
        }
        for (i, v) in self.controls.iter().enumerate() {
            sim.set_control(i, 0, *v);
        }
        sim.set_state(0, &self.x, &self.v);
        sim
    }

    fn time(&self) -> f64 {
        self.steps as f64 * self.scene.model().settings.dt
    }

    fn step(&mut self, n: usize) -> Reply {
        let mut sim = self.sim(&self.scene);
        sim.rollout(n);
        self.x = sim.positions(0);
        self.v = sim.velocities(0);
        self.steps += n;
        let mut s = format!("t = {} s ({} steps)\n", self.time(), self.steps);
        for e in &sim.events {
            let _ = writeln!(s, "warning: {e}");
        }
        Ok(s)
    }

    fn run(&mut self, n: usize) -> Reply {
        let mut s = self.step(n)?;
        let mut sim = self.sim(&self.scene);
        let outputs = sim.outputs();
        for o in &self.scene.compiled.layout().outputs {
            let values: Vec<f64> = outputs[o.offset..o.offset + o.len]
                .iter()
                .map(|r| r[0])
                .collect();
            let _ = writeln!(s, "{} {} = {}", o.kind.keyword(), o.name, show(&values));
        }
        Ok(s)
    }

    /// `:set NAME VALUE`: a parameter takes a finite value inside its range
    /// (the checks of `--param`), a control a finite value, clamped to its range.
    fn set(&mut self, name: &str, value: &str) -> Reply {
        let refused = |r: args::Refused| format!("error: {}\n  help: {}\n", r.message, r.help);
        let m = self.scene.model();
        if let Some(i) = m.params.iter().position(|p| p.name == name) {
            let v = args::param_value(&m.params[i], value).map_err(refused)?;
            self.params[i] = v;
            return Ok(format!("{name} = {v}\n"));
        }
        if let Some(i) = m.controls.iter().position(|c| c.name == name) {
            let v = args::number(value).map_err(refused)?;
            let clamped = m.controls[i].bounds.map_or(v, |(lo, hi)| v.clamp(lo, hi));
            self.controls[i] = clamped;
            return Ok(format!("{name} = {clamped}\n"));
        }
        Err(self.unknown(name, "a parameter or control"))
    }

    fn get(&mut self, name: &str) -> Reply {
        let m = self.scene.model();
        if let Some(i) = m.params.iter().position(|p| p.name == name) {
            return Ok(format!("{}\n", self.params[i]));
        }
        if let Some(i) = m.controls.iter().position(|c| c.name == name) {
            return Ok(format!("{}\n", self.controls[i]));
        }
        let mut sim = self.sim(&self.scene);
        let value = sim.output(name);
        if value.is_empty() {
            return Err(self.unknown(name, "a parameter, control or output"));
        }
        let v: Vec<f64> = value.iter().map(|r| r[0]).collect();
        Ok(format!("{}\n", show(&v)))
    }

    fn unknown(&self, name: &str, what: &str) -> String {
        let names = self.names();
        let close = names
            .iter()
            .filter(|n| strsim::jaro_winkler(n, name) > 0.8)
            .max_by(|a, b| strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name)));
        let mut s = format!("error: `{name}` is not {what} of this scene\n");
        if let Some(c) = close {
            let _ = writeln!(s, "  help: did you mean `{c}`?");
        }
        s
    }

    fn grad(&mut self, name: &str, rest: &[&str]) -> Reply {
        let mut steps = 1;
        let mut wrt: Option<Vec<String>> = None;
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match *a {
                "wrt" => {
                    let list = it.next().ok_or("error: `wrt` needs a list: wrt A,B\n")?;
                    wrt = Some(list.split(',').map(str::to_string).collect());
                }
                n => steps = count(n)?,
            }
        }
        let kind = self.scene.compiled.layout().output(name).map(|o| o.kind);
        let objective = match kind {
            Some(ObjectiveKind::Loss) => Objective::loss(name),
            Some(ObjectiveKind::Reward) => Objective::reward(name),
            _ => return Err(self.unknown(name, "a loss or reward")),
        };
        let m = self.scene.model();
        let chosen: Vec<usize> = match &wrt {
            None => (0..m.params.len()).collect(),
            Some(list) => list
                .iter()
                .map(|w| {
                    m.params
                        .iter()
                        .position(|p| &p.name == w)
                        .ok_or_else(|| self.unknown(w, "a parameter"))
                })
                .collect::<Result<_, _>>()?,
        };
        let mut sim = self.sim(&self.scene);
        let g = sim
            .gradient(&objective, steps)
            .map_err(|e| format!("error: {e}\n"))?;
        let mut s = format!(
            "{name} = {} (after {steps} steps from t = {} s)\n",
            g.value[0],
            self.time()
        );
        for i in chosen {
            let _ = writeln!(
                s,
                "  d {name} / d {} = {}",
                m.params[i].name, g.params[i][0]
            );
        }
        Ok(s)
    }

    fn info(&self) -> String {
        let m = self.scene.model();
        let mut s = format!(
            "{}: {} DOFs ({} particles, {} bodies), dt = {} s, t = {} s\n",
            m.title.as_deref().unwrap_or("(untitled)"),
            self.scene.dofs(),
            m.particles.len(),
            m.bodies.len(),
            m.settings.dt,
            self.time()
        );
        let list = |s: &mut String, what: &str, items: Vec<String>| {
            if !items.is_empty() {
                let _ = writeln!(s, "  {what}: {}", items.join(", "));
            }
        };
        list(
            &mut s,
            "params",
            m.params
                .iter()
                .zip(&self.params)
                .map(|(p, v)| format!("{} = {v}", p.name))
                .collect(),
        );
        list(
            &mut s,
            "controls",
            m.controls.iter().map(|c| c.name.clone()).collect(),
        );
        list(
            &mut s,
            "outputs",
            m.objectives
                .iter()
                .map(|o| format!("{} {}", o.kind.keyword(), o.name))
                .collect(),
        );
        list(
            &mut s,
            "energies",
            m.templates
                .iter()
                .map(|t| format!("{} x{}", t.name, t.count))
                .collect(),
        );
        s
    }

    // ------------------------------------------------------------ scene text

    /// The whole scene text: the file and the items typed since.
    fn text(&self) -> String {
        self.pieces().0
    }

    /// The whole scene text and where each typed item starts in it, with
    /// the item (for diagnostics: see [`as_typed`]).
    fn pieces(&self) -> (String, Vec<Piece>) {
        let mut t = self.base.clone();
        let mut pieces = vec![];
        for (k, item) in self.typed.iter().enumerate() {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            pieces.push(Piece {
                name: format!("<input {}>", k + 1),
                offset: t.len(),
                text: item.clone(),
            });
            t.push_str(item);
            t.push('\n');
        }
        (t, pieces)
    }

    /// Whether `input` is items to add rather than an expression: it starts
    /// with an item keyword, or is a call of an energy or dissipation template
    /// (of the scene or the prelude).
    fn is_item(&self, input: &str) -> bool {
        let first = input
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        let keyword = matches!(
            first,
            "scene"
                | "use"
                | "const"
                | "fn"
                | "settings"
                | "param"
                | "control"
                | "particle"
                | "body"
                | "mesh"
                | "fix"
                | "energy"
                | "dissipation"
                | "if"
                | "observe"
                | "reward"
                | "loss"
                | "done"
                | "policy"
        );
        let call = input[first.len()..].trim_start().starts_with('(');
        keyword || (call && self.template_names().iter().any(|t| t == first))
    }

    /// The energy and dissipation templates defined in the scene text and the prelude.
    fn template_names(&self) -> Vec<String> {
        [self.text().as_str(), joule_compiler::names::PRELUDE]
            .iter()
            .flat_map(|text| joule_grammar::parse(0, text).0.items)
            .filter_map(|item| match item.kind {
                ItemKind::Energy(def) => Some(def.name.name),
                _ => None,
            })
            .collect()
    }

    /// Adds items; the scene recompiles and the state carries over by DOF name.
    fn add_items(&mut self, input: &str) -> Reply {
        let (mut text, mut pieces) = self.pieces();
        pieces.push(Piece {
            name: "<input>".to_string(),
            offset: text.len(),
            text: input.to_string(),
        });
        text.push_str(input);
        text.push('\n');
        let scene = load::text(self.path.as_deref(), &text, self.color).map_err(|rendered| {
            let checked = load::check_text(self.path.as_deref(), &text);
            match checked.ok() {
                true => rendered,
                false => as_typed(&checked, &pieces, self.color),
            }
        })?;
        self.adopt(scene);
        self.typed.push(input.to_string());
        Ok(format!(
            "ok: {} DOFs, {} energies\n",
            self.scene.dofs(),
            self.scene.model().templates.len()
        ))
    }

    /// Switches to a recompiled scene, keeping the state of DOFs that keep their
    /// names and the values of parameters and controls that still exist.
    fn adopt(&mut self, scene: Scene) {
        let old = std::mem::replace(&mut self.scene, scene);
        let (x, v, params, controls) = (
            std::mem::take(&mut self.x),
            std::mem::take(&mut self.v),
            std::mem::take(&mut self.params),
            std::mem::take(&mut self.controls),
        );
        let steps = self.steps;
        self.reset();
        self.steps = steps;
        let by_name: std::collections::HashMap<String, usize> =
            (0..old.dofs()).map(|d| (old.dof_name(d), d)).collect();
        for d in 0..self.scene.dofs() {
            if let Some(&o) = by_name.get(&self.scene.dof_name(d)) {
                self.x[d] = x[o];
                self.v[d] = v[o];
            }
        }
        let m: &Model = self.scene.model();
        for (i, p) in m.params.iter().enumerate() {
            if let Some(o) = old.model().params.iter().position(|q| q.name == p.name) {
                self.params[i] = params[o];
            }
        }
        for (i, c) in m.controls.iter().enumerate() {
            if let Some(o) = old.model().controls.iter().position(|q| q.name == c.name) {
                self.controls[i] = controls[o];
            }
        }
    }

    /// Evaluates an expression at the current state (compiled as a temporary output).
    fn eval(&mut self, expr: &str) -> Reply {
        let (base, pieces) = self.pieces();
        let attempt = |kind: &str| {
            let prefix = format!("{base}{kind} {EXPR_OUTPUT} = ");
            let text = format!("{prefix}{expr}\n");
            load::text(self.path.as_deref(), &text, self.color).map_err(|rendered| {
                let checked = load::check_text(self.path.as_deref(), &text);
                let mut pieces = pieces.clone();
                pieces.push(Piece {
                    name: "<input>".to_string(),
                    offset: prefix.len(),
                    text: expr.to_string(),
                });
                match checked.ok() {
                    true => rendered,
                    false => as_typed(&checked, &pieces, self.color),
                }
            })
        };
        // A condition compiles as a `done` item, anything else as an observation.
        let scene = match attempt("observe") {
            Ok(s) => s,
            Err(first) => attempt("done").map_err(|_| first)?,
        };
        let mut sim = self.sim(&scene);
        let value: Vec<f64> = sim.output(EXPR_OUTPUT).iter().map(|r| r[0]).collect();
        let is_condition = scene
            .compiled
            .layout()
            .output(EXPR_OUTPUT)
            .is_some_and(|o| o.kind == ObjectiveKind::Done);
        if is_condition {
            return Ok(format!("{}\n", value[0] != 0.0));
        }
        Ok(format!("{}\n", show(&value)))
    }

    fn load(&mut self, path: &Path) -> Reply {
        let s = Session::new(Some(path), self.color)?;
        let timing = self.timing;
        *self = s;
        self.timing = timing;
        Ok(format!(
            "loaded {}: {} DOFs\n{}",
            path.display(),
            self.scene.dofs(),
            load::warnings(&self.scene)
        ))
    }

    fn reload(&mut self) -> Reply {
        let Some(path) = self.path.clone() else {
            return Err("error: no file loaded (`:load FILE`)\n".into());
        };
        let base = crate::files::read_text(&path, "check the scene file's path")
            .map_err(|e| format!("error: {e}\n"))?;
        let old = std::mem::replace(&mut self.base, base);
        match load::text(Some(&path), &self.text(), self.color) {
            Ok(scene) => {
                self.scene = scene;
                self.reset();
                Ok(format!(
                    "reloaded {}: {} DOFs, t = 0 s\n{}",
                    path.display(),
                    self.scene.dofs(),
                    load::warnings(&self.scene)
                ))
            }
            Err(e) => {
                self.base = old;
                Err(e)
            }
        }
    }

    fn emit(&self, what: &str, template: Option<&str>) -> Reply {
        let what = match what {
            "ast" => Emit::Ast,
            "model" => Emit::Model,
            "ir" => Emit::Ir,
            "grad-ir" => Emit::GradIr,
            other => {
                return Err(format!(
                    "error: cannot emit `{other}` (ast, model, ir, grad-ir)\n"
                ))
            }
        };
        if let Some(t) = template {
            let known = t == "outputs" || self.scene.model().templates.iter().any(|x| x.name == t);
            if !known {
                return Err(self.unknown(t, "an energy template"));
            }
        }
        let checked = load::check_text(self.path.as_deref(), &self.text());
        checked
            .emit_template(what, template)
            .ok_or_else(|| "error: the scene does not compile\n".to_string())
    }

    fn save(&self, path: &Path) -> Reply {
        let text = self.text();
        let formatted = joule::format_source(0, &text).unwrap_or(text);
        write_atomically(path, |w| {
            use std::io::Write;
            w.write_all(formatted.as_bytes())
        })
        .map_err(|e| format!("error: {e}\n"))?;
        Ok(format!("wrote {}\n", path.display()))
    }
}

/// A piece of the scene text the user typed: an item or an expression.
#[derive(Debug, Clone)]
struct Piece {
    /// The name diagnostics give it: `<input>` for the latest input,
    /// `<input K>` for the K-th item typed earlier in the session.
    name: String,
    /// Where it starts in the scene text.
    offset: usize,
    /// The text as typed.
    text: String,
}

/// The front end's diagnostics, rendered against what was typed (each
/// piece under its own name, with its own lines and columns) rather than
/// the scene text it was compiled in, where it would show as lines the file
/// does not have (or, for an expression, inside a temporary item); labels
/// in the file (a definition in the scene) stay there.
fn as_typed(checked: &joule_compiler::Checked, pieces: &[Piece], color: bool) -> String {
    use joule_grammar::ast::Span;
    let mut sources = checked.sources.clone();
    let ids: Vec<_> = pieces
        .iter()
        .map(|p| sources.add(p.name.clone(), None, &p.text))
        .collect();
    let diagnostics: Vec<_> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let mut d = d.clone();
            for l in &mut d.labels {
                let (start, end) = (l.span.start as usize, l.span.end as usize);
                let piece = pieces
                    .iter()
                    .zip(&ids)
                    .rev()
                    .find(|(p, _)| l.span.file == checked.main && start >= p.offset);
                if let Some((p, &id)) = piece {
                    let at = |b: usize| (b - p.offset).min(p.text.len());
                    l.span = Span::new(id, at(start), at(end.max(start)));
                }
            }
            d
        })
        .collect();
    joule_grammar::diag::render_all(&diagnostics, &sources, color, 100)
}

fn count(s: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("error: `{s}` is not a step count\n"))
}

/// A scalar as itself, a vector as `[a, b, c]`.
fn show(v: &[f64]) -> String {
    match v {
        [x] => x.to_string(),
        _ => format!(
            "[{}]",
            v.iter().map(f64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn help() -> String {
    let mut s = String::from(
        "Type an expression to evaluate it at the current state (`norm(a.x - b.x)`),\n\
         or items (`param`, `energy`, `particle`, an energy instance...) to add them.\n",
    );
    for (c, synopsis, what) in super::helper::COMMANDS {
        let _ = writeln!(s, "  {:<44} {what}", format!("{c} {synopsis}"));
    }
    s
}
