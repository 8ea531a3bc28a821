//! `joule optimize`: trajectory optimisation, parameter identification and
//! model-predictive control through the simulator (see
//! `joule_runtime::optimize`), and the format of its control plans (written
//! by `--out`, read back by `joule run --controls`).

use crate::args::{check_params, ThreadsArg};
use crate::files::{read_file, write_atomically};
use crate::load::{self, apply_params};
use crate::progress::Progress;
use clap::ValueEnum;
use joule_runtime::optimize::{evaluate, mpc, Method, Problem, Solution, Window};
use joule_runtime::{Objective, Scene};
use miette::{miette, Result};
use npyz::WriterBuilder;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Optimise controls (trajectory optimisation, MPC) or fit parameters through the simulator.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --steps 60 --optimizer lbfgs\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --mpc --horizon 20 --steps 60\n  joule run scenes/spring_chain.joule --steps 100 --param EA=3000 --out rec.npz\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --wrt EA        # identify EA\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --chamfer --wrt EA   # imitate (ILD)\n  joule optimize scenes/cartpole_planner.joule --match tip=rec.npz --controls rec.npz --wrt m_pole   # replay its controls\n  joule optimize scenes/pendulum.joule --loss miss --wrt g --curve curve.csv && joule plot curve.csv -o curve.png"
)]
pub struct OptimizeArgs {
    /// The scene file.
    scene: PathBuf,
    /// Steps per rollout (default: 100, or the length of the `--match` recording).
    #[arg(long)]
    steps: Option<usize>,
    /// Override a parameter (repeatable): a finite value inside its declared range;
    /// optimised ones start there.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A `loss` to minimise (after the last step).
    #[arg(long, conflicts_with_all = ["reward", "track"])]
    loss: Option<String>,
    /// A `reward` to maximise (summed over the steps).
    #[arg(long, conflicts_with = "track")]
    reward: Option<String>,
    /// Minimise the squared distance of an output to a recorded trajectory (`joule run --out F.npz`).
    #[arg(long = "match", value_name = "OUTPUT=FILE.npz")]
    track: Option<String>,
    /// With `--match`: the bidirectional Chamfer distance to the recording (imitation from one
    /// demonstration, as in ILD) instead of step-by-step errors.
    #[arg(long, requires = "track")]
    chamfer: bool,
    /// What to optimise: `controls` (one per step) and/or parameter names, comma-separated.
    #[arg(long, required = true)]
    wrt: String,
    /// The controls of every step: a plan (`joule optimize --out`, `.csv` or
    /// `.npy`) or the controls a recording applied (`joule run --out
    /// FILE.npz`, environment 0), replayed while parameters are fitted (the
    /// start with `--wrt controls`).
    #[arg(long, value_name = "PLAN", conflicts_with = "mpc")]
    controls: Option<PathBuf>,
    /// With `--match`: multiple shooting. Cut the recording into windows of
    /// H steps, each started from its recorded state (`joule run --out
    /// FILE.npz --state`) and driven by its recorded controls (`--controls`),
    /// and fit the parameters to all of them at once: what identifies a
    /// model from a long recording whose simulation from the first state
    /// alone drifts away (chaos, contact).
    #[arg(long, value_name = "H", requires = "track", conflicts_with_all = ["chamfer", "mpc"])]
    window: Option<usize>,
    /// Iterations (with `--mpc`: per step).
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// The optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Lbfgs)]
    optimizer: OptimizerArg,
    /// Adam's learning rate (in the unconstrained variables).
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Model-predictive control: re-plan `--horizon` steps from every state, apply the first control.
    #[arg(long)]
    mpc: bool,
    /// The MPC planning horizon, in steps.
    #[arg(long, default_value_t = 20, requires = "mpc")]
    horizon: usize,
    /// Write the optimised controls, one row per step: `.csv` or `.npy`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every evaluation (value, gradient norm, seconds) as CSV, for `joule plot`.
    #[arg(long)]
    curve: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    threads: ThreadsArg,
}

/// `--optimizer`.
#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    /// Adam (first order; `--lr`).
    Adam,
    /// L-BFGS with a Moré-Thuente line search.
    Lbfgs,
}

impl OptimizeArgs {
    /// The optimiser with its settings.
    fn method(&self) -> Method {
        match self.optimizer {
            OptimizerArg::Adam => Method::Adam(self.lr),
            OptimizerArg::Lbfgs => Method::Lbfgs,
        }
    }

