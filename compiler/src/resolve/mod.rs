//! Resolution: scene AST to [`Model`]. Constants are evaluated, `if` and `use`
//! expanded, generators unrolled into instance tables, meshes built, `rest(...)`
//! evaluated per instance, `fn`s inlined, fixed DOFs removed, and everything
//! type-checked. Errors are collected, never thrown, so a file's problems are
//! all reported at once.
//!
//! Two passes over the items, in source order: declarations first (constants,
//! functions, settings, params, controls, particles, bodies, meshes, energy
//! definitions), then, once DOFs are numbered, what refers to them (joint
//! parents, which may name bodies declared later, are resolved and fixes
//! applied before numbering; instances, objectives and policies after).

mod decls;
mod eval;
mod instances;
mod joints;
pub mod mesh;
mod planner;
mod reset;
mod start;
mod syntax;
pub(crate) mod value;

use crate::model::*;
use crate::names::PRELUDE;
use joule_grammar::ast::*;
use joule_grammar::{Diagnostic, SourceMap};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use value::{HandleKind, Value};

/// Most instances (or particles, or loop iterations, or mesh elements) one
/// generator may produce; nested generators (a `sum` inside a `sum` or inside
/// an item's `for`) count the product of their sizes.
pub const MAX_EXPANSION: u64 = 10_000_000;
/// Deepest `fn` inlining (recursion is an error).
pub const MAX_FN_DEPTH: usize = 64;
/// Most nodes one runtime expression may have once `fn`s are inlined and
/// `sum`s expanded (a `fn` called twice counts its body twice).
pub const MAX_TERM_SIZE: u64 = 1_000_000;
/// Deepest runtime expression (a `sum` of `n` runtime terms is `n` deep). The
/// passes after resolution (lowering, printing, dropping) recurse over it, so
/// this keeps them far inside a thread's stack (2 MiB for test threads).
pub const MAX_TERM_DEPTH: u32 = 2_000;
/// Most expression evaluations one item may take (the compile-time work of
/// its `fn` calls and `sum`s, known values included).
pub const MAX_EVAL_STEPS: u64 = 10 * MAX_EXPANSION;

/// What a global name refers to.
#[derive(Debug, Clone)]
enum Global {
    Const(Value),
    Fn(usize),
    Param(u32),
    Control(u32),
    Array(u32),
    Particle(u32),
    Body(u32),
    Mesh(u32),
    Energy(usize),
    Objective,
    Policy,
}

impl Global {
    /// What it is, with its article ("an energy"), for diagnostics.
    fn describe(&self) -> &'static str {
        match self {
            Global::Const(_) => "a constant",
            Global::Fn(_) => "a function",
            Global::Param(_) => "a parameter",
            Global::Control(_) => "a control",
            Global::Array(_) => "an array",
            Global::Particle(_) => "a particle",
            Global::Body(_) => "a body",
            Global::Mesh(_) => "a mesh",
            Global::Energy(_) => "an energy",
            Global::Objective => "an objective",
            Global::Policy => "a policy",
        }
    }
}

