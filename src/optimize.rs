//! `joule optimize`: trajectory optimisation, parameter identification and
//! model-predictive control through the simulator (see
//! `joule_runtime::optimize`).

use crate::progress::Progress;
use crate::run::{apply_params, compile, write_atomically, Common};
use joule_runtime::optimize::{evaluate, mpc, optimize, Method, Problem, Solution};
use joule_runtime::{Objective, Scene};
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use npyz::WriterBuilder;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// What to optimise.
pub struct Options {
    /// `loss NAME`, `reward NAME`, or `match OUTPUT=FILE.npz`.
    pub loss: Option<String>,
    /// A reward to maximise.
    pub reward: Option<String>,
    /// `OUTPUT=FILE.npz`: match a recorded trajectory.
    pub track: Option<String>,
    /// Match by the Chamfer distance (imitation) instead of step by step.
    pub chamfer: bool,
    /// `controls` and/or parameter names, comma-separated.
    pub wrt: String,
    /// Iterations (MPC: per step).
    pub iters: usize,
    /// The optimiser.
    pub method: Method,
    /// Receding horizon, when running as MPC.
    pub mpc: Option<usize>,
    /// The optimised controls, `[step][control]`, as `.csv` or `.npy`.
    pub out: Option<std::path::PathBuf>,
    /// Every evaluation (objective, gradient norm, time) as CSV.
    pub curve: Option<std::path::PathBuf>,
    /// One JSON object on standard output.
    pub json: bool,
    /// No table, no progress.
    pub quiet: bool,
}

/// `joule optimize`.
pub fn run(c: &Common, o: &Options, steps_given: bool) -> Result<()> {
    let (scene, _) = compile(c, false)?;
    let (objective, steps) = objective(&scene, o, c.steps, steps_given)?;
    let mut problem = Problem::new(&scene, objective, steps);
    let mut probe = scene.batch_threads(1, 1);
    apply_params(&mut probe, &c.params)?;
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
    if let Some(h) = o.mpc {
        if h == 0 || !problem.wrt_params.is_empty() || !problem.wrt_controls {
            return Err(miette!(
                help = "MPC plans controls only: `--wrt controls --mpc --horizon 20`",
                "`--mpc` needs `--wrt controls` alone and a horizon of at least one step"
            ));
        }
    }
    let spinner = Progress::spinner("optimising", !o.quiet && !o.json);
    let start = std::time::Instant::now();
    let solution = match o.mpc {
        None => optimize(&scene, &problem, o.method, o.iters).map_err(|e| miette!("{e}"))?,
        Some(h) => {
            let (applied, _) =
                mpc(&scene, &problem, o.method, h, steps, o.iters).map_err(|e| miette!("{e}"))?;
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
    report(&scene, &problem, &solution, initial, seconds, o);
    Ok(())
}

/// The objective and the number of steps it spans.
fn objective(
    scene: &Scene,
    o: &Options,
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
            let (shape, data) = read_npz(Path::new(file), output)?;
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

/// One array of an `.npz` archive: its shape and values (f64, C order).
pub(crate) fn read_npz(path: &Path, name: &str) -> Result<(Vec<u64>, Vec<f64>)> {
    let file = std::fs::File::open(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .into_diagnostic()
        .wrap_err_with(|| format!("`{}` is not an .npz archive", path.display()))?;
    let mut entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|_| {
            miette!(
                help = "the archive holds one array per output of the recorded scene",
                "`{}` has no array `{name}`",
                path.display()
            )
        })?;
    let mut bytes = vec![];
    std::io::Read::read_to_end(&mut entry, &mut bytes).into_diagnostic()?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .into_diagnostic()
        .wrap_err("not a .npy array")?;
    let shape = npy.shape().to_vec();
    let data = npy
        .into_vec::<f64>()
        .into_diagnostic()
        .wrap_err("expected float64 data")?;
    Ok((shape, data))
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

fn report(scene: &Scene, problem: &Problem, s: &Solution, initial: f64, seconds: f64, o: &Options) {
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
