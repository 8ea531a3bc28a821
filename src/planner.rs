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

/// The planner's model when `--planner-model FILE` names a scene of its own.
pub fn model_scene(path: Option<&Path>) -> Result<Option<Scene>> {
    path.map(|p| crate::load::scene(p, &crate::load::Options::default()).map(|l| l.scene))
        .transpose()
}

/// The `trajopt` policy `name` of the planner's model (`model`, a scene of
/// its own, or else the world scene itself), planning for `batch`
/// environments of the world: on a model with the world's params (`world`:
/// the run's `--param` overrides, checked; not for a model of its own),
/// then a trained planner's (`learned`: a file `joule train` wrote), then
/// `params` (NAME=VALUE): as `joule train` starts it.
pub fn planner<'s>(
    (scene, model): (&'s Scene, Option<&'s Scene>),
    name: &str,
    world: &[(String, f64)],
    learned: Option<&Path>,
    params: &[String],
    batch: usize,
    threads: usize,
) -> Result<Planner<'s>> {
    let own = model.unwrap_or(scene);
    let spec = planner_spec(own, Some(name)).map_err(|e| {
        miette!(
            help = if model.is_some() {
                "declare the planner in the model's scene, e.g. `policy plan = trajopt(horizon = 30, iters = 5, cost = REWARD)`: its cost and learned params are the model's"
            } else {
                "declare one, e.g. `policy plan = trajopt(horizon = 30, iters = 5, cost = REWARD)`, or name one the scene has"
            },
            "{e}"
        )
    })?;
    let mut config = PlannerConfig::declared(spec);
    config.threads = threads;
    let mut planner = Planner::new(own, config, batch).map_err(|e| miette!("{e}"))?;
    if model.is_some() {
        planner = planner.for_world(scene).map_err(model_mismatch)?;
    }
    let mut set = |pairs: &[(String, f64)]| {
        for (n, v) in pairs {
            let i = own.model().params.iter().position(|d| &d.name == n);
            planner.set_param(i.expect("a checked param"), *v);
        }
    };
    if model.is_none() {
        set(world);
    }
    if let Some(path) = learned {
        set(&read_learned(own, name, path)?);
    }
    set(&check_params(own.model(), params)?);
    Ok(planner)
}

/// A resumed planner's run must plan on the model its checkpoint planned
/// on: `--planner-model` as the checkpoint has it (or none where it has
/// none). Checked before anything is compiled.
pub fn check_resumed_model(resume: Option<&Path>, given: Option<&Path>) -> Result<()> {
    let Some(path) = resume else {
        return Ok(());
    };
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(()); // the resume itself reports it
    };
    let Ok(config) = PlanTrainer::checkpoint_config(&bytes) else {
        return Ok(()); // not a planner's checkpoint
    };
    let given = given.map(|p| p.display().to_string());
    if config.model_scene == given {
        return Ok(());
    }
    let help = "resume with the model the checkpoint planned on";
    Err(match config.model_scene {
        Some(m) => miette!(
            help = help,
            "`{}` planned on the model `{m}`: give `--planner-model {m}`",
            path.display()
        ),
        None => miette!(
            help = help,
            "`{}` planned on the world scene itself: leave `--planner-model` out",
            path.display()
        ),
    })
}

/// The error of a `--planner-model` that does not fit the world.
pub fn model_mismatch(e: joule_runtime::NameError) -> miette::Report {
    miette!(
        help = "a planner's model may leave out the world's bodies, particles and joints, but what it has must bear the world's names, and it must plan the world's controls",
        "`--planner-model` does not fit the world: {e}"
    )
}

/// The `trajopt` policy whose learned params the file at `path` holds (the
/// JSON `joule train` writes for a planner: `{"policy": NAME, "params":
/// {..}}`), or `None` for any other file (network weights, or none there:
/// their readers say what is wrong).
pub fn learned_policy(path: &Path) -> Option<String> {
    // Network weights (safetensors) open with their header's length, never
    // `{`: look at the start before reading a file of weights whole.
    let file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let first = std::io::Read::bytes(file)
        .map_while(Result::ok)
        .find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return None;
    }
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["params"].is_object().then_some(())?;
    v["policy"].as_str().map(str::to_string)
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
    /// The planner's model when it is a scene of its own, and its file.
    pub model: Option<(&'a Scene, &'a Path)>,
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
    let own = t.model.map_or(scene, |m| m.0);
    // The checkpoint records the model's file, so a resumed run is checked
    // against it (`check_resumed_model`).
    let mut config = t.config;
    config.model_scene = t.model.map(|m| m.1.display().to_string());
    let mut trainer = match t.resume {
        Some(path) => {
            let bytes = read_file(path, "give a file written by `joule train --checkpoint`")?;
            let resumed = match t.model {
                Some((model, _)) => PlanTrainer::resume_with_model(scene, model, &bytes),
                None => PlanTrainer::resume(scene, &bytes),
            };
            let trainer = resumed.map_err(|e| {
                miette!(
                    help = "resume with the scene the checkpoint was trained on",
                    "cannot resume from `{}`: {e}",
                    path.display()
                )
            })?;
            crate::train::resumed_batch(t.batch, path, trainer.config().batch)?;
            trainer
        }
        None => match t.model {
            Some((model, _)) => PlanTrainer::with_model(scene, model, config),
            None => PlanTrainer::new(scene, config),
        }
        .map_err(|e| {
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
            let bytes = tr.checkpoint().map_err(|e| miette!("{e}"))?;
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
    let model = own.model();
    let mut params = serde_json::Map::new();
    // The learned params and those set apart from the world's: the others
    // follow the world a run plans in (its `--param`), as they did in
    // training.
    for d in &model.params {
        let set_apart = || {
            let m = &trainer.config().model;
            m.iter().find(|m| m.0 == d.name).map(|m| m.1)
        };
        let Some(v) = learned
            .iter()
            .find(|l| l.0 == d.name)
            .map(|l| l.1)
            .or_else(set_apart)
        else {
            continue;
        };
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
    let cloning = trainer.config().clone.is_some();
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
                "algo": if cloning { json!("bc") } else { json!(trainer.config().algo) },
                "objective": if cloning { "cloning".to_string() } else if imitation { "imitation".to_string() } else { trainer.config().reward.clone() },
                "policy": t.policy,
                "iterations": last.map_or(0, |p| p.iteration),
                "env_steps": last.map_or(0, |p| p.env_steps),
                "seconds": last.map_or(0.0, |p| p.wall),
                "first_return": curve.iter().map(|p| p.reward).find(|r| r.is_finite()),
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
            let what = if cloning {
                "minus the squared control error (in half ranges)"
            } else if imitation {
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
