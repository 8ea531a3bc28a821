//! `joule optimize`: trajectory optimisation, parameter identification and
//! model-predictive control through the simulator (see
//! `joule_runtime::optimize`).

use crate::files::write_atomically;
use crate::load::{self, apply_params};
use crate::progress::Progress;
use clap::ValueEnum;
use joule_runtime::optimize::{evaluate, mpc, Method, Problem, Solution};
use joule_runtime::{Objective, Scene};
use miette::{miette, Result};
use npyz::WriterBuilder;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Optimise controls (trajectory optimisation, MPC) or fit parameters through the simulator.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --steps 60 --optimizer lbfgs\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --mpc --horizon 20 --steps 60\n  joule run scenes/spring_chain.joule --steps 100 --param EA=3000 --out rec.npz\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --wrt EA        # identify EA\n  joule optimize scenes/spring_chain.joule --match tip=rec.npz --chamfer --wrt EA   # imitate (ILD)\n  joule optimize scenes/pendulum.joule --loss miss --wrt g --curve curve.csv && joule plot curve.csv -o curve.png"
)]
pub struct OptimizeArgs {
    /// The scene file.
    scene: PathBuf,
    /// Steps per rollout (default: 100, or the length of the `--match` recording).
    #[arg(long)]
    steps: Option<usize>,
    /// Override a parameter (repeatable); optimised ones start there.
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
    let scene = load::scene(&o.scene, &load::Options::default())?.scene;
    let (objective, steps) = objective(&scene, &o, o.steps.unwrap_or(100), o.steps.is_some())?;
    let mut problem = Problem::new(&scene, objective, steps);
    let mut probe = scene.batch_threads(1, 1);
    apply_params(&mut probe, &o.params)?;
    let m = scene.model();
    problem.params = m
        .params
        .iter()
        .map(|p| probe.param(&p.name, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| miette!("{e}"))?;
    for w in o.wrt.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if w == "controls" {
            if m.controls.is_empty() {
                return Err(miette!(
                    help = "declare `control u[k in 0..n] in -1..1`",
                    "the scene has no controls"
                ));
            }
            problem.wrt_controls = true;
        } else {
            let i = m.params.iter().position(|p| p.name == w).ok_or_else(|| {
                let known: Vec<&str> = m.params.iter().map(|p| p.name.as_str()).collect();
                miette!(
                    help = format!("`--wrt controls` or parameters: {}", known.join(", ")),
                    "unknown parameter `{w}`"
                )
            })?;
            problem.wrt_params.push(i);
        }
    }
    if let Some(h) = o.mpc() {
        if h == 0 || !problem.wrt_params.is_empty() || !problem.wrt_controls {
            return Err(miette!(
                help = "MPC plans controls only: `--wrt controls --mpc --horizon 20`",
                "`--mpc` needs `--wrt controls` alone and a horizon of at least one step"
            ));
        }
    }
    let spinner = Progress::spinner("optimising", !o.quiet && !o.json);
    let start = std::time::Instant::now();
    let solution = match o.mpc() {
        None => joule_runtime::optimize::optimize(&scene, &problem, o.method(), o.iters)
            .map_err(|e| miette!("{e}"))?,
        Some(h) => {
            let (applied, _) =
                mpc(&scene, &problem, o.method(), h, steps, o.iters).map_err(|e| miette!("{e}"))?;
            // The closed-loop result: the applied controls, evaluated over the whole run.
            let replay = Problem {
                schedule: applied.clone(),
                ..problem.clone()
            };
            let value = evaluate(&scene, &replay).map_err(|e| miette!("{e}"))?;
            Solution {
                params: problem.params.clone(),
                schedule: applied,
                value,
                history: vec![],
            }
        }
    };
    spinner.finish();
    let seconds = start.elapsed().as_secs_f64();
    let initial = evaluate(&scene, &problem).map_err(|e| miette!("{e}"))?;
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
    report(&scene, &problem, &solution, initial, seconds, &o);
    Ok(())
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
            let steps = if steps_given { steps } else { recorded };
            let (batch, len) = (shape[1] as usize, info.len);
            // Environment 0 of the recording; row t + 1 is the state after step t + 1.
            let row = |t: usize| -> Vec<Vec<f64>> {
                (0..len)
                    .map(|c| vec![data[((t + 1) * batch) * len + c]])
                    .collect()
            };
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

fn report(
    scene: &Scene,
    problem: &Problem,
    s: &Solution,
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
    if o.json {
        let mut obj = json!({
            "objective": {"start": initial, "end": s.value},
            "params": params,
            "evaluations": s.history.len(),
            "seconds": seconds,
        });
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
    println!(
        "objective {what}: {initial:.9e} -> {:.9e} ({} evaluations, {seconds:.2} s)",
        s.value,
        s.history.len()
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
