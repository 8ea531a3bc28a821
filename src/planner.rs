//! `trajopt` policies from the command line: the planner that drives `joule
//! run --planner`, and `joule train` of a planner through its optimiser
//! (joule-learn's `planning`), whose learned params are a small JSON file.

use crate::args::check_params;
use crate::files::{read_file, write_atomically};
use crate::progress::Progress;
use crate::train::Outputs;
use joule_learn::planning::{planner_spec, PlanConfig, PlanTrainer};
use joule_runtime::plan::{Planner, PlannerConfig};
use joule_runtime::Scene;
use miette::{miette, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The scene's `trajopt` policy `name`, planning for `batch` environments
/// on a model with the world's params (`world`: the run's `--param`
/// overrides, checked), then a trained planner's (`learned`: a file `joule
/// train` wrote), then `params` (NAME=VALUE): as `joule train` starts it.
pub fn planner<'s>(
    scene: &'s Scene,
    name: &str,
    world: &[(String, f64)],
    learned: Option<&Path>,
    params: &[String],
    batch: usize,
    threads: usize,
) -> Result<Planner<'s>> {
    let spec = planner_spec(scene, Some(name)).map_err(|e| {
        miette!(
            help = "declare one, e.g. `policy plan = trajopt(horizon = 30, iters = 5, cost = REWARD)`, or name one the scene has",
            "{e}"
        )
    })?;
    let mut config = PlannerConfig::declared(spec);
    config.threads = threads;
    let mut planner = Planner::new(scene, config, batch).map_err(|e| miette!("{e}"))?;
    let mut set = |pairs: &[(String, f64)]| {
        for (n, v) in pairs {
            let i = scene.model().params.iter().position(|d| &d.name == n);
            planner.set_param(i.expect("a checked param"), *v);
        }
    };
    set(world);
    if let Some(path) = learned {
        set(&read_learned(scene, name, path)?);
    }
    set(&check_params(scene.model(), params)?);
    Ok(planner)
}

/// The model's params in a file `joule train` wrote for the planner `name`,
/// checked against the scene's declarations.
fn read_learned(scene: &Scene, name: &str, path: &Path) -> Result<Vec<(String, f64)>> {
    let help = "give the file `joule train --out` wrote for this scene's planner";
    let bytes = read_file(path, help)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        miette!(
            help = help,
            "`{}` is not a planner's params: {e}",
            path.display()
        )
    })?;
    if v["policy"].as_str() != Some(name) {
        return Err(miette!(
            help = help,
            "`{}` holds the params of the planner `{}`, not `{name}`",
            path.display(),
            v["policy"].as_str().unwrap_or("?")
        ));
    }
    let Some(params) = v["params"].as_object() else {
        return Err(miette!(help = help, "`{}` has no `params`", path.display()));
    };
    let pairs: Vec<String> = params
        .iter()
        .map(|(k, x)| format!("{k}={}", x.as_f64().map_or("?".into(), |f| f.to_string())))
        .collect();
    check_params(scene.model(), &pairs)
        .map_err(|e| miette!(help = help, "`{}`: {e}", path.display()))
}

/// What `joule train` asks of a planner's run.
pub struct TrainPlan<'a> {
    pub scene: &'a Path,
    pub policy: &'a str,
    pub config: PlanConfig,
    pub iters: usize,
    pub checkpoint: Option<&'a Path>,
    pub every: usize,
    pub resume: Option<&'a Path>,
    /// `--batch` as given (a resumed run must not change it).
    pub batch: Option<usize>,
    pub outputs: &'a Outputs,
}

