//! `joule run` and `joule grad`: simulate a scene, write trajectories, and
//! differentiate objectives.

use crate::progress::Progress;
use crate::viewer::{Html, Recorder};
use joule_compiler::compiled::Backend;
use joule_compiler::kernels::OutputInfo;
use joule_compiler::model::{Integrator, Model, ObjectiveKind, Precision};
use joule_runtime::{Event, Objective, Scene, Sim};
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use npyz::WriterBuilder;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options shared by `run` and `grad`.
pub struct Common {
    /// The scene file.
    pub scene: PathBuf,
    /// Steps to simulate.
    pub steps: usize,
    /// `NAME=VALUE` parameter overrides.
    pub params: Vec<String>,
    /// Kernel backend.
    pub backend: Backend,
    /// Kernel precision, if not the scene's own.
    pub precision: Option<Precision>,
}

/// Compiles a scene, timing it; `tight` solves implicit steps to round-off (for
/// finite-difference checks, which cannot see through a loose solve).
pub(crate) fn compile(c: &Common, tight: bool) -> Result<(Scene, f64)> {
    let t = Instant::now();
    let checked = check_or_report(&c.scene)?;
    let mut model = checked.model.expect("ok implies a model");
    if let (true, Integrator::ImplicitEuler { iterations, .. }) =
        (tight, &model.settings.integrator)
    {
        model.settings.integrator = Integrator::ImplicitEuler {
            iterations: (*iterations).max(60),
            tolerance: 1e-15,
        };
    }
    let scene = build(model, c.backend, c.precision)?;
    warn(&scene);
    Ok((scene, t.elapsed().as_secs_f64() * 1e3))
}

/// Compiles a resolved model at `precision` (if given, else the scene's own).
pub(crate) fn build(
    mut model: Model,
    backend: Backend,
    precision: Option<Precision>,
) -> Result<Scene> {
    if let Some(p) = precision {
        model.settings.precision = p;
    }
    Scene::from_model(model, backend).map_err(|e| miette!("{e}"))
}

/// Prints the compiled scene's warnings on standard error.
pub(crate) fn warn(scene: &Scene) {
    for w in scene.warnings() {
        eprintln!("{}", w.render_plain());
    }
}

/// Runs the front end on a file; its errors are printed (the compiler's own
/// rendering, with colour on terminals) and summarised in the returned error.
pub(crate) fn check_or_report(path: &Path) -> Result<joule_compiler::Checked> {
    let checked = joule_compiler::check_path(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
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
    Ok(checked)
}

pub(crate) fn apply_params(sim: &mut Sim, params: &[String]) -> Result<()> {
    for p in params {
        let (name, value) = p.split_once('=').ok_or_else(|| {
            miette!(
                help = "write `--param NAME=VALUE`, e.g. `--param stretch=2000`",
                "`{p}` is not NAME=VALUE"
            )
        })?;
        let v: f64 = value.trim().parse().map_err(|_| {
            miette!(
                help = "values are numbers such as `2000` or `1e-3`",
                "`{value}` is not a number (in `--param {p}`)"
            )
        })?;
        sim.set_param(name.trim(), v).map_err(|e| miette!("{e}"))?;
    }
    Ok(())
}

fn report_events(events: &[Event]) {
    const SHOWN: usize = 10;
    for e in events.iter().take(SHOWN) {
        eprintln!("warning: {e}");
    }
    if events.len() > SHOWN {
        eprintln!("warning: ... and {} more", events.len() - SHOWN);
    }
}

/// Column names of an output: `name` for scalars, `name.x` ... for vectors.
fn columns(o: &OutputInfo) -> Vec<String> {
    match o.len {
        1 => vec![o.name.clone()],
        2..=4 => ["x", "y", "z", "w"][..o.len]
            .iter()
            .map(|c| format!("{}.{c}", o.name))
            .collect(),
        n => (0..n).map(|k| format!("{}[{k}]", o.name)).collect(),
    }
}

/// `joule run`: simulate and report observations, losses and rewards; write
/// the trajectory to `out` and a viewer page to `html`; `policy` (weights)
/// sets the controls before every step.
/// The bytes of a file, or a diagnostic naming it with `help`.
pub(crate) fn read_file(path: &Path, help: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        miette!(
            help = help.to_string(),
            "cannot read `{}`: {e}",
            path.display()
        )
    })
}