    /// Receding horizon, when running as MPC.
    fn mpc(&self) -> Option<usize> {
        self.mpc.then_some(self.horizon)
    }
}

/// `joule optimize`.
pub fn optimize(o: OptimizeArgs) -> Result<()> {
    o.threads.apply()?;
    crate::args::positive(
        "--lr",
        o.lr,
        "Adam's step size in the unconstrained variables, e.g. `--lr 0.05`",
    )?;
    let scene = load::scene(&o.scene, &load::Options::default())?.scene;
    let overrides = check_params(scene.model(), &o.params)?;
    let (objective, steps) = objective(&scene, &o, o.steps.unwrap_or(100), o.steps.is_some())?;
    let mut problem = Problem::new(&scene, objective, steps);
    let mut probe = scene.batch_threads(1, 1);
    apply_params(&mut probe, &overrides)?;
    let m = scene.model();
    problem.params = m
        .params
        .iter()
        .map(|p| probe.param(&p.name, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| miette!("{e}"))?;
    let mut controls = false;
    problem.wrt_params = crate::args::wrt_params(m, &o.wrt, "; or `--wrt controls`", |w| {
        if w != "controls" {
            return Ok(false);
        }
        if m.controls.is_empty() {
            return Err(miette!(
                help = "declare `control u[k in 0..n] in -1..1`",
                "the scene has no controls"
            ));
        }
        controls = true;
        Ok(true)
    })?;
    problem.wrt_controls = controls;
    match (o.window, &o.controls) {
        (Some(h), controls) => problem.windows = windows(&scene, &o, h, controls.as_deref())?,
        (None, Some(path)) => problem.schedule = read_plan(path, &scene, steps)?,
        (None, None) => {}
    }
    if let Some(h) = o.mpc() {
        if h == 0 || !problem.wrt_params.is_empty() || !problem.wrt_controls {
            return Err(miette!(
                help = "MPC plans controls only: `--wrt controls --mpc --horizon 20`",
                "`--mpc` needs `--wrt controls` alone and a horizon of at least one step"
            ));
        }
    }
    let initial = evaluate(&scene, &problem).map_err(|e| miette!("{e}"))?;
    if !initial.is_finite() {
        return Err(miette!(
            help = non_finite_help(&o),
            "the objective is {initial} at the start: there is nothing to minimise"
        ));
    }
    let spinner = Progress::spinner("optimising", !o.quiet && !o.json);
    let start = std::time::Instant::now();
    let (solution, evaluations) = match o.mpc() {
        None => {
            let s = joule_runtime::optimize::optimize(&scene, &problem, o.method(), o.iters)
                .map_err(|e| miette!("{e}"))?;
            let n = s.history.len();
            (s, n)
        }
        Some(h) => {
            let run =
                mpc(&scene, &problem, o.method(), h, steps, o.iters).map_err(|e| miette!("{e}"))?;
            // The closed-loop result: the applied controls, evaluated over the whole run.
            let replay = Problem {
                schedule: run.applied.clone(),
                ..problem.clone()
            };
            let value = evaluate(&scene, &replay).map_err(|e| miette!("{e}"))?;
            let solution = Solution {
                params: problem.params.clone(),
                schedule: run.applied,
                value,
                history: vec![],
            };
            (solution, run.evaluations)
        }
    };
    spinner.finish();
    let seconds = start.elapsed().as_secs_f64();
    if !solution.value.is_finite() {
        return Err(miette!(
            help = format!("{}; nothing was written", non_finite_help(&o)),
            "the optimisation ended at an objective of {} (from {initial})",
            solution.value
        ));
    }
    if let Some(path) = &o.out {
        write_schedule(path, &scene, &solution.schedule)?;
    }
    if let Some(path) = &o.curve {
        write_atomically(path, |w| {
            writeln!(w, "evaluation,value,grad_norm,seconds")?;
            for (k, e) in solution.history.iter().enumerate() {
                writeln!(w, "{},{},{},{}", k + 1, e.value, e.grad_norm, e.seconds)?;
            }
            Ok(())
        })?;
    }
    report(
        &scene,
        &problem,
        &solution,
        evaluations,
        initial,
        seconds,
        &o,
    );
    Ok(())
}

/// What to do about an objective that is not finite, for `joule optimize`'s
/// settings `o`.
fn non_finite_help(o: &OptimizeArgs) -> String {
    let causes = "the simulation diverges (try a smaller `dt` or other `--param` values)";
    match &o.track {
        Some(t) => format!(
            "{causes}, or the recording `{}` holds values so large that their squared differences overflow (record it again with `joule run SCENE --out FILE.npz`)",
            t.split_once('=').map_or(t.as_str(), |p| p.1)
        ),
        None => format!("{causes}, or the objective item overflows; a smaller `--lr` or fewer `--steps` may help"),
    }
}

/// The objective and the number of steps it spans.
fn objective(
    scene: &Scene,
    o: &OptimizeArgs,
    steps: usize,
    steps_given: bool,
) -> Result<(Objective, usize)> {
    match (&o.loss, &o.reward, &o.track) {
        (Some(l), None, None) => Ok((Objective::loss(l), steps)),
        (None, Some(r), None) => Ok((Objective::reward(r), steps)),
        (None, None, Some(t)) => {
            let (output, file) = t.split_once('=').ok_or_else(|| {
                miette!(
                    help = "write `--match OUTPUT=FILE.npz`, e.g. `--match tip=recorded.npz`",
                    "`{t}` is not OUTPUT=FILE"
                )
            })?;
            let info = scene.compiled.layout().output(output).ok_or_else(|| {
                let known: Vec<&str> = scene
                    .compiled
                    .layout()
                    .outputs
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect();
                miette!(
                    help = format!("the scene's outputs: {}", known.join(", ")),
                    "no output named `{output}`"
                )
            })?;
            let (shape, data) = crate::files::read_npz(Path::new(file), output)?;
            if shape.len() != 3 || shape[2] as usize != info.len || shape[0] < 2 {
                return Err(miette!(
                    help = "record it with `joule run SCENE --out FILE.npz` (shape: steps + 1, environments, components)",
                    "`{output}` in `{file}` has shape {shape:?}; expected (steps + 1, environments, {})",
                    info.len
                ));
            }
            let recorded = shape[0] as usize - 1;
            let (batch, len) = (shape[1] as usize, info.len);
            // Component c of environment 0 after step t + 1 (row t + 1).
            let at = |t: usize, c: usize| data[((t + 1) * batch) * len + c];
            if let Some(h) = o.window {
                if h == 0 || h > recorded || steps_given {
                    return Err(miette!(
                        help = format!("give `--window H` with 1 <= H <= {recorded} (the recording's steps), and no `--steps`"),
                        "cannot cut `{file}` ({recorded} steps) into windows of {h} steps"
                    ));
                }
                // Window k covers steps k h + 1 ..= (k + 1) h of environment 0.
                let windows = recorded / h;
                let targets = (0..h)
                    .map(|t| {
                        (0..len)
                            .map(|c| (0..windows).map(|k| at(k * h + t, c)).collect())
                            .collect()
                    })
                    .collect();
                return Ok((Objective::track(output, targets), h));
            }
            let steps = if steps_given { steps } else { recorded };
            let row = |t: usize| -> Vec<Vec<f64>> { (0..len).map(|c| vec![at(t, c)]).collect() };
            if o.chamfer {
                // Imitation: the whole demonstration, whatever the horizon.
                return Ok((
                    Objective::chamfer(output, (0..recorded).map(row).collect()),
                    steps,
                ));
            }
            if steps > recorded {
                return Err(miette!(
                    "`{file}` records {recorded} steps; cannot match {steps}"
                ));
            }
            Ok((
                Objective::track(output, (0..steps).map(row).collect()),
                steps,
            ))
        }
        _ => Err(miette!("give one of `--loss`, `--reward` and `--match`")),
    }
}

/// `--window H`: the recording (`--match`'s file) cut into windows of `h`
/// steps, each from its recorded state, with its stretch of the controls
/// (`controls`, required when the scene declares any).
fn windows(
    scene: &Scene,
    o: &OptimizeArgs,
    h: usize,
    controls: Option<&Path>,
) -> Result<Vec<Window>> {
    let file = o
        .track
        .as_deref()
        .and_then(|t| t.split_once('='))
        .map(|t| t.1);
    let file = Path::new(file.expect("--window requires a checked --match"));
    let states = crate::files::read_states(file, scene.dofs(), "--window")?;
    let recorded = states.len().saturating_sub(1);
    if recorded < h {
        return Err(miette!(
            help = "record it with `joule run SCENE --out rec.npz --state`",
            "`{}` records the states of {recorded} steps, fewer than a window's {h}",
            file.display()
        ));
    }
    let nc = scene.model().controls.len();
    let schedule = match controls {
        Some(path) => read_plan(path, scene, recorded)?,
        None if nc == 0 => vec![vec![]; recorded],
        None => {
            return Err(miette!(
                help = format!(
                    "replay the recording's controls: `--controls {}`",
                    file.display()
                ),
                "the windows would run with zero controls, and the scene has {nc}"
            ))
        }
    };
    Ok((0..recorded / h)
        .map(|k| Window {
            state: states[k * h].clone(),
            schedule: schedule[k * h..(k + 1) * h].to_vec(),
        })
        .collect())
}

/// Writes a control plan, `[step][control]`: `.csv` (a `step` column, then one
/// column per control, named as the scene names them) or `.npy` (steps x
/// controls, f64). [`read_plan`] reads it back for `joule run --controls`.
fn write_schedule(path: &Path, scene: &Scene, schedule: &[Vec<f64>]) -> Result<()> {
    let names: Vec<String> = scene
        .model()
        .controls
        .iter()
        .map(|c| c.name.clone())
        .collect();
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "csv" => write_atomically(path, |w| {
            writeln!(w, "step,{}", names.join(","))?;
            for (t, u) in schedule.iter().enumerate() {
                let row: Vec<String> = u.iter().map(f64::to_string).collect();
                writeln!(w, "{t},{}", row.join(","))?;
            }
            Ok(())
        }),
        "npy" => write_atomically(path, |w| {
            let shape = [schedule.len() as u64, names.len() as u64];
            let mut npy = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&shape)
                .writer(w)
                .begin_nd()?;
            for u in schedule.iter().flatten() {
                npy.push(u)?;
            }
            npy.finish()
        }),
        other => Err(miette!(
            help = "write `--out FILE.csv` or `FILE.npy`",
            "unknown output format `.{other}`"
        )),
    }
}