/// `joule train` (and `imitate`) of a `trajopt` policy: `iters` iterations
/// in all (a resumed run continues to that total), checkpoints, the learned
/// params written to `--out` (`planner.json` by default).
pub fn train(scene: &Scene, t: TrainPlan) -> Result<()> {
    // A planner's params are a JSON file, not weights.
    let o = t.outputs;
    let out = if o.out == Path::new("policy.safetensors") {
        PathBuf::from("planner.json")
    } else {
        o.out.clone()
    };
    let mut trainer = match t.resume {
        Some(path) => {
            let bytes = read_file(path, "give a file written by `joule train --checkpoint`")?;
            let trainer = PlanTrainer::resume(scene, &bytes).map_err(|e| {
                miette!(
                    help = "resume with the scene the checkpoint was trained on",
                    "cannot resume from `{}`: {e}",
                    path.display()
                )
            })?;
            crate::train::resumed_batch(t.batch, path, trainer.config().batch)?;
            trainer
        }
        None => PlanTrainer::new(scene, t.config).map_err(|e| {
            miette!(
                help = "a planner learns the params its `learn = [..]` lists, from a `reward` of the scene",
                "{e}"
            )
        })?,
    };
    let done = trainer.curve().0.len();
    let mut bar = Progress::iterations(
        t.iters.saturating_sub(done) as u64,
        "train",
        !o.quiet && !o.json,
    );
    let save = |tr: &PlanTrainer| -> Result<()> {
        if let Some(path) = t.checkpoint {
            let bytes = tr.checkpoint();
            write_atomically(path, |w| w.write_all(&bytes))?;
        }
        Ok(())
    };
    for i in done..t.iters {
        let (p, stats) = trainer.iterate().map_err(|e| miette!("{e}"))?;
        bar.message(&format!(
            "return {:.3} | {:.2} Newton iterations per plan | {} plans truncated",
            p.reward,
            stats.iterations as f64 / stats.plans.max(1) as f64,
            stats.not_converged
        ));
        bar.inc();
        if t.every > 0 && (i + 1) % t.every == 0 {
            save(&trainer)?;
        }
    }
    bar.finish();
    save(&trainer)?;
    let learned = trainer.learned();
    let model = scene.model();
    let mut params = serde_json::Map::new();
    // Every param of the model: the learned ones and those set apart from the world's.
    for d in &model.params {
        let v = learned
            .iter()
            .find(|l| l.0 == d.name)
            .map(|l| l.1)
            .or_else(|| {
                trainer
                    .config()
                    .model
                    .iter()
                    .find(|m| m.0 == d.name)
                    .map(|m| m.1)
            })
            .unwrap_or(d.value);
        if !v.is_finite() {
            return Err(miette!(
                help =
                    "the training diverged: nothing was written; train again with a smaller `--lr`",
                "cannot write `{}`: the learned param `{}` is {v}",
                out.display(),
                d.name
            ));
        }
        params.insert(d.name.clone(), json!(v));
    }
    let file = json!({"policy": t.policy, "params": params});
    write_atomically(&out, |w| w.write_all(file.to_string().as_bytes()))?;
    let imitation = trainer.config().imitate.is_some();
    let (curve, stats) = trainer.curve();
    if let Some(path) = &o.curve {
        crate::train::write_curve(path, curve)?;
    }
    let plans: usize = stats.iter().map(|s| s.plans).sum();
    let truncated: usize = stats.iter().map(|s| s.not_converged).sum();
    let newton: usize = stats.iter().map(|s| s.iterations).sum();
    let last = curve.last();
    if o.json {
        println!(
            "{}",
            json!({
                "scene": t.scene.display().to_string(),
                "algo": "apg",
                "objective": if imitation { "imitation".to_string() } else { trainer.config().reward.clone() },
                "policy": t.policy,
                "iterations": last.map_or(0, |p| p.iteration),
                "env_steps": last.map_or(0, |p| p.env_steps),
                "seconds": last.map_or(0.0, |p| p.wall),
                "first_return": curve.first().map(|p| p.reward),
                "return": last.map(|p| p.reward),
                "learned": learned.iter().map(|l| (l.0.clone(), json!(l.1))).collect::<serde_json::Map<_, _>>(),
                "plans": plans,
                "newton_per_plan": newton as f64 / plans.max(1) as f64,
                "plans_truncated": truncated,
                "out": out,
            })
        );
    } else if !o.quiet {
        if let Some(p) = last {
            let what = if imitation {
                "minus the squared distance to the demonstration"
            } else {
                "mean episode return"
            };
            println!(
                "{} iterations, {} environment steps, {:.1} s: {what} {:.4} (first {:.4})",
                p.iteration, p.env_steps, p.wall, p.reward, curve[0].reward
            );
        }
        for (n, v) in &learned {
            println!("  {n} = {v}");
        }
        println!(
            "  {plans} plans, {:.2} Newton iterations per plan, {truncated} out of iterations (their derivatives truncated)",
            newton as f64 / plans.max(1) as f64
        );
        println!("wrote {}", out.display());
    }
    Ok(())
}