/// Where `joule run` writes its trajectory.
pub struct Record<'a> {
    /// The file (`.csv`, `.npy` or `.npz`).
    pub path: &'a Path,
    /// Whether the free DOFs are recorded too (`.npz` only).
    pub state: bool,
}

/// Array names of the recorded free DOFs' positions and velocities in an `.npz` trajectory.
pub const STATE_X: &str = "state.x";
/// See [`STATE_X`].
pub const STATE_V: &str = "state.v";

/// Every environment's free DOFs at one step: positions and velocities, `[env][dof]`.
type States = (Vec<Vec<f64>>, Vec<Vec<f64>>);

#[allow(clippy::too_many_arguments)]
pub fn run(
    c: &Common,
    batch: usize,
    threads: Option<usize>,
    out: Option<Record>,
    html: Option<&Html>,
    as_json: bool,
    quiet: bool,
    policy: Option<&Path>,
) -> Result<()> {
    if batch == 0 {
        return Err(miette!(
            help = "use `--batch 1` or more",
            "a batch needs at least one environment"
        ));
    }
    let (scene, compile_ms) = compile(c, false)?;
    let mut sim = scene.batch_threads(
        batch,
        threads.unwrap_or_else(rayon::current_num_threads).max(1),
    );
    apply_params(&mut sim, &c.params)?;
    let policy = policy
        .map(|path| {
            let bytes = read_file(
                path,
                "give weights written by `joule train` or `joule imitate`",
            )?;
            joule_learn::Policy::from_bytes(&scene, &bytes).map_err(|e| {
                miette!(
                    "cannot drive `{}` with `{}`: {e}",
                    c.scene.display(),
                    path.display()
                )
            })
        })
        .transpose()?;
    let mut controls = scene.default_controls(batch);
    let mut viewer = html
        .map(|h| Recorder::new(scene.model(), h, c.steps, batch))
        .transpose()?;
    let outputs = scene.compiled.layout().outputs.clone();
    let record = out.is_some();
    let mut history: Vec<Vec<Vec<f64>>> = vec![];
    let mut states: Vec<States> = vec![];
    let record_state = out.as_ref().is_some_and(|o| o.state);
    if let Some(o) = out.as_ref().filter(|o| o.state) {
        if o.path.extension().and_then(|e| e.to_str()) != Some("npz") {
            return Err(miette!(
                help = "write `--out FILE.npz` to record the state",
                "`--state` records into an .npz archive, not `{}`",
                o.path.display()
            ));
        }
    }
    let snapshot = |sim: &joule_runtime::Sim| -> States {
        (0..batch)
            .map(|e| (sim.positions(e), sim.velocities(e)))
            .unzip()
    };
    let mut reward_sum = vec![vec![0.0; batch]; outputs.len()];
    let start = Instant::now();
    let mut current = sim.outputs();
    if record {
        history.push(current.clone());
    }
    if record_state {
        states.push(snapshot(&sim));
    }
    let mut progress = Progress::steps(c.steps as u64, "simulating", !quiet && !as_json);
    if let Some(v) = &mut viewer {
        v.record(0, &sim);
    }
    for step in 1..=c.steps {
        if let Some(p) = &policy {
            p.act(&current, &mut controls).map_err(|e| miette!("{e}"))?;
            sim.set_controls(&controls).map_err(|e| miette!("{e}"))?;
        }
        sim.step();
        progress.inc();
        current = sim.outputs();
        for (k, o) in outputs.iter().enumerate() {
            if o.kind == ObjectiveKind::Reward {
                for (e, r) in reward_sum[k].iter_mut().enumerate() {
                    *r += current[o.offset][e];
                }
            }
        }
        if record {
            history.push(current.clone());
        }
        if record_state {
            states.push(snapshot(&sim));
        }
        if let Some(v) = &mut viewer {
            v.record(step, &sim);
        }
    }
    progress.finish();
    let run_ms = start.elapsed().as_secs_f64() * 1e3;
    report_events(&sim.events);
    if let Some(o) = out {
        let dt = scene.model().settings.dt;
        write_trajectory(o.path, &outputs, &history, &states, dt, batch)?;
    }
    if let (Some(v), Some(h)) = (&viewer, html) {
        v.write(&h.path, scene.model(), &c.scene)?;
    }
    let env_steps = (batch * c.steps) as f64 / (run_ms / 1e3).max(1e-12);
    let per_env = |o: &OutputInfo, k: usize| -> Value {
        (0..batch)
            .map(|e| match o.kind {
                ObjectiveKind::Reward => json!(reward_sum[k][e]),
                _ if o.len == 1 => json!(current[o.offset][e]),
                _ => json!((0..o.len)
                    .map(|c| current[o.offset + c][e])
                    .collect::<Vec<_>>()),
            })
            .collect()
    };
    let group = |kind: ObjectiveKind| -> Map<String, Value> {
        outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.kind == kind)
            .map(|(k, o)| (o.name.clone(), per_env(o, k)))
            .collect()
    };
    if as_json {
        let obj = json!({
            "scene": c.scene.display().to_string(),
            "steps": c.steps,
            "batch": batch,
            "observe": group(ObjectiveKind::Observe),
            "loss": group(ObjectiveKind::Loss),
            "reward": group(ObjectiveKind::Reward),
            "timing": {"compile_ms": compile_ms, "run_ms": run_ms, "env_steps_per_sec": env_steps},
        });
        println!("{obj}");
    } else if !quiet {
        let title = scene
            .model()
            .title
            .clone()
            .unwrap_or_else(|| c.scene.display().to_string());
        println!(
            "{title}: {} steps x {batch} environments (t = {:.4} s)",
            c.steps,
            sim.time()
        );
        println!(
            "  {:<10} {:<20} {:>24}",
            "kind", "name", "value (environment 0)"
        );
        for (k, o) in outputs.iter().enumerate() {
            let v: Vec<String> = match o.kind {
                ObjectiveKind::Reward => vec![format!("{:.6e} (sum)", reward_sum[k][0])],
                _ => (0..o.len)
                    .map(|c| format!("{:.6e}", current[o.offset + c][0]))
                    .collect(),
            };
            println!(
                "  {:<10} {:<20} {:>24}",
                o.kind.keyword(),
                o.name,
                v.join(" ")
            );
        }
        println!("  compile {compile_ms:.1} ms, run {run_ms:.1} ms, {env_steps:.0} env-steps/s");
    }
    Ok(())
}