/// A declared array of particles, bodies or controls, indexable by tuples.
#[derive(Debug, Clone)]
struct ArrayDecl {
    name: String,
    kind: ArrayKind,
    /// Half-open index range per dimension.
    dims: Vec<(i64, i64)>,
    /// Dense over the box of `dims`, row-major; `None` where a guard removed an element.
    slots: Vec<Option<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayKind {
    Particle,
    Body,
    Control,
    Param,
}

#[derive(Debug, Clone)]
struct MeshDecl {
    /// Particle id of each vertex.
    particles: Vec<u32>,
    data: mesh::MeshData,
}

#[derive(Debug, Clone)]
struct FnDecl {
    name: String,
    params: Vec<Param>,
    body: Expr,
}

/// The resolver's state for one compilation.
pub struct Resolver<'s> {
    sources: &'s mut SourceMap,
    diags: Vec<Diagnostic>,
    globals: HashMap<String, (Global, Span)>,
    fns: Vec<FnDecl>,
    energies: Vec<EnergyDef>,
    arrays: Vec<ArrayDecl>,
    meshes: Vec<MeshDecl>,
    model: Model,
    /// Items of the second pass, in source order.
    deferred: Vec<Item>,
    /// Fixed flags per particle / body, set before DOF numbering.
    fixed_particles: Vec<bool>,
    fixed_bodies: Vec<bool>,
    /// Files currently being included (cycle detection) and all included ones.
    include_stack: Vec<PathBuf>,
    included: Vec<PathBuf>,
    /// The import options a `use "scene.joule" (..)` passes to the MJCF
    /// models that scene uses without options of their own, and how many
    /// models took them.
    passed_options: Option<crate::mjcf::Options>,
    models_passed: usize,
    /// Per file being declared (the scene's own first, then each `use`d
    /// file it is inside of): its `settings` block, applied once its items
    /// (and so the files it uses) are declared, so that its fields override
    /// theirs; and the block of a file it uses, of which there may be one.
    settings_stack: Vec<FileSettings>,
    /// Where the applied settings chose the integrator.
    integrator_span: Option<Span>,
    /// Per template of `model.templates`: its key and recorded constant sites.
    tinfo: Vec<instances::TemplateInfo>,
    /// Functions already reported as recursive.
    reported_recursion: std::collections::HashSet<usize>,
    /// Evaluating a template instance at its rest configuration, where a
    /// compile-time division by zero is just an infinite value, not an error.
    instance_eval: bool,
    /// The prelude's file (its names may be shadowed by the scene's).
    prelude: Option<FileId>,
    /// The prelude's `rigidity` energy, instanced for every moving body.
    rigidity: Option<usize>,
    /// The prelude's `added_mass` and `added_body_mass` energies, instanced
    /// for particles and bodies whose masses read params, and
    /// `added_weight` and `added_body_weight`, for every moving particle and
    /// body when gravity reads params.
    added_mass: [Option<usize>; 2],
    added_weight: [Option<usize>; 2],
    /// Gravity, where it reads params.
    param_gravity: Option<(Arc<Term>, Span)>,
    /// Particles' and bodies' masses that read params (see `resolve/start.rs`).
    param_masses: Vec<start::ParamMass>,
    /// Body pairs that share an energy instance (joints), or a body and its
    /// parent in a joint tree: `may_touch` excludes them.
    connected: std::collections::HashSet<(u32, u32)>,
    /// Jointed bodies whose parents are resolved once every body is declared.
    pending_parents: Vec<joints::PendingParent>,
    /// The current item's budget: evaluations so far ([`MAX_EVAL_STEPS`]),
    /// the product of the enclosing generators' sizes ([`MAX_EXPANSION`]),
    /// and whether a limit was hit (the rest of the item is then skipped).
    budget: eval::Budget,
}

/// Stiffness of the automatic rigidity energy: `k = gamma * S / h^2` (h the
/// substep). Explicit: S is the smallest second moment of the body, so its
/// stiffest mode has omega h = 2 sqrt(gamma) = 0.9 (stable). Implicit (no
/// stability limit): S is the largest, so even the heaviest matrix column of a
/// long body is held rigid (omega h = 20 on it).
const RIGIDITY_EXPLICIT: f64 = 0.2;
const RIGIDITY_IMPLICIT: f64 = 100.0;