/// Reads a control plan as [`write_schedule`] writes it, for `steps` steps of
/// `scene`: [`load_plan`], and exactly `steps` rows.
pub fn read_plan(path: &Path, scene: &Scene, steps: usize) -> Result<Vec<Vec<f64>>> {
    let plan = load_plan(path, scene)?;
    if plan.len() != steps {
        return Err(miette!(
            help = format!(
                "run as many steps as the plan has: `--steps {}`",
                plan.len()
            ),
            "`{}` plans {} steps, but the run has {steps}",
            path.display(),
            plan.len()
        ));
    }
    Ok(plan)
}

/// Reads a control plan as [`write_schedule`] writes it for `scene`, of any
/// number of steps: its shape (steps x controls, the CSV's columns named as
/// the scene's controls), every value finite and inside its control's range.
pub fn load_plan(path: &Path, scene: &Scene) -> Result<Vec<Vec<f64>>> {
    let controls = &scene.model().controls;
    let names: Vec<&str> = controls.iter().map(|c| c.name.as_str()).collect();
    let file = path.display();
    if controls.is_empty() {
        return Err(miette!(
            help = "a plan drives a scene's `control` items; this scene declares none",
            "cannot replay `{file}`: the scene has no controls"
        ));
    }
    let read = || read_file(path, "give a plan written by `joule optimize --out`");
    let plan = match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "csv" => plan_csv(&read()?, &names, path)?,
        "npy" => plan_npy(&read()?, names.len(), path)?,
        "npz" => crate::files::read_applied(path, names.len())?,
        other => {
            return Err(miette!(
                help = "give `--controls FILE.csv` or `FILE.npy`, as `joule optimize --out` writes, or a recording `joule run --out FILE.npz` wrote",
                "unknown plan format `.{other}`"
            ))
        }
    };
    for (t, row) in plan.iter().enumerate() {
        for (v, c) in row.iter().zip(controls) {
            if !v.is_finite() {
                return Err(miette!(
                    help = "every control of every step needs a finite value",
                    "`{file}`: {} at step {t} is {v}",
                    c.name
                ));
            }
            if let Some((lo, hi)) = c.bounds.filter(|(lo, hi)| !(lo..=hi).contains(&v)) {
                return Err(miette!(
                    help = format!("the scene declares `{}` in {lo}..{hi}", c.name),
                    "`{file}`: {} = {v} at step {t} is outside its range {lo}..{hi}",
                    c.name
                ));
            }
        }
    }
    Ok(plan)
}