/// Writes through a temporary file in the same folder, renamed into place.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write `{}`", path.display()))
}

#[allow(clippy::needless_range_loop)] // rows are [output][env]; loops read env-major
fn write_trajectory(
    path: &Path,
    outputs: &[OutputInfo],
    history: &[Vec<Vec<f64>>],
    states: &[States],
    dt: f64,
    batch: usize,
) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    // Observations, then losses, then rewards (per step), each in declaration order.
    let order: Vec<&OutputInfo> = [
        ObjectiveKind::Observe,
        ObjectiveKind::Loss,
        ObjectiveKind::Reward,
    ]
    .iter()
    .flat_map(|k| outputs.iter().filter(move |o| o.kind == *k))
    .collect();
    let cols: Vec<String> = order.iter().flat_map(|o| columns(o)).collect();
    let row_ids: Vec<usize> = order
        .iter()
        .flat_map(|o| o.offset..o.offset + o.len)
        .collect();
    let rows = cols.len();
    match ext {
        "csv" => write_atomically(path, |w| {
            writeln!(
                w,
                "step,t,env{}",
                cols.iter().map(|c| format!(",{c}")).collect::<String>()
            )?;
            for (step, out) in history.iter().enumerate() {
                for e in 0..batch {
                    write!(w, "{step},{},{e}", step as f64 * dt)?;
                    for r in &row_ids {
                        write!(w, ",{}", out[*r][e])?;
                    }
                    writeln!(w)?;
                }
            }
            Ok(())
        }),
        "npy" => write_atomically(path, |w| {
            // (steps + 1, batch, columns), columns as in the CSV after step, t, env.
            let shape = [history.len() as u64, batch as u64, rows as u64];
            let mut npy = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&shape)
                .writer(w)
                .begin_nd()?;
            for out in history {
                for e in 0..batch {
                    for r in &row_ids {
                        npy.push(&out[*r][e])?;
                    }
                }
            }
            npy.finish()
        }),
        "npz" => write_atomically(path, |w| {
            let mut zip = zip::ZipWriter::new(w);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            let mut array = |name: &str,
                             shape: &[u64],
                             data: &mut dyn Iterator<Item = f64>|
             -> std::io::Result<()> {
                zip.start_file(npyz::npz::file_name_from_array_name(name), opts)
                    .map_err(std::io::Error::other)?;
                let mut npy = npyz::WriteOptions::<f64>::new()
                    .default_dtype()
                    .shape(shape)
                    .writer(&mut zip)
                    .begin_nd()?;
                for v in data {
                    npy.push(&v)?;
                }
                npy.finish()
            };
            let steps = history.len() as u64;
            array(
                "t",
                &[steps],
                &mut (0..history.len()).map(|s| s as f64 * dt),
            )?;
            for o in outputs {
                let mut it = history.iter().flat_map(|out| {
                    (0..batch).flat_map(move |e| (0..o.len).map(move |c| out[o.offset + c][e]))
                });
                array(&o.name, &[steps, batch as u64, o.len as u64], &mut it)?;
            }
            if let Some((x, _)) = states.first() {
                let dofs = x.first().map_or(0, Vec::len) as u64;
                let shape = [steps, batch as u64, dofs];
                let mut xs = states.iter().flat_map(|(x, _)| x.iter().flatten().copied());
                array(STATE_X, &shape, &mut xs)?;
                let mut vs = states.iter().flat_map(|(_, v)| v.iter().flatten().copied());
                array(STATE_V, &shape, &mut vs)?;
            }
            zip.finish().map_err(std::io::Error::other)?;
            Ok(())
        }),
        other => Err(miette!(
            help = "write `--out FILE.csv`, `FILE.npy` or `FILE.npz`",
            "unknown output format `.{other}`"
        )),
    }
}