/// Resolves the parsed file `main` (already in `sources`) and everything it uses.
/// Returns the model when there were no errors, and all diagnostics.
pub fn resolve(
    sources: &mut SourceMap,
    main: FileId,
    file: &SceneFile,
) -> (Option<Model>, Vec<Diagnostic>) {
    let mut r = Resolver {
        sources,
        diags: vec![],
        globals: HashMap::new(),
        fns: vec![],
        energies: vec![],
        arrays: vec![],
        meshes: vec![],
        model: Model::default(),
        deferred: vec![],
        fixed_particles: vec![],
        fixed_bodies: vec![],
        include_stack: vec![],
        included: vec![],
        passed_options: None,
        models_passed: 0,
        settings_stack: vec![],
        integrator_span: None,
        tinfo: vec![],
        reported_recursion: Default::default(),
        instance_eval: false,
        prelude: None,
        rigidity: None,
        added_mass: [None; 2],
        added_weight: [None; 2],
        param_gravity: None,
        param_masses: vec![],
        connected: Default::default(),
        pending_parents: vec![],
        budget: eval::Budget::default(),
    };
    let prelude = r.sources.add("<prelude>", None, PRELUDE);
    r.prelude = Some(prelude);
    let (prelude_ast, prelude_errors) = parse_file(r.sources, prelude);
    r.diags.extend(prelude_errors);
    r.declare_items(&prelude_ast.items);
    let energy = |r: &Resolver, name: &str| match r.globals.get(name) {
        Some((Global::Energy(e), _)) => Some(*e),
        _ => None,
    };
    r.rigidity = energy(&r, "rigidity");
    r.added_mass = [energy(&r, "added_mass"), energy(&r, "added_body_mass")];
    r.added_weight = [energy(&r, "added_weight"), energy(&r, "added_body_weight")];
    if let Some(p) = r.sources.get(main).path.clone() {
        r.include_stack.push(p.clone());
        r.included.push(p);
    }
    r.settings_stack.push(FileSettings::default());
    r.declare_items(&file.items);
    r.end_settings();
    r.finish();
    r.diags.sort_by_key(|d| (d.span().file, d.span().start));
    let failed = r.diags.iter().any(Diagnostic::is_error);
    let model = (!failed).then_some(r.model);
    (model, r.diags)
}

fn parse_file(sources: &SourceMap, id: FileId) -> (SceneFile, Vec<Diagnostic>) {
    let text = sources.get(id).text.clone();
    joule_grammar::parse(id, &text)
}

/// Words from other tools with a Joule equivalent.
const ALIASES: &[(&str, &str)] = &[
    ("length", "norm"),
    ("magnitude", "norm"),
    ("mag", "norm"),
    ("pow", "^ (as in `x^2`)"),
    ("ln", "log"),
    ("arctan2", "atan2"),
    ("determinant", "det"),
    ("inverse", "inv"),
    ("where", "select"),
    ("ifelse", "select"),
];

/// The candidate closest to `name` in edit distance (at most a third of its
/// length, at least 1), for "did you mean" hints.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == name) {
        return Some(format!("did you mean `{to}`?"));
    }
    let budget = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(name, c);
        if d <= budget && c != name && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