/// A CSV plan: the header `step,<controls>`, then one row per step.
fn plan_csv(bytes: &[u8], names: &[&str], path: &Path) -> Result<Vec<Vec<f64>>> {
    let file = path.display();
    let expected = format!("step,{}", names.join(","));
    let text = std::str::from_utf8(bytes).map_err(|_| {
        miette!(
            help = format!("a plan is CSV text with the header `{expected}`"),
            "`{file}` is not UTF-8 text"
        )
    })?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").trim();
    if header != expected {
        return Err(miette!(
            help = format!(
                "this scene's plan has {} controls, the header `{expected}` (as `joule optimize --out` writes for it)",
                names.len()
            ),
            "`{file}` has the header `{header}`, not this scene's controls"
        ));
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(t, line)| {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != names.len() + 1 || cells[0] != t.to_string() {
                return Err(miette!(
                    help = format!("row {t} is `{t},` and {} values", names.len()),
                    "`{file}`: the row of step {t} is `{line}`"
                ));
            }
            cells[1..]
                .iter()
                .map(|c| {
                    c.parse().map_err(|_| {
                        miette!(
                            help = "values are numbers such as `0.5` or `-1e-3`",
                            "`{file}`: `{c}` at step {t} is not a number"
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// An `.npy` plan: f64, steps x controls.
fn plan_npy(bytes: &[u8], controls: usize, path: &Path) -> Result<Vec<Vec<f64>>> {
    let file = path.display();
    let bad = |why: String| {
        miette!(
            help = format!("a plan is an f64 array of shape (steps, {controls}), as `joule optimize --out plan.npy` writes"),
            "`{file}`: {why}"
        )
    };
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("not an .npy array ({e})")))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 || shape[1] as usize != controls {
        return Err(bad(format!("the array has shape {shape:?}")));
    }
    let data: Vec<f64> = npy
        .into_vec()
        .map_err(|e| bad(format!("not f64 values ({e})")))?;
    Ok(data.chunks(controls).map(<[f64]>::to_vec).collect())
}

/// Prints the result (text or `--json`); `evaluations` counts rollouts with
/// their adjoint (over every plan with `--mpc`).
fn report(
    scene: &Scene,
    problem: &Problem,
    s: &Solution,
    evaluations: usize,
    initial: f64,
    seconds: f64,
    o: &OptimizeArgs,
) {
    let m = scene.model();
    let params: Map<String, Value> = problem
        .wrt_params
        .iter()
        .map(|&i| (m.params[i].name.clone(), json!(s.params[i])))
        .collect();
    // MPC re-plans from every state: its plans, and the evaluations of all.
    let mpc = o.mpc().map(|horizon| {
        json!({"plans": s.schedule.len(), "horizon": horizon, "iterations_per_plan": o.iters})
    });
    if o.json {
        let mut obj = json!({
            "scene": o.scene.display().to_string(),
            "steps": problem.steps,
            "objective": {"start": initial, "end": s.value},
            "params": params,
            "evaluations": evaluations,
            "seconds": seconds,
        });
        if let Some(m) = mpc {
            obj["mpc"] = m;
        }
        if !problem.windows.is_empty() {
            obj["windows"] = json!(problem.windows.len());
        }
        if problem.wrt_controls {
            obj["controls"] = json!(s.schedule);
        }
        println!("{obj}");
        return;
    }
    if o.quiet {
        return;
    }
    let what = if problem.maximise {
        "maximised"
    } else {
        "minimised"
    };
    let effort = match o.mpc() {
        Some(horizon) => format!(
            "MPC: {} plans over {horizon} steps, up to {} iterations each, {evaluations} evaluations",
            s.schedule.len(),
            o.iters
        ),
        None if !problem.windows.is_empty() => format!(
            "{evaluations} evaluations of {} windows of {} steps",
            problem.windows.len(),
            problem.steps
        ),
        None => format!("{evaluations} evaluations"),
    };
    println!(
        "objective {what}: {initial:.9e} -> {:.9e} ({effort}, {seconds:.2} s)",
        s.value
    );
    for (name, v) in &params {
        println!("  {name:<20} {v}");
    }
    if problem.wrt_controls {
        println!(
            "  controls over {} steps (--out FILE.csv writes them)",
            s.schedule.len()
        );
    }
}