/// `joule grad`: the loss after `steps` steps and its gradient.
/// What `joule grad` differentiates: a terminal loss or a reward summed over the steps.
pub enum Target {
    /// A `loss` item, after the last step.
    Loss(String),
    /// A `reward` item, summed over the states after each step.
    Reward(String),
}

/// `joule grad`: a loss after N steps (or a reward summed over them) and its gradient.
pub fn grad(
    c: &Common,
    target: &Target,
    wrt: Option<&str>,
    check: bool,
    as_json: bool,
) -> Result<()> {
    let (kind, name) = match target {
        Target::Loss(n) => ("loss", n.as_str()),
        Target::Reward(n) => ("reward", n.as_str()),
    };
    let (scene, _) = compile(c, check)?;
    let params = &scene.model().params;
    let names: Vec<String> = match wrt {
        None => params.iter().map(|p| p.name.clone()).collect(),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    for n in &names {
        if !params.iter().any(|p| &p.name == n) {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(miette!(
                help = format!("the scene's parameters: {}", known.join(", ")),
                "unknown parameter `{n}` in `--wrt`"
            ));
        }
    }
    let objective = match target {
        Target::Loss(n) => Objective::loss(n),
        Target::Reward(n) => Objective::reward(n),
    };
    let progress = Progress::spinner(
        &format!("forward and adjoint over {} steps", c.steps),
        !as_json,
    );
    // The cost of a gradient is reported against a plain rollout of the same steps.
    let mut plain = scene.batch_threads(1, 1);
    apply_params(&mut plain, &c.params)?;
    let t = Instant::now();
    plain.rollout(c.steps);
    let forward_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut sim = scene.batch_threads(1, 1);
    apply_params(&mut sim, &c.params)?;
    let t = Instant::now();
    let g = sim
        .gradient(&objective, c.steps)
        .map_err(|e| miette!("{e}"))?;
    let gradient_ms = t.elapsed().as_secs_f64() * 1e3;
    report_events(&sim.events);
    let value = g.value[0];
    let index = |n: &str| {
        params
            .iter()
            .position(|p| p.name == n)
            .expect("checked above")
    };
    let mut grads = Map::new();
    let mut checks = Map::new();
    for n in &names {
        let a = g.params[index(n)][0];
        grads.insert(n.clone(), json!(a));
        if check {
            let p0 = sim.param(n, 0).map_err(|e| miette!("{e}"))?;
            // A step well above the solver's and the precision's rounding noise
            // (an f32 rollout's objective moves in steps of ~1e-7 relative);
            // central differences keep truncation O(h^2).
            let relative = match scene.model().settings.precision {
                Precision::F64 => 1e-4,
                Precision::F32 => 1e-2,
            };
            let h = relative * p0.abs().max(1e-3);
            let f = |d: f64| -> Result<f64> {
                let mut s = scene.batch_threads(1, 1);
                apply_params(&mut s, &c.params)?;
                s.set_param(n, p0 + d).map_err(|e| miette!("{e}"))?;
                let mut total = 0.0;
                for _ in 0..c.steps {
                    s.step();
                    if kind == "reward" {
                        total += s.output(name)[0][0];
                    }
                }
                if kind == "loss" {
                    total = s.output(name)[0][0];
                }
                Ok(total)
            };
            let fd = (f(h)? - f(-h)?) / (2.0 * h);
            // Relative to the larger of the two, with an absolute floor so that two
            // values that are both zero up to round-off do not read as 100% apart.
            let rel = (a - fd).abs() / a.abs().max(fd.abs()).max(1e-12);
            checks.insert(
                n.clone(),
                json!({"finite_difference": fd, "relative_error": rel}),
            );
        }
    }
    progress.finish();
    if as_json {
        let mut obj = json!({
            kind: value,
            "gradients": grads,
        });
        if check {
            obj["check"] = Value::Object(checks);
        }
        println!("{obj}");
    } else {
        let what = if kind == "reward" {
            "summed over"
        } else {
            "after"
        };
        println!("{kind} {name} = {value:.12e} {what} {} steps", c.steps);
        println!(
            "  {:<20} {:>22}{}",
            format!("d {kind} / d"),
            "adjoint",
            if check {
                format!(" {:>22} {:>12}", "finite difference", "rel. error")
            } else {
                String::new()
            }
        );
        for n in &names {
            let a = grads[n].as_f64().unwrap_or(f64::NAN);
            let extra = checks.get(n).map_or(String::new(), |c| {
                format!(
                    " {:>22.12e} {:>12.2e}",
                    c["finite_difference"].as_f64().unwrap_or(f64::NAN),
                    c["relative_error"].as_f64().unwrap_or(f64::NAN)
                )
            });
            println!("  {:<20} {:>22.12e}{extra}", n, a);
        }
        println!(
            "  recorded state: {} bytes per environment and step (checkpoints every {} steps)",
            g.bytes_per_env_step, g.checkpoint_every
        );
        println!(
            "  forward {forward_ms:.1} ms, forward + backward {gradient_ms:.1} ms ({:.2}x the forward)",
            gradient_ms / forward_ms.max(1e-9)
        );
        if check
            && matches!(
                scene.model().settings.integrator,
                Integrator::ImplicitEuler { .. }
            )
        {
            println!("  (with --check, implicit steps are solved to round-off)");
        }
        if check && scene.model().settings.precision == Precision::F32 {
            println!(
                "  (finite differences of an f32 rollout carry its rounding, about 1e-7 of the objective over a step of 1e-2 of the parameter; `--precision f64` checks the same adjoint code more tightly)"
            );
        }
    }
    Ok(())
}
