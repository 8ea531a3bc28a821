//! Loading a scene for a command: the front end on a file (or, for the REPL,
//! on text), the model adjusted to the command's options, the kernels
//! compiled, the scene's warnings shown, and `--param` overrides applied to a
//! batch. Every command that compiles a scene comes through here (run, grad,
//! optimize, train, imitate, bench and the REPL), and this is the one place
//! that reads `Scene::warnings` and `CompileError`.

use joule_compiler::compiled::Backend;
use joule_compiler::model::{Integrator, Model, Precision, SurrogateMode};
use joule_compiler::Checked;
use joule_runtime::{CompileError, Scene, Sim};
use miette::{miette, Result};
use std::path::Path;
use std::time::Instant;

/// How a command compiles its scene.
#[derive(Clone, Copy)]
pub struct Options {
    /// Kernel backend.
    pub backend: Backend,
    /// Kernel precision, if not the scene's own.
    pub precision: Option<Precision>,
    /// Solve implicit steps to round-off (for finite-difference checks, which
    /// cannot see through a loose solve).
    pub tight: bool,
    /// What gradients make of `backward =` surrogates.
    pub surrogates: Surrogates,
}

/// What gradients make of the `backward =` surrogates of a scene's energies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Surrogates {
    /// What the scene's `settings` say (`surrogate = energy` unless set).
    Scene,
    /// Exact gradients: the `backward =` clauses dropped (to compare with
    /// the surrogates').
    Off,
    /// This mode, whatever the scene says.
    Mode(SurrogateMode),
}

impl Default for Options {
    /// The JIT, the scene's own precision, solver and surrogate settings.
    fn default() -> Options {
        Options {
            backend: Backend::Jit,
            precision: None,
            tight: false,
            surrogates: Surrogates::Scene,
        }
    }
}

/// A compiled scene and what compiling it cost.
pub struct Loaded {
    /// The scene; `scene.compiled.timings` holds every pass, front end included.
    pub scene: Scene,
    /// Wall time of the whole load, in milliseconds.
    pub ms: f64,
}

/// Loads a scene file for a command and prints its warnings on standard error.
pub fn scene(path: &Path, o: &Options) -> Result<Loaded> {
    scene_with_params(path, o, &[])
}

/// [`scene`], with `--param NAME=VALUE` overrides (checked against the
/// declarations first) compiled in as the parameters' values: every batch
/// made from the scene starts with them (what a command that builds its
/// batches elsewhere, `train` and `imitate`, needs).
pub fn scene_with_params(path: &Path, o: &Options, params: &[String]) -> Result<Loaded> {
    let loaded = compile_with_params(path, o, params)?;
    warn(&loaded.scene);
    Ok(loaded)
}

/// Loads a scene file without printing its warnings (for repeated, timed
/// compiles, which [`warn`] once). Front-end errors are printed (the
/// compiler's own rendering, with colour on terminals) and summarised in the
/// returned error.
pub fn compile(path: &Path, o: &Options) -> Result<Loaded> {
    compile_with_params(path, o, &[])
}

/// [`compile`] with checked parameter overrides as the parameters' values.
fn compile_with_params(path: &Path, o: &Options, params: &[String]) -> Result<Loaded> {
    let t = Instant::now();
    let mut checked = joule_compiler::check_path(path).map_err(|e| {
        crate::files::read_error(path, &e, "check the scene file's path (relative to here)")
    })?;
    if !checked.ok() {
        let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
        eprint!("{}", checked.render_diagnostics(color, 100));
        let n = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        return Err(miette!(
            "`{}` has {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(model) = checked.model.as_mut() {
        for (name, v) in crate::args::check_params(model, params)? {
            if let Some(p) = model.params.iter_mut().find(|p| p.name == name) {
                p.value = v;
            }
        }
    }
    let scene = build(checked, o).map_err(|e| miette!("{e}"))?;
    Ok(Loaded {
        scene,
        ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// Prints the scene's warnings on standard error.
pub fn warn(scene: &Scene) {
    eprint!("{}", warnings(scene));
}

/// The scene's warnings, rendered (`warning: ...`, then its `help:`).
pub fn warnings(scene: &Scene) -> String {
    scene
        .warnings()
        .iter()
        .map(|w| format!("{}\n", w.render_plain()))
        .collect()
}

/// The front end on scene text: as if it were the file at `path` (its `use`
/// paths resolve against that file's folder), or as `<repl>`.
pub fn check_text(path: Option<&Path>, text: &str) -> Checked {
    match path {
        Some(p) => joule_compiler::check_source_at(p, text),
        None => joule_compiler::check_source("<repl>", text),
    }
}

/// Compiles scene text (the REPL's: a file and the items typed since) with
/// the default [`Options`]; errors come back rendered, in colour if `color`.
pub fn text(path: Option<&Path>, text: &str, color: bool) -> Result<Scene, String> {
    let checked = check_text(path, text);
    if !checked.ok() {
        return Err(checked.render_diagnostics(color, 100));
    }
    build(checked, &Options::default()).map_err(|e| e.rendered)
}

/// Compiles the front end's result with the command's options (the front
/// end's pass times carry on into the scene's).
fn build(mut checked: Checked, o: &Options) -> Result<Scene, CompileError> {
    if let Some(model) = checked.model.as_mut() {
        adjust(model, o);
    }
    Scene::from_checked(checked, o.backend)
}

/// The model as the command's options want it compiled.
fn adjust(model: &mut Model, o: &Options) {
    if let (
        true,
        Integrator::ImplicitEuler {
            iterations,
            tolerance,
            ..
        }
        | Integrator::RungeKutta4 {
            iterations,
            tolerance,
        },
    ) = (o.tight, &mut model.settings.integrator)
    {
        *iterations = (*iterations).max(60);
        *tolerance = 1e-15;
    }
    match o.surrogates {
        Surrogates::Scene => {}
        Surrogates::Off => {
            for t in &mut model.templates {
                t.backward = None;
            }
            model.settings.surrogate_kinematics = None;
        }
        Surrogates::Mode(m) => model.settings.surrogate = m,
    }
    if let Some(p) = o.precision {
        model.settings.precision = p;
    }
}

/// Applies checked `--param` overrides ([`crate::args::check_params`]) to
/// every environment of a batch.
pub fn apply_params(sim: &mut Sim, params: &[(String, f64)]) -> Result<()> {
    for (name, v) in params {
        sim.set_param(name, *v).map_err(|e| miette!("{e}"))?;
    }
    Ok(())
}