impl Resolver<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn err(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::error(code, msg, span, label));
    }

    /// An error with a hint.
    fn err_help(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(code, msg, span, label).with_help(help));
    }

    /// `joule::unknown_name` at `span`, whose text is not one of `names`:
    /// "`TEXT` is not WHAT", labelled `label`, the closest of `names` as the
    /// hint (else `fallback`).
    fn not_one_of(
        &mut self,
        span: Span,
        what: &str,
        label: &str,
        names: &[String],
        fallback: &str,
    ) {
        let text = self.snippet(span);
        let help =
            suggest(&text, names.iter().map(String::as_str)).unwrap_or_else(|| fallback.into());
        self.err_help(
            "joule::unknown_name",
            format!("`{text}` is not {what}"),
            span,
            label,
            help,
        );
    }

    /// Registers a global name; a duplicate is an error pointing at both.
    fn define(&mut self, name: &Ident, g: Global) -> bool {
        let shadows_prelude = self.globals.get(&name.name).is_some_and(|(_, s)| {
            Some(s.file) == self.prelude && Some(name.span.file) != self.prelude
        });
        if shadows_prelude {
            self.globals.insert(name.name.clone(), (g, name.span));
            return true;
        }
        if let Some((old, old_span)) = self.globals.get(&name.name) {
            let d = Diagnostic::error(
                "joule::duplicate_name",
                format!("`{}` is defined twice", name.name),
                name.span,
                "second definition",
            )
            .with_label(
                *old_span,
                format!("first defined here as {}", old.describe()),
            )
            .with_help(
                "rename one of them; names share one scope across the scene and its `use`d files",
            );
            self.error(d);
            return false;
        }
        if crate::names::is_builtin_name(&name.name) {
            self.error(
                Diagnostic::error(
                    "joule::duplicate_name",
                    format!("`{}` is a built-in name", name.name),
                    name.span,
                    "shadows a built-in",
                )
                .with_help("choose another name"),
            );
            return false;
        }
        self.globals.insert(name.name.clone(), (g, name.span));
        true
    }

    /// First pass over items: declarations now, references deferred.
    fn declare_items(&mut self, items: &[Item]) {
        for item in items {
            self.budget = eval::Budget::default();
            match &item.kind {
                ItemKind::Scene(t) => self.model.title = Some(t.clone()),
                ItemKind::Use {
                    path,
                    path_span,
                    args,
                } => self.include(path, *path_span, args),
                ItemKind::Const { name, value } => {
                    let mut ctx = eval::Ctx::declaration();
                    let v = self.eval(&mut ctx, value);
                    let v = match v {
                        Value::Runtime(_) => {
                            self.error(
                                Diagnostic::error(
                                    "joule::runtime_in_const",
                                    format!("constant `{}` depends on a runtime value", name.name),
                                    value.span,
                                    "not known at compile time",
                                )
                                .with_help("use `param` for a differentiable runtime value"),
                            );
                            Value::Poison
                        }
                        v => v,
                    };
                    self.define(name, Global::Const(v));
                }
                ItemKind::Fn { name, params, body } => {
                    let id = self.fns.len();
                    self.fns.push(FnDecl {
                        name: name.name.clone(),
                        params: params.clone(),
                        body: body.clone(),
                    });
                    self.define(name, Global::Fn(id));
                }
                ItemKind::Settings(fields) => self.settings(item.span, fields),
                ItemKind::Param {
                    name,
                    dims,
                    value,
                    bounds,
                } => self.param(name, dims.as_ref(), value, bounds.as_ref()),
                ItemKind::Control { name, dims, bounds } => {
                    self.control(name, dims.as_ref(), bounds.as_ref())
                }
                ItemKind::Particle { name, dims, fields } => {
                    self.particles(name, dims.as_ref(), fields)
                }
                ItemKind::Body { name, dims, fields } => self.bodies(name, dims.as_ref(), fields),
                ItemKind::Mesh {
                    name,
                    source,
                    fields,
                } => self.mesh(name, source, fields),
                ItemKind::Energy(def) => {
                    let id = self.energies.len();
                    self.energies.push(def.clone());
                    self.define(&def.name, Global::Energy(id));
                }
                ItemKind::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let mut ctx = eval::Ctx::declaration();
                    match self.eval_static_bool(&mut ctx, cond, "an `if` condition") {
                        Some(true) => self.declare_items(then),
                        Some(false) => self.declare_items(otherwise),
                        None => {}
                    }
                }
                ItemKind::Fix { .. }
                | ItemKind::Objective { .. }
                | ItemKind::Policy { .. }
                | ItemKind::Reset(_)
                | ItemKind::Instance { .. } => self.deferred.push(item.clone()),
            }
        }
    }

    /// `use "path"`: parse the file (relative to the including file) and declare its items.
    fn include(&mut self, path: &str, span: Span, args: &[Arg]) {
        let Some(options) = self.use_options(args) else {
            return;
        };
        let base = self
            .sources
            .get(span.file)
            .path
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let full = base.join(path);
        // Shown as the including file's name joined with the path as written.
        let shown = Path::new(&self.sources.get(span.file).name)
            .parent()
            .map_or_else(|| PathBuf::from(path), |p| p.join(path));
        let canonical = match std::fs::canonicalize(&full) {
            Ok(p) => p,
            Err(e) => {
                self.error(
                    Diagnostic::error(
                        "joule::use_not_found",
                        format!("cannot read `{}`: {e}", shown.display()),
                        span,
                        "included here",
                    )
                    .with_help("paths in `use` are relative to the file that contains the `use`"),
                );
                return;
            }
        };
        if let Some(start) = self.include_stack.iter().position(|p| *p == canonical) {
            let names: Vec<String> = self.include_stack[start..]
                .iter()
                .chain([&canonical])
                .map(|p| {
                    p.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                })
                .collect();
            self.error(
                Diagnostic::error(
                    "joule::use_cycle",
                    format!("`use` cycle: {}", names.join(" -> ")),
                    span,
                    "cycle closes here",
                )
                .with_help("remove one of the `use` items in the cycle"),
            );
            return;
        }
        if self.included.contains(&canonical) {
            return; // already included once: its names are defined
        }
        let bytes = match crate::read_input(&canonical, crate::MAX_INPUT_BYTES) {
            Ok(b) => b,
            Err(e) => {
                let help = crate::read_help(&e).unwrap_or_else(|| {
                    "`use` reads Joule scene files (`.joule`) and MJCF models (`.xml`)".into()
                });
                self.error(
                    Diagnostic::error(
                        "joule::use_not_found",
                        format!("cannot read `{path}`: {e}"),
                        span,
                        "included here",
                    )
                    .with_help(help),
                );
                return;
            }
        };
        let text = match crate::decode_source(&bytes) {
            Ok(t) => t,
            Err((offset, why)) => {
                self.error(
                    Diagnostic::error(
                        "joule::invalid_utf8",
                        format!("`{path}` is not a text file: {why} at byte {offset}"),
                        span,
                        "included here",
                    )
                    .with_help("scene files must be UTF-8 text"),
                );
                return;
            }
        };
        let mut id = self
            .sources
            .add(full.display().to_string(), Some(&canonical), &text);
        let passes = !args.is_empty() && !crate::mjcf::is_mjcf_path(&canonical);
        if crate::mjcf::is_mjcf_path(&canonical) {
            // An MJCF model: import it to Joule text, then include that,
            // with the options an enclosing `use` of a scene passed where
            // its own `use` names none.
            let options = match (args.is_empty(), self.passed_options) {
                (true, Some(passed)) => {
                    self.models_passed += 1;
                    passed
                }
                _ => options,
            };
            let imported = crate::mjcf::import(self.sources, id, options);
            self.diags.extend(imported.diagnostics);
            let Some(joule) = imported.text else { return };
            id = self
                .sources
                .add(format!("{} (imported)", full.display()), None, &joule);
        }
        self.include_stack.push(canonical.clone());
        self.included.push(canonical);
        let (file, syntax) = parse_file(self.sources, id);
        // A file that is not a scene (not named `.joule`, and not even its
        // first token parses) gets one diagnostic at the `use`, not its text.
        let first = text.len() - text.trim_start().len();
        let scene_ext = full.extension().is_some_and(|e| e == "joule");
        let unparsed = syntax
            .first()
            .and_then(|d| d.labels.first())
            .is_some_and(|l| l.span.file == id && l.span.start as usize <= first);
        if unparsed && !scene_ext && !crate::mjcf::is_mjcf_path(&full) {
            self.error(
                Diagnostic::error(
                    "joule::use_not_a_scene",
                    format!("`{path}` is not a Joule scene: it does not parse"),
                    span,
                    "included here",
                )
                .with_help("`use` includes Joule scene files (`.joule`) and MJCF models (`.xml`)"),
            );
            self.include_stack.pop();
            return;
        }
        self.diags.extend(syntax);
        self.settings_stack.push(FileSettings::default());
        if passes {
            // `use "scene.joule" (..)`: the options go to the models it uses.
            let (outer, counted) = (self.passed_options.replace(options), self.models_passed);
            self.models_passed = 0;
            self.declare_items(&file.items);
            if self.models_passed == 0 {
                self.error(
                    Diagnostic::error(
                        "joule::use_options",
                        format!("`{path}` uses no MJCF model for these options to import"),
                        span,
                        "options on a scene that imports no model",
                    )
                    .with_help("options such as `(friction = mujoco)` choose how the MJCF models a `use`d scene imports (`use \"model.xml\"` without options of its own) are imported; remove them here"),
                );
            }
            self.passed_options = outer;
            self.models_passed += counted;
        } else {
            self.declare_items(&file.items);
        }
        self.end_settings();
        self.include_stack.pop();
    }

    /// Second pass: joint parents, fixes, DOF numbering, then instances,
    /// objectives, policies, resets.
    fn finish(&mut self) {
        self.budget = eval::Budget::default();
        self.joint_parents();
        self.check_integrator();
        let deferred = std::mem::take(&mut self.deferred);
        for item in &deferred {
            self.budget = eval::Budget::default();
            if let ItemKind::Fix { targets, gens } = &item.kind {
                self.fix(targets, gens.as_ref());
            }
        }
        self.number_dofs();
        self.check_start();
        self.budget = eval::Budget::default();
        self.rigidity_instances();
        self.budget = eval::Budget::default();
        self.added_mass_instances();
        self.budget = eval::Budget::default();
        self.added_weight_instances();
        for item in &deferred {
            self.budget = eval::Budget::default();
            match &item.kind {
                ItemKind::Instance {
                    template,
                    args,
                    gens,
                } => self.instances(template, args, gens.as_ref(), item.span),
                ItemKind::Objective { kind, name, value } => {
                    self.objective((*kind).into(), name, value)
                }
                ItemKind::Policy { name, value } => self.policy(name, value),
                ItemKind::Reset(entries) => self.reset(entries),
                _ => {}
            }
        }
    }

    /// The MJCF import's options of `use "model.xml" (friction = ..)`
    /// (`friction`: `cone`, the default, `coulomb` or `mujoco`, as
    /// `joule import --friction`; `surrogate = cone` with `mujoco`, as
    /// `--surrogate cone`), or of `use "scene.joule" (..)`, which
    /// passes them to the models that scene uses; None (after an error) for
    /// an option or value that is not one of these.
    fn use_options(&mut self, args: &[Arg]) -> Option<crate::mjcf::Options> {
        use crate::mjcf::Friction;
        let mut options = crate::mjcf::Options::default();
        if args.is_empty() {
            return Some(options);
        }
        let mut ok = true;
        // Where `surrogate = cone` was given (it needs `friction = mujoco`).
        let mut cone_at = None;
        for a in args {
            let value = match &a.value.kind {
                ExprKind::Name(v) => Some(v.as_str()),
                _ => None,
            };
            match (a.name.as_ref().map(|n| n.name.as_str()), value) {
                (Some("friction"), Some("cone")) => options.friction = Friction::Cone,
                (Some("friction"), Some("coulomb")) => options.friction = Friction::Coulomb,
                (Some("friction"), Some("mujoco")) => options.friction = Friction::Mujoco,
                (Some("surrogate"), Some("cone")) => {
                    options.surrogate_cone = true;
                    cone_at = Some(a.value.span);
                }
                (Some("surrogate"), _) => {
                    ok = false;
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "`surrogate` is `cone`",
                            a.value.span,
                            "not a surrogate",
                        )
                        .with_help("`surrogate = cone` (with `friction = mujoco`): gradients through the cone contact and implicit Euler on the trees' configurations, from MuJoCo's states"),
                    );
                }
                (Some("friction"), _) => {
                    ok = false;
                    self.error(
                        Diagnostic::error(
                            "joule::invalid_value",
                            "`friction` is `cone`, `coulomb` or `mujoco`",
                            a.value.span,
                            "not a contact law",
                        )
                        .with_help("`cone` (default): a spring-damper with Coulomb's cone; `coulomb`: Coulomb's friction on it; `mujoco`: MuJoCo's own laws and step (`joule import --friction`)"),
                    );
                }
                (name, _) => {
                    ok = false;
                    let at = a.name.as_ref().map_or(a.value.span, |n| n.span);
                    self.error(
                        Diagnostic::error(
                            "joule::unknown_field",
                            match name {
                                Some(n) => format!("`use` of an MJCF model has no option `{n}`"),
                                None => "`use` options are named".to_string(),
                            },
                            at,
                            "not an option",
                        )
                        .with_help("its options are `friction = cone | coulomb | mujoco` and `surrogate = cone`"),
                    );
                }
            }
        }
        if let Some(at) = cone_at.filter(|_| options.friction != Friction::Mujoco) {
            ok = false;
            self.error(
                Diagnostic::error(
                    "joule::use_options",
                    "`surrogate = cone` needs `friction = mujoco`",
                    at,
                    "a surrogate of MuJoCo's laws",
                )
                .with_help("write `(friction = mujoco, surrogate = cone)`: MuJoCo's laws forward, the cone's smooth step in the gradients (the default import, `friction = cone`, is already that step)"),
            );
        }
        ok.then_some(options)
    }

    /// `rk4` steps joint coordinates: a scene without a joint is refused.
    fn check_integrator(&mut self) {
        let (Integrator::RungeKutta4 { .. }, Some(span)) =
            (&self.model.settings.integrator, self.integrator_span)
        else {
            return;
        };
        if !self.model.bodies.iter().any(|b| b.joint.is_some()) {
            self.error(
                Diagnostic::error(
                    "joule::integrator",
                    "`rk4` needs a body attached by a joint",
                    span,
                    "no joint coordinates to step",
                )
                .with_help("`rk4` is MuJoCo's RK4 over joint coordinates: attach bodies with `joint = ..`, or use `implicit_euler(..)`"),
            );
        }
    }

    /// One `rigidity` instance per moving body without a joint (see
    /// [`RIGIDITY_EXPLICIT`]); a jointed body's `R` is a rotation by
    /// construction.
    fn rigidity_instances(&mut self) {
        let Some(eid) = self.rigidity else { return };
        let def = self.energies[eid].clone();
        let s = &self.model.settings;
        let h = s.substep();
        let gamma = match s.integrator {
            Integrator::SymplecticEuler => RIGIDITY_EXPLICIT,
            Integrator::ImplicitEuler { .. } | Integrator::RungeKutta4 { .. } => RIGIDITY_IMPLICIT,
        };
        let dummy = Expr {
            kind: ExprKind::Bool(true),
            span: def.name.span,
        };
        let implicit = s.integrator.is_implicit();
        for b in 0..self.model.bodies.len() {
            let body = &self.model.bodies[b];
            if body.dof.is_none() || body.joint.is_some() {
                continue;
            }
            let w = body.mass_matrix();
            let moments = [w[1][1], w[2][2], w[3][3]];
            let s = match self.model.settings.integrator {
                Integrator::SymplecticEuler => moments.into_iter().fold(f64::INFINITY, f64::min),
                Integrator::ImplicitEuler { .. } | Integrator::RungeKutta4 { .. } => {
                    moments.into_iter().fold(0.0, f64::max)
                }
            };
            let k = gamma * s / (h * h);
            // A mass or distribution that reads params moves the moments,
            // and the stiffness with them.
            let pm = self
                .param_masses
                .iter()
                .find(|m| !m.particle && m.owner == b as u32);
            let k = match pm {
                Some(pm) => Value::Runtime(pm.rigidity(k, gamma / (h * h), implicit)),
                None => Value::Num(Tensor::scalar(k)),
            };
            let vals = [Value::Body(b as u32), k];
            self.instance(eid, &def, &vals, &[&dummy, &dummy]);
        }
    }

    fn number_dofs(&mut self) {
        let mut next = 0u32;
        for (p, fixed) in self.model.particles.iter_mut().zip(&self.fixed_particles) {
            if !fixed {
                p.dof = Some(next);
                next += 3;
            }
        }
        for (b, fixed) in self.model.bodies.iter_mut().zip(&self.fixed_bodies) {
            if !fixed {
                b.dof = Some(next);
                next += 12;
            }
        }
        for b in &mut self.model.bodies {
            if let Some(a) = &mut b.joint {
                a.coord = next;
                next += a.coordinates();
            }
        }
        self.model.dof_count = next as usize;
    }

    /// Names in scope, for suggestions.
    fn global_names(&self) -> impl Iterator<Item = &str> {
        self.globals.keys().map(String::as_str)
    }

    /// Span text for messages.
    fn snippet(&self, span: Span) -> String {
        self.sources.snippet(span).to_string()
    }
}

/// A shared list value.
fn list(v: Vec<Value>) -> Value {
    Value::List(Arc::new(v))
}

/// The `settings` blocks of one file being declared (see
/// `Resolver::settings_stack`).
#[derive(Default)]
struct FileSettings {
    own: Option<(Span, Vec<FieldDef>)>,
    used: Option<Span>,
}
