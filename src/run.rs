//! `joule run` and `joule grad`: simulate a scene, write trajectories, and
//! differentiate objectives.

use crate::args::{check_params, SimArgs, SurrogateArg};
use crate::files::{read_file, write_trajectory, States};
use crate::load::{self, apply_params, Loaded};
use crate::progress::Progress;
use crate::viewer::{Html, Recorder};
use joule::fdcheck;
use joule::gait;
use joule_compiler::kernels::OutputInfo;
use joule_compiler::model::{ObjectiveKind, Precision};
use joule_runtime::{Event, Objective};
use miette::{miette, Result};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Simulate a batch of environments and report observations, losses and rewards (each
/// reward summed over the steps up to the episode's end, the first step a `done` item fires,
/// as training counts returns; `episode_end` in `--json`).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("view").multiple(true)))]
#[command(
    after_help = "Examples:\n  joule run scenes/hanging_cloth.joule --steps 120\n  joule run scenes/soft_block.joule --batch 64 --param youngs=3e5 --json\n  joule run scenes/pendulum.joule --steps 1000 --out pendulum.csv\n  joule run scenes/cloth_drape.joule --steps 150 --html drape.html   # open in a browser\n  joule run scenes/ant.joule --steps 200 --batch 4 --gif ant.gif   # four ants side by side\n  joule optimize scenes/reacher.joule --loss distance --wrt controls --steps 60 --out plan.csv\n  joule run scenes/reacher.joule --steps 60 --controls plan.csv --html plan.html"
)]
pub struct RunArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Environments simulated at once.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Write the trajectory of every output: `.csv`, `.npy` or `.npz`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also record every environment's free DOFs in the `.npz` (`state.x`, `state.v`:
    /// [steps + 1][environment][DOF]); `joule imitate --window` starts its windows from them.
    #[arg(long, requires = "out")]
    state: bool,
    /// Drive the scene's controls by a trained policy (`joule train` / `joule imitate`
    /// weights), or by a `trajopt` policy with the params `joule train` learned for it
    /// (its JSON: the same as `--planner NAME --planner-learned FILE`).
    #[arg(long, value_name = "P.safetensors")]
    policy: Option<PathBuf>,
    /// Drive the scene's controls by a plan, the same in every environment: one row
    /// per step, as `joule optimize --out` writes it (`.csv` or `.npy`), or
    /// the controls a recording's environment 0 applied (`--out FILE.npz`).
    #[arg(long, value_name = "PLAN.csv", conflicts_with = "policy")]
    controls: Option<PathBuf>,
    /// Drive the scene's controls by its `trajopt` policy NAME: every step,
    /// each environment plans the policy's horizon from its state (on a
    /// model of the world: the scene with the run's `--param`s) and applies
    /// the plan's first controls.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["policy", "controls"])]
    planner: Option<String>,
    /// A param of the planner's model, NAME=VALUE (repeatable): the model it
    /// plans on differs from the world there (`--param` sets both).
    #[arg(long = "planner-param", value_name = "NAME=VALUE")]
    planner_params: Vec<String>,
    /// The planner's params as `joule train` learned them (the JSON it wrote
    /// with `--out`); `--planner-param` still overrides them.
    #[arg(long, value_name = "FILE.json")]
    planner_learned: Option<PathBuf>,
    /// The planner's model as a scene of its own (it declares the `trajopt`
    /// policy, its cost and params; its state is read out of the world's by
    /// name, and it plans the world's controls; `--param` then sets the
    /// world alone).
    #[arg(long, value_name = "MODEL.joule")]
    planner_model: Option<PathBuf>,
    /// Write a self-contained HTML page that plays the trajectory back in 3D.
    #[arg(long, value_name = "F.html", group = "view")]
    html: Option<PathBuf>,
    /// Load three.js on the `--html` page from URL (a path relative to the
    /// page, e.g. `../../src/vendor/three.min.js`, or an http(s) address)
    /// instead of inlining its 668 kB: pages in one folder share one copy.
    #[arg(long, value_name = "URL", requires = "html")]
    html_three: Option<String>,
    /// Write an animated GIF of the run: the page's shapes and default view,
    /// drawn without a browser (at most 150 frames, 640 x 400).
    #[arg(long, value_name = "F.gif", group = "view")]
    gif: Option<PathBuf>,
    /// Write every kept frame (up to 600) as a PNG, `frame_0000.png`, ..., into
    /// a new folder: the `--gif` pictures, losslessly.
    #[arg(long, value_name = "DIR", group = "view")]
    frames: Option<PathBuf>,
    /// Show only environment K on the `--html` page, in the `--gif` and the `--frames`.
    #[arg(
        long,
        value_name = "K",
        requires = "view",
        conflicts_with = "html_envs"
    )]
    html_env: Option<usize>,
    /// Show the first N environments side by side on the `--html` page, in the
    /// `--gif` and the `--frames` (at most 16; default: the whole batch up to 4).
    #[arg(long, value_name = "N", requires = "view")]
    html_envs: Option<usize>,
    /// Draw these three-component outputs (an `observe` of a point: a
    /// target, a fingertip) as markers, a colour each, on the `--html` page,
    /// in the `--gif` and the `--frames`.
    #[arg(long, value_name = "OUTPUT", value_delimiter = ',', requires = "view")]
    mark: Vec<String>,
    /// Draw the points the bodies' contacts act at (the contact energies'
    /// body points, with their radii) on the `--html` page, in the `--gif`
    /// and the `--frames`.
    #[arg(long, requires = "view")]
    contacts: bool,
    /// Report the gait of each environment (with `--json`) or of
    /// environment 0: each foot's duty factor, touchdowns per second,
    /// clearance and slip, the root's travel and heading, and the controls'
    /// strongest frequency (docs/learning.md, "Gait quality").
    #[arg(long)]
    gait: bool,
    /// Start every environment with its velocities jittered by N(0, SIGMA)
    /// per component (as `joule train --noise`), before the scene's `reset`
    /// items are drawn: an evaluation over a batch of starts.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.0)]
    noise: f64,
    /// Seed of the starts: the `--noise` jitter and the scene's `reset`
    /// draws (a scene with `reset` items starts every environment from them).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Print nothing but warnings and errors.
    #[arg(long)]
    quiet: bool,
}

/// A gait report as JSON.
fn gait_json(g: &gait::Gait) -> Value {
    json!({
        "seconds": g.seconds,
        "root": g.root.as_ref().map(|r| json!({
            "name": r.name, "forward": r.forward, "lateral": r.lateral, "heading_deg": r.heading,
        })),
        "slip_ratio": g.slip_ratio(),
        "controls": g.controls.as_ref().map(|c| json!({
            "dominant_hz": c.dominant, "high_share": c.high,
        })),
        "feet": g.feet.iter().map(|f| json!({
            "name": f.name, "duty": f.duty, "touchdowns_per_s": f.touchdowns,
            "clearance": f.clearance, "slip": f.slip, "slip_speed": f.slip_speed,
        })).collect::<Vec<_>>(),
    })
}

/// Records, per output, the first `step` and environment at which any of its
/// components in `values` (`[row][env]`) is NaN or infinite.
fn note_non_finite(
    first: &mut [Option<(usize, usize)>],
    outputs: &[OutputInfo],
    values: &[Vec<f64>],
    step: usize,
) {
    for (o, seen) in outputs.iter().zip(first.iter_mut()) {
        if seen.is_none() {
            *seen = values[o.offset..o.offset + o.len]
                .iter()
                .find_map(|row| row.iter().position(|v| !v.is_finite()))
                .map(|env| (step, env));
        }
    }
}

/// Differentiate a loss after N steps with respect to parameters (adjoint through time).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule grad scenes/hanging_cloth.joule --loss sag --steps 60\n  joule grad scenes/pendulum.joule --loss miss --wrt g --check"
)]
pub struct GradArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// The `loss` item to differentiate (after the last step).
    #[arg(long, required_unless_present = "reward", conflicts_with = "reward")]
    loss: Option<String>,
    /// Or a `reward` item, summed over the steps.
    #[arg(long)]
    reward: Option<String>,
    /// Parameters to differentiate with respect to, comma-separated (default: all).
    #[arg(long)]
    wrt: Option<String>,
    /// Also compute central finite differences over a sweep of steps (the
    /// step whose difference agrees best with its neighbour's) and the
    /// adjoint's relative error against it, with a verdict: agree, disagree,
    /// a kink (one-sided differences that differ at every step: no
    /// derivative at this point), or unresolved (a derivative at round-off).
    #[arg(long)]
    check: bool,
    /// With `--check`: one finite-difference step (in the parameter's units) instead of the sweep.
    #[arg(long, value_name = "H", requires = "check")]
    fd_step: Option<f64>,
    /// Exit non-zero when the objective or a gradient is not finite, the
    /// simulation diverged, or the `--check` fails.
    #[arg(long)]
    strict: bool,
    /// Instead of the parameters' gradient: the gradient of the objective
    /// smoothed over Gaussian noise of this standard deviation on every
    /// control of every step (around 0), estimated from the adjoint (first
    /// order) and from antithetic differences of the simulation (zeroth
    /// order), with their agreement and spread.
    #[arg(long, value_name = "SIGMA", conflicts_with_all = ["check", "wrt"])]
    smooth: Option<f64>,
    /// With `--smooth`: antithetic pairs of samples (one batch of twice as
    /// many environments).
    #[arg(long, default_value_t = 512, requires = "smooth")]
    samples: usize,
    /// With `--smooth`: the noise's seed.
    #[arg(long, default_value_t = 0, requires = "smooth")]
    seed: u64,
    /// With `--smooth`: measure along a recorded trajectory instead of from
    /// the scene's start (`FILE.npz:K`, a `joule run SCENE --out FILE.npz
    /// --state` recording of this scene): every rollout starts from its
    /// environment 0's state after K steps, restored exactly, and the noise
    /// perturbs the controls it applied over the next `--steps` steps. A
    /// policy's recording measures the gradient in motion, where its
    /// contacts are.
    #[arg(long, value_name = "FILE.npz:K", requires = "smooth")]
    from: Option<String>,
    /// What the gradient makes of `backward =` surrogates: differentiate
    /// each surrogate energy at the simulated states (`energy`), a step of
    /// the surrogate model from each simulated state (`model`), or nothing
    /// (`off`: the simulation's exact derivative). Default: the scene's
    /// `surrogate` setting.
    #[arg(long, value_enum)]
    surrogate: Option<SurrogateArg>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Prints the simulation's events (divergence, non-convergence) as warnings, the first ten.
fn report_events(events: &[Event]) {
    const SHOWN: usize = 10;
    for e in events.iter().take(SHOWN) {
        eprintln!("warning: {e}");
    }
    if events.len() > SHOWN {
        eprintln!("warning: ... and {} more", events.len() - SHOWN);
    }
}

/// `--policy` given a planner's learned params (the JSON `joule train` wrote
/// for a `trajopt` policy) is `--planner NAME --planner-learned FILE`; the
/// planner's other flags need a planner.
fn replay_planner(mut a: RunArgs) -> Result<RunArgs> {
    if let Some(name) = a.policy.as_deref().and_then(crate::planner::learned_policy) {
        if a.planner_learned.is_some() {
            return Err(miette!(
                help = "give the learned params once: `--policy FILE` or `--planner-learned FILE`",
                "`--policy` already gives the planner `{name}` its learned params"
            ));
        }
        a.planner_learned = a.policy.take();
        a.planner = Some(name);
    }
    if a.planner.is_none() {
        let flags = [
            (!a.planner_params.is_empty(), "--planner-param"),
            (a.planner_learned.is_some(), "--planner-learned"),
            (a.planner_model.is_some(), "--planner-model"),
        ];
        if let Some((_, flag)) = flags.iter().find(|f| f.0) {
            return Err(miette!(
                help = "drive the run by a planner: `--planner NAME`, or `--policy FILE` with the params `joule train` learned for it",
                "`{flag}` sets a planner, and this run has none"
            ));
        }
    }
    Ok(a)
}

/// `joule run`: simulate and report observations, losses and rewards; write
/// the trajectory to `--out` and a viewer page to `--html`; `--policy`
/// (weights) or `--controls` (a plan) sets the controls before every step.
pub fn run(a: RunArgs) -> Result<()> {
    let a = replay_planner(a)?;
    let workers = a.sim.threads.apply()?;
    let (c, batch, as_json, quiet) = (&a.sim, a.batch, a.json, a.quiet);
    if batch == 0 {
        return Err(miette!(
            help = "use `--batch 1` or more",
            "a batch needs at least one environment"
        ));
    }
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        return Err(miette!(
            help = "give the jitter's standard deviation in the scene's velocity units, e.g. `--noise 0.1` (0: no jitter)",
            "`--noise {}` is not a standard deviation",
            a.noise
        ));
    }
    let mut html = (a.html.is_some() || a.gif.is_some() || a.frames.is_some())
        .then(|| {
            Html::new(
                a.html.clone(),
                a.gif.clone(),
                a.frames.clone(),
                a.html_env,
                a.html_envs,
                batch,
            )
        })
        .transpose()?;
    let Loaded {
        scene,
        ms: compile_ms,
        ..
    } = load::scene(&c.scene, &c.options(false))?;
    let overrides = check_params(scene.model(), &c.params)?;
    if let Some(h) = html.as_mut() {
        h.mark(scene.compiled.layout(), &a.mark)?;
        h.contacts = a.contacts;
        if let Some(src) = &a.html_three {
            h.link_three(src)?;
        }
    }
    crate::args::check_batch(&scene, &format!("--batch {batch}"), batch)?;
    let mut sim = scene.batch_threads(batch, workers.max(1));
    apply_params(&mut sim, &overrides)?;
    if a.noise > 0.0 || !scene.model().reset.steps.is_empty() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        for e in 0..batch {
            sim.reset_env(e, a.noise, &mut rng);
        }
    }
    let policy = a
        .policy
        .as_deref()
        .map(|path| {
            let bytes = read_file(
                path,
                "give weights written by `joule train` or `joule imitate`",
            )?;
            joule_learn::Policy::from_bytes(&scene, &bytes).map_err(|e| {
                miette!(
                    help = "give weights that `joule train` or `joule imitate` wrote for this scene (its observations and controls decide the network's shape)",
                    "cannot drive `{}` with `{}`: {e}",
                    c.scene.display(),
                    path.display()
                )
            })
        })
        .transpose()?;
    let plan = a
        .controls
        .as_deref()
        .map(|path| crate::optimize::read_plan(path, &scene, c.steps))
        .transpose()?;
    let model = crate::planner::model_scene(a.planner_model.as_deref())?;
    let mut planner = a
        .planner
        .as_deref()
        .map(|name| {
            crate::planner::planner(
                (&scene, model.as_ref()),
                name,
                &overrides,
                a.planner_learned.as_deref(),
                &a.planner_params,
                batch,
                workers.max(1),
            )
        })
        .transpose()?;
    let mut planned = joule_learn::planning::PlanStats::default();
    let mut controls = scene.default_controls(batch);
    let mut viewer = html
        .as_ref()
        .map(|h| Recorder::new(scene.model(), h, c.steps));
    let outputs = scene.compiled.layout().outputs.clone();
    let record = a.out.is_some();
    if record {
        // Every step's outputs and controls, and with `--state` positions
        // and velocities, per environment, until the file is written.
        let per_step = scene.compiled.layout().output_rows()
            + scene.model().controls.len()
            + if a.state { 2 * scene.dofs() } else { 0 };
        let bytes = (c.steps as u64 + 1)
            .saturating_mul(batch as u64)
            .saturating_mul(8 * per_step as u64);
        crate::args::check_memory(
            &format!(
                "recording {} steps of {batch} environments (`--out`)",
                c.steps
            ),
            bytes,
            "record fewer steps or environments, or run several shorter recordings",
        )?;
    }
    let mut history: Vec<Vec<Vec<f64>>> = vec![];
    let mut states: Vec<States> = vec![];
    let record_state = a.out.is_some() && a.state;
    if let Some(path) = a.out.as_ref().filter(|_| a.state) {
        if path.extension().and_then(|e| e.to_str()) != Some("npz") {
            return Err(miette!(
                help = "write `--out FILE.npz` to record the state",
                "`--state` records into an .npz archive, not `{}`",
                path.display()
            ));
        }
    }
    let snapshot = |sim: &joule_runtime::Sim| -> States {
        (0..batch)
            .map(|e| (sim.positions(e), sim.velocities(e)))
            .unzip()
    };
    let mut reward_sum = vec![vec![0.0; batch]; outputs.len()];
    // The step at which each environment's episode ended (a `done` item
    // fired): its rewards count up to and including that step, as in training.
    let mut ended: Vec<Option<usize>> = vec![None; batch];
    let start = Instant::now();
    let mut current = sim.outputs();
    // The first step and environment at which each output was not finite.
    let mut non_finite: Vec<Option<(usize, usize)>> = vec![None; outputs.len()];
    note_non_finite(&mut non_finite, &outputs, &current, 0);
    if record {
        history.push(current.clone());
    }
    if record_state {
        states.push(snapshot(&sim));
    }
    let layout = gait::Layout::of(scene.model());
    if a.gait && layout.is_empty() {
        return Err(miette!(
            help = "`--gait` reads the bodies with ground contact points (`contact_soft`, `contact_coulomb`, `ground_soft`, `ground_point`, `ground_penalty`) and the particles with ground contact (`contact_soft_particle`, `contact_coulomb_particle`, `ground`), and the first free or moving body (else the free particles' centre of mass)",
            "`{}` has no moving body or particle to report a gait of",
            c.scene.display()
        ));
    }
    let mut gaits: Vec<gait::Recorder> = if a.gait {
        (0..batch)
            .map(|e| {
                let mut r = gait::Recorder::new(layout.clone());
                r.record(&sim.positions(e), None);
                r
            })
            .collect()
    } else {
        vec![]
    };
    // The controls each step applied, environment-major, for the gait and
    // an `.npz` recording (`control.applied`).
    let rows = scene.model().controls.len();
    let npz = a
        .out
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "npz"));
    let mut applied = vec![0.0; if a.gait || npz { batch * rows } else { 0 }];
    let mut applied_history: Vec<Vec<f64>> = vec![];
    let mut progress = Progress::steps(c.steps as u64, "simulating", !quiet && !as_json);
    if let Some(v) = &mut viewer {
        v.record(0, &mut sim);
    }
    for step in 1..=c.steps {
        if let Some(p) = &policy {
            p.act(&current, &mut controls).map_err(|e| miette!("{e}"))?;
            sim.set_controls(&controls).map_err(|e| miette!("{e}"))?;
        }
        if let Some(plan) = &plan {
            for (k, u) in plan[step - 1].iter().enumerate() {
                controls[k].fill(*u);
            }
            sim.set_controls(&controls).map_err(|e| miette!("{e}"))?;
        }
        if let Some(p) = &mut planner {
            let plans = p.act(&mut sim).map_err(|e| miette!("{e}"))?;
            plans.iter().for_each(|pl| planned.add(pl));
        }
        sim.step();
        progress.inc();
        current = sim.outputs();
        note_non_finite(&mut non_finite, &outputs, &current, step);
        for (k, o) in outputs.iter().enumerate() {
            if o.kind == ObjectiveKind::Reward {
                for (e, r) in reward_sum[k].iter_mut().enumerate() {
                    if ended[e].is_none() {
                        *r += current[o.offset][e];
                    }
                }
            }
        }
        for (e, end) in ended.iter_mut().enumerate() {
            let done = outputs
                .iter()
                .any(|o| o.kind == ObjectiveKind::Done && current[o.offset][e] > 0.5);
            if end.is_none() && done {
                *end = Some(step);
            }
        }
        if record {
            history.push(current.clone());
        }
        if record_state {
            states.push(snapshot(&sim));
        }
        if let Some(v) = &mut viewer {
            v.record(step, &mut sim);
        }
        if !applied.is_empty() {
            sim.read_controls(&mut applied);
        }
        if npz && rows > 0 {
            applied_history.push(applied.clone());
        }
        if !gaits.is_empty() {
            for (e, g) in gaits.iter_mut().enumerate() {
                g.record(&sim.positions(e), Some(&applied[e * rows..(e + 1) * rows]));
            }
        }
    }
    let dt = scene.model().settings.dt;
    let gaits: Vec<gait::Gait> = gaits.iter().map(|g| g.gait(dt)).collect();
    progress.finish();
    let run_ms = start.elapsed().as_secs_f64() * 1e3;
    report_events(&sim.events);
    for (o, first) in outputs.iter().zip(&non_finite) {
        if let Some((step, env)) = first {
            eprintln!(
                "warning: {} `{}` is not finite from step {step} in environment {env} (JSON writes it as null)",
                o.kind.keyword(),
                o.name
            );
        }
    }
    if let Some(path) = &a.out {
        let dt = scene.model().settings.dt;
        write_trajectory(
            path,
            &outputs,
            &history,
            &states,
            &applied_history,
            dt,
            batch,
        )?;
    }
    if let (Some(v), Some(h)) = (&viewer, &html) {
        if let Some(page) = &h.path {
            v.write(page, scene.model(), &c.scene)?;
        }
        if let Some(gif) = &h.gif {
            v.write_gif(gif, scene.model())?;
        }
        if let Some(dir) = &h.pngs {
            v.write_pngs(dir, scene.model())?;
        }
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
            "episode_end": ended,
            "timing": {"compile_ms": compile_ms, "run_ms": run_ms, "env_steps_per_sec": env_steps},
        });
        let mut obj = obj;
        if a.gait {
            obj["gait"] = gaits.iter().map(gait_json).collect();
        }
        if a.planner.is_some() {
            obj["planner"] = json!({
                "plans": planned.plans, "iterations": planned.iterations, "not_converged": planned.not_converged,
            });
        }
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
                ObjectiveKind::Reward => vec![match ended[0] {
                    None => format!("{:.6e} (sum)", reward_sum[k][0]),
                    Some(n) => format!(
                        "{:.6e} (sum to the episode's end at step {n})",
                        reward_sum[k][0]
                    ),
                }],
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
        if let Some(g) = gaits.first() {
            println!("gait of environment 0 over {:.2} s:", g.seconds);
            print!("{}", g.table());
        }
        if a.planner.is_some() {
            println!(
                "  planner: {} plans, {:.2} Newton iterations per plan, {} out of iterations",
                planned.plans,
                planned.iterations as f64 / planned.plans.max(1) as f64,
                planned.not_converged
            );
        }
        println!("  compile {compile_ms:.1} ms, run {run_ms:.1} ms, {env_steps:.0} env-steps/s");
    }
    Ok(())
}

/// What `joule grad` differentiates: a terminal loss or a reward summed over the steps.
enum Target {
    /// A `loss` item, after the last step.
    Loss(String),
    /// A `reward` item, summed over the states after each step.
    Reward(String),
}

/// The outcome of one parameter's finite-difference check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The adjoint agrees with the chosen difference within the tolerance.
    Agrees,
    /// They differ by more than the tolerance but by no more than the
    /// difference's own error (three times its truncation and rounding
    /// estimates, or its distance from its neighbour in the sweep): finite
    /// differences cannot tell (a derivative at the objective's round-off,
    /// an f32 rollout, an unconverged sweep).
    Unresolved,
    /// The objective has a kink at the point: no derivative to check.
    Kink,
    /// They differ beyond the tolerance and the difference's error.
    Disagrees,
}

impl Status {
    /// The status as JSON writes it.
    fn name(self) -> &'static str {
        match self {
            Status::Agrees => "agrees",
            Status::Unresolved => "unresolved",
            Status::Kink => "kink",
            Status::Disagrees => "disagrees",
        }
    }
}

/// The finite-difference check of one parameter's gradient.
struct Check {
    /// The parameter.
    name: String,
    /// The adjoint's derivative.
    adjoint: f64,
    /// The differences tried and the one chosen.
    sweep: fdcheck::Sweep,
    /// The adjoint's relative error against the chosen difference (NaN without one).
    error: f64,
}

impl Check {
    /// How the adjoint compares with the finite differences.
    fn status(&self, tolerance: f64) -> Status {
        let within_error = self.sweep.chosen().is_some_and(|d| {
            let (distance, error) = self.resolution();
            distance <= error.max(3.0 * (self.sweep.rounding + self.sweep.truncation.max(0.0)))
                && d.value.is_finite()
        });
        if self.sweep.kink.is_some() {
            Status::Kink
        } else if self.error <= tolerance {
            Status::Agrees
        } else if within_error {
            Status::Unresolved
        } else {
            Status::Disagrees
        }
    }

    /// The adjoint's distance from the chosen difference, and that
    /// difference's error: its truncation plus rounding estimates, or how
    /// far it is from its neighbour in the sweep where that is more (the
    /// differences did not settle closer).
    fn resolution(&self) -> (f64, f64) {
        let d = self.sweep.chosen().map_or(f64::NAN, |d| d.value);
        let estimates = self.sweep.rounding + self.sweep.truncation.max(0.0);
        let spread = if self.sweep.spread.is_finite() {
            self.sweep.spread
        } else {
            0.0
        };
        ((self.adjoint - d).abs(), estimates.max(spread))
    }

    /// The check as JSON: the chosen difference, its step and error estimates, every step tried.
    fn to_json(&self, tolerance: f64) -> Value {
        let chosen = self.sweep.chosen();
        let number = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
        json!({
            "finite_difference": number(chosen.map_or(f64::NAN, |d| d.value)),
            "relative_error": number(self.error),
            "step": number(chosen.map_or(f64::NAN, |d| d.step)),
            "truncation": number(self.sweep.truncation),
            "rounding": number(self.sweep.rounding),
            "agrees": self.status(tolerance) == Status::Agrees,
            "status": self.status(tolerance).name(),
            "differentiable": self.sweep.kink.is_none(),
            "kink": self.sweep.kink.map_or(Value::Null, |k| json!({
                "above": k.above,
                "below": k.below,
                "steps": [k.steps.0, k.steps.1],
            })),
            "sweep": self.sweep.differences.iter().map(|d| json!({
                "step": d.step,
                "finite_difference": number(d.value),
                "relative_error": number(fdcheck::relative_error(self.adjoint, d.value)),
                "above": number(d.above),
                "below": number(d.below),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The verdict line of `--check`: whether every gradient agrees with its
/// finite difference, to how much, at which steps; or which do not, with
/// their errors at every step tried; or where the objective has no
/// derivative (a kink: the one-sided differences differ at every step).
fn verdict(checks: &[Check], tolerance: f64) -> (bool, String) {
    let with = |status: Status| -> Vec<&Check> {
        checks
            .iter()
            .filter(|c| c.status(tolerance) == status)
            .collect()
    };
    let unresolved: Vec<String> = with(Status::Unresolved)
        .iter()
        .map(|c| {
            let (distance, error) = c.resolution();
            format!(
                "param {} (adjoint {:.4e}, difference {:.4e}: {distance:.1e} apart, within the difference's error {error:.1e})",
                c.name,
                c.adjoint,
                c.sweep.chosen().map_or(f64::NAN, |d| d.value)
            )
        })
        .collect();
    let unresolved = if unresolved.is_empty() {
        String::new()
    } else {
        format!(
            "finite differences cannot resolve {}",
            unresolved.join(", ")
        )
    };
    let bad: Vec<&Check> = checks
        .iter()
        .filter(|c| matches!(c.status(tolerance), Status::Kink | Status::Disagrees))
        .collect();
    if checks.is_empty() {
        return (true, "no parameters to check".to_string());
    }
    if bad.is_empty() {
        let agreeing = with(Status::Agrees);
        if agreeing.is_empty() {
            return (
                true,
                format!("gradients unresolved, none disagrees: {unresolved}"),
            );
        }
        let unresolved = if unresolved.is_empty() {
            unresolved
        } else {
            format!("; {unresolved}")
        };
        let worst = agreeing.iter().map(|c| c.error).fold(0.0, f64::max);
        let steps: Vec<String> = agreeing
            .iter()
            .filter_map(|c| {
                c.sweep
                    .chosen()
                    .map(|d| format!("{} {:.1e}", c.name, d.step))
            })
            .collect();
        let what = if steps.len() == 1 { "step" } else { "steps" };
        return (
            true,
            format!(
                "gradients agree to {worst:.1e} (best {what}: {}){unresolved}",
                steps.join(", ")
            ),
        );
    }
    let kinks: Vec<String> = bad
        .iter()
        .filter_map(|c| {
            let fdcheck::Kink {
                above,
                below,
                steps: (largest, smallest),
            } = c.sweep.kink?;
            let side = if fdcheck::relative_error(c.adjoint, above) <= tolerance {
                "the one from above"
            } else if fdcheck::relative_error(c.adjoint, below) <= tolerance {
                "the one from below"
            } else {
                "neither"
            };
            Some(format!(
                "param {} has a kink here: one-sided differences {above:.4e} from above and {below:.4e} from below at every step from {largest:.1e} to {smallest:.1e}; the adjoint's {:.4e} is {side}",
                c.name, c.adjoint,
            ))
        })
        .collect();
    let parts: Vec<String> = bad
        .iter()
        .filter(|c| c.sweep.kink.is_none())
        .map(|c| {
            let tried: Vec<String> = c
                .sweep
                .differences
                .iter()
                .map(|d| {
                    format!(
                        "{:.1e}: {:.1e}",
                        d.step,
                        fdcheck::relative_error(c.adjoint, d.value)
                    )
                })
                .collect();
            let at = match c.sweep.chosen() {
                Some(d) => format!("rel. error {:.1e} at best step {:.1e}", c.error, d.step),
                None => "has no finite difference (the objective was not finite)".to_string(),
            };
            let agreeing = c.sweep.differences.iter().any(|d| {
                fdcheck::relative_error(c.adjoint, d.value) <= tolerance
            });
            let hint = if c.sweep.best.is_none() {
                ""
            } else if agreeing {
                " (a step agrees but not its neighbours: the differences are not converged; try --fd-step)"
            } else if tried.len() > 1 {
                " (at every step tried)"
            } else {
                ""
            };
            format!("param {} {at}{hint}; steps tried: {}", c.name, tried.join(", "))
        })
        .collect();
    let mut message = vec![];
    if !parts.is_empty() {
        message.push(format!("gradients disagree: {}", parts.join("; ")));
    }
    if !kinks.is_empty() {
        message.push(format!(
            "not differentiable at this point: {} (no single number is the derivative; move the point or smooth the objective)",
            kinks.join("; ")
        ));
    }
    if !unresolved.is_empty() {
        message.push(unresolved);
    }
    (false, message.join("; "))
}

/// `joule grad`: a loss after N steps (or a reward summed over them) and its
/// gradient; `--check` compares it with finite differences, `--strict` makes
/// non-finite results, divergence and a failed check an error.
pub fn grad(a: GradArgs) -> Result<()> {
    let target = &match (a.loss, a.reward) {
        (Some(l), _) => Target::Loss(l),
        (None, Some(r)) => Target::Reward(r),
        (None, None) => unreachable!("clap requires one of --loss and --reward"),
    };
    let (c, wrt, check, as_json) = (&a.sim, a.wrt.as_deref(), a.check, a.json);
    c.threads.apply()?;
    if let Some(h) = a.fd_step.filter(|h| !(h.is_finite() && *h > 0.0)) {
        return Err(miette!(
            help = "give a positive step in the parameter's units, e.g. `--fd-step 1e-6`",
            "`--fd-step {h}` is not a positive number"
        ));
    }
    let (kind, name) = match target {
        Target::Loss(n) => ("loss", n.as_str()),
        Target::Reward(n) => ("reward", n.as_str()),
    };
    let options = load::Options {
        surrogates: SurrogateArg::option(a.surrogate),
        ..c.options(check)
    };
    let scene = load::scene(&c.scene, &options)?.scene;
    let overrides = check_params(scene.model(), &c.params)?;
    let objective = match target {
        Target::Loss(n) => Objective::loss(n),
        Target::Reward(n) => Objective::reward(n),
    };
    if let Some(sigma) = a.smooth {
        let start = a
            .from
            .as_deref()
            .map(|f| recorded_start(&scene, f, c.steps))
            .transpose()?;
        return smoothed(
            &c.scene,
            &scene,
            &objective,
            (c.steps, start),
            (sigma, a.samples, a.seed),
            &overrides,
            as_json,
        );
    }
    let params = &scene.model().params;
    let names: Vec<String> = match wrt {
        None => params.iter().map(|p| p.name.clone()).collect(),
        Some(list) => crate::args::wrt_params(scene.model(), list, "", |_| Ok(false))?
            .into_iter()
            .map(|i| params[i].name.clone())
            .collect(),
    };
    let progress = Progress::spinner(
        &format!("forward and adjoint over {} steps", c.steps),
        !as_json,
    );
    // The cost of a gradient is reported against a plain rollout of the same steps.
    let mut plain = scene.batch_threads(1, 1);
    apply_params(&mut plain, &overrides)?;
    let t = Instant::now();
    plain.rollout(c.steps);
    let forward_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut sim = scene.batch_threads(1, 1);
    apply_params(&mut sim, &overrides)?;
    let t = Instant::now();
    let g = sim
        .gradient(&objective, c.steps)
        .map_err(|e| miette!("{e}"))?;
    let gradient_ms = t.elapsed().as_secs_f64() * 1e3;
    let value = g.value[0];
    let index = |n: &str| {
        params
            .iter()
            .position(|p| p.name == n)
            .expect("checked above")
    };
    // What went wrong in the forward and adjoint passes, and non-finite results.
    let diverged = g
        .events
        .iter()
        .find(|e| matches!(e, Event::Diverged { .. }));
    let mut warnings: Vec<String> = g.events.iter().map(|e| e.to_string()).collect();
    let mut not_finite: Vec<String> = vec![];
    if !value.is_finite() {
        not_finite.push(format!("{kind} {name} is {value}"));
    }
    for n in &names {
        let d = g.params[index(n)][0];
        if !d.is_finite() {
            not_finite.push(format!("d {name} / d {n} is {d}"));
        }
    }
    if !not_finite.is_empty() {
        let cause = match diverged {
            Some(e) => format!("{e}"),
            // The state stayed finite, so the objective's own expression made it.
            None if !value.is_finite() => format!(
                "environment 0's state stayed finite over the {} steps: the {kind}'s expression is not finite there (a division by zero, a log or square root of a negative number?)",
                c.steps
            ),
            None => format!(
                "environment 0 stayed finite over the {} steps of the forward pass: the adjoint pass produced it",
                c.steps
            ),
        };
        warnings.push(format!("{} ({cause})", not_finite.join(", ")));
    }
    let precision = scene.model().settings.precision;
    // Agreement asked of the adjoint; the sweep's steps relative to the
    // parameter: an f32 rollout's objective moves in steps of ~1e-7 relative.
    let (tolerance, eps, (first, last)) = match precision {
        Precision::F64 => (1e-4, f64::EPSILON, (2, 8)),
        Precision::F32 => (1e-2, f64::from(f32::EPSILON), (1, 5)),
    };
    let mut grads = Map::new();
    let mut checks: Vec<Check> = vec![];
    for n in &names {
        let adjoint = g.params[index(n)][0];
        grads.insert(
            n.clone(),
            if adjoint.is_finite() {
                json!(adjoint)
            } else {
                Value::Null
            },
        );
        if check {
            let p0 = sim.param(n, 0).map_err(|e| miette!("{e}"))?;
            let f = |d: f64| -> Result<f64> {
                let mut s = scene.batch_threads(1, 1);
                apply_params(&mut s, &overrides)?;
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
            let steps = match a.fd_step {
                Some(h) => vec![h],
                None => fdcheck::log_steps(p0, first, last),
            };
            let sweep = fdcheck::sweep(f, &steps, eps, tolerance)?;
            let error = sweep
                .chosen()
                .map_or(f64::NAN, |d| fdcheck::relative_error(adjoint, d.value));
            checks.push(Check {
                name: n.clone(),
                adjoint,
                sweep,
                error,
            });
        }
    }
    progress.finish();
    report_events(&g.events);
    if !not_finite.is_empty() {
        eprintln!("warning: {}", warnings.last().expect("pushed above"));
    }
    let (agree, message) = verdict(&checks, tolerance);
    // Energies whose adjoint is a `backward =` surrogate: there the adjoint
    // differs from the simulation's derivative by design.
    let mut surrogates: Vec<String> = scene
        .model()
        .templates
        .iter()
        .filter(|t| t.backward.is_some())
        .map(|t| t.name.split('#').next().unwrap_or(&t.name).to_string())
        .collect();
    surrogates.dedup();
    let message = if check && !agree && !surrogates.is_empty() {
        format!(
            "{message} (expected where the surrogates act: the adjoint differentiates {}`backward =` of {}, not the simulation)",
            match scene.surrogate_model() {
                Some(s) if s.model().settings.integrator != scene.model().settings.integrator => {
                    "steps of the surrogate model (implicit Euler on the trees' configurations), its "
                }
                Some(_) => "steps of the surrogate model, its ",
                None => "",
            },
            surrogates.join(", ")
        )
    } else {
        message
    };
    if as_json {
        let mut obj = json!({
            "scene": c.scene.display().to_string(),
            "steps": c.steps,
            kind: if value.is_finite() { json!(value) } else { Value::Null },
            "gradients": grads,
            "warnings": warnings,
        });
        if check {
            obj["check"] = checks
                .iter()
                .map(|c| (c.name.clone(), c.to_json(tolerance)))
                .collect::<Map<_, _>>()
                .into();
            obj["verdict"] = json!({"agree": agree, "tolerance": tolerance, "message": message});
            obj["surrogates"] = json!(surrogates);
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
                format!(
                    " {:>22} {:>10} {:>8} {:>10} {:>10}",
                    "finite difference", "rel. error", "step", "truncation", "rounding"
                )
            } else {
                String::new()
            }
        );
        for n in &names {
            let a = g.params[index(n)][0];
            let extra = checks
                .iter()
                .find(|c| &c.name == n)
                .map_or(String::new(), |c| {
                    let d = c.sweep.chosen();
                    // One step given (`--fd-step`) has no neighbour to
                    // estimate its truncation from: a dash, not NaN.
                    let truncation = match c.sweep.truncation {
                        t if t.is_finite() => format!("{t:.1e}"),
                        _ => "-".to_string(),
                    };
                    format!(
                        " {:>22.12e} {:>10.2e} {:>8.1e} {:>10} {:>10.1e}",
                        d.map_or(f64::NAN, |d| d.value),
                        c.error,
                        d.map_or(f64::NAN, |d| d.step),
                        truncation,
                        c.sweep.rounding
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
        if check && scene.model().settings.integrator.is_implicit() {
            println!("  (with --check, implicit steps are solved to round-off)");
        }
        if check && precision == Precision::F32 {
            println!(
                "  (finite differences of an f32 rollout carry its rounding, about 1e-7 of the objective; `--precision f64` checks the same adjoint code more tightly)"
            );
        }
        if check {
            println!("{message}");
        }
    }
    if a.strict {
        let mut failed = vec![];
        if !not_finite.is_empty() || diverged.is_some() {
            failed.push("the result is not finite or the simulation diverged (see the warnings)");
        }
        if check && !agree {
            failed.push("the gradient check failed");
        }
        if !failed.is_empty() {
            return Err(miette!(
                help =
                    "without `--strict` these are warnings; see the steps and environments above",
                "--strict: {}",
                failed.join("; ")
            ));
        }
    }
    Ok(())
}

/// A recorded start for `joule grad --smooth --from FILE.npz:K`: environment
/// 0's state after K steps of the recording and the controls it applied
/// over the next `steps` steps.
struct RecordedStart {
    /// The `--from` argument, as given.
    from: String,
    x: Vec<f64>,
    v: Vec<f64>,
    controls: Vec<Vec<f64>>,
}

/// Reads `--from FILE.npz:K` (see [`GradArgs`]) for a rollout of `steps`
/// steps of `scene`: the recording must hold its states and K + `steps`
/// steps of controls.
fn recorded_start(scene: &joule_runtime::Scene, from: &str, steps: usize) -> Result<RecordedStart> {
    let help = "give a recording of this scene and a step in it, `--from rec.npz:100` (record it with `joule run SCENE --steps N --out rec.npz --state`)";
    let Some((file, k)) = from.rsplit_once(':') else {
        return Err(miette!(
            help = help,
            "`--from {from}` names no step: write `FILE.npz:K`"
        ));
    };
    let Ok(k) = k.parse::<usize>() else {
        return Err(miette!(
            help = help,
            "`--from {from}`: `{k}` is not a step number"
        ));
    };
    let path = std::path::Path::new(file);
    let states = crate::files::read_states(path, scene.dofs(), "--from")?;
    let applied = crate::files::read_applied(path, scene.model().controls.len())?;
    let recorded = applied.len().min(states.len().saturating_sub(1));
    if k + steps > recorded {
        return Err(miette!(
            help = format!("start at step {} or earlier, or record more steps", recorded.saturating_sub(steps)),
            "`--from {from}`: {steps} steps from step {k} go past the {recorded} steps `{file}` recorded"
        ));
    }
    let (x, v) = states[k].clone();
    Ok(RecordedStart {
        from: from.to_string(),
        x,
        v,
        controls: applied[k..k + steps].to_vec(),
    })
}

/// `joule grad --smooth`: both estimates of the smoothed gradient with
/// respect to the control schedule ([`joule::smoothing`]) over `steps` steps
/// (from `start`, or the scene's initial state with the controls at 0),
/// printed.
fn smoothed(
    path: &std::path::Path,
    scene: &joule_runtime::Scene,
    objective: &Objective,
    (steps, start): (usize, Option<RecordedStart>),
    (sigma, pairs, seed): (f64, usize, u64),
    overrides: &[(String, f64)],
    as_json: bool,
) -> Result<()> {
    use joule::smoothing::{smoothed_gradient, zero_schedule, GROUPS};
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(miette!(
            help = "give a positive standard deviation in the controls' units, e.g. `--smooth 0.1`",
            "`--smooth {sigma}` is not a positive number"
        ));
    }
    if pairs < 2 * GROUPS {
        return Err(miette!(
            help = format!("use `--samples {}` or more", 2 * GROUPS),
            "`--samples {pairs}` is too few to measure the estimates' spread over {GROUPS} groups"
        ));
    }
    crate::args::check_batch(
        scene,
        &format!("--samples {pairs}"),
        pairs.saturating_mul(2),
    )?;
    let nc = scene.model().controls.len();
    if nc == 0 {
        return Err(miette!(
            help = "`--smooth` perturbs the controls of every step: declare `control`s, or differentiate the parameters without it",
            "the scene declares no controls"
        ));
    }
    // The noise, the two schedules it makes and the per-sample gradients:
    // about four numbers per pair, step and control.
    crate::args::check_memory(
        &format!("`--samples {pairs}` over {steps} steps"),
        (4 * 8 * nc as u64)
            .saturating_mul(pairs as u64)
            .saturating_mul(steps as u64),
        "use fewer `--samples` or `--steps`",
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let noise: Vec<Vec<f64>> = (0..pairs)
        .map(|_| {
            (0..steps * nc)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect()
        })
        .collect();
    let progress = Progress::spinner(
        &format!(
            "{} rollouts of {steps} steps with their adjoints",
            2 * pairs
        ),
        !as_json,
    );
    let at_zero;
    let base = match &start {
        Some(r) => &r.controls,
        None => {
            at_zero = zero_schedule(scene, steps);
            &at_zero
        }
    };
    let s = smoothed_gradient(
        scene,
        objective,
        base,
        sigma,
        &noise,
        rayon::current_num_threads(),
        &|sim| {
            for (name, v) in overrides {
                sim.set_param(name, *v)?;
            }
            if let Some(r) = &start {
                for env in 0..sim.batch() {
                    sim.restore_state(env, &r.x, &r.v);
                }
            }
            Ok(())
        },
    )
    .map_err(|e| miette!("{e}"))?;
    progress.finish();
    let mode = match (
        scene.surrogate_model(),
        scene.model().templates.iter().any(|t| t.backward.is_some()),
    ) {
        (Some(_), _) => "surrogate model",
        (None, true) => "surrogate energies",
        (None, false) => "exact",
    };
    if as_json {
        println!(
            "{}",
            json!({
                "scene": path.display().to_string(),
                "steps": steps,
                "sigma": sigma,
                "pairs": s.pairs,
                "gradient": mode,
                "from": start.as_ref().map(|r| r.from.clone()),
                "value": s.value,
                "cosine": s.cosine,
                "norm_ratio": s.norm_ratio,
                "first_spread": s.first_spread,
                "zeroth_spread": s.zeroth_spread,
                "zeroth_halves": s.zeroth_halves,
                "ceiling": s.ceiling,
                "first_norm": s.first.iter().map(|x| x * x).sum::<f64>().sqrt(),
                "zeroth_norm": s.zeroth.iter().map(|x| x * x).sum::<f64>().sqrt(),
                "events": s.events,
            })
        );
    } else {
        let around = match &start {
            Some(r) => format!(" around the controls `{}` recorded", r.from),
            None => String::new(),
        };
        println!(
            "smoothed over N(0, {sigma}^2) on {nc} controls x {steps} steps{around}, {} antithetic pairs; mean objective {:.6e}",
            s.pairs, s.value
        );
        println!(
            "  first order ({mode} adjoint) vs zeroth order (differences of the simulation): cosine {:.3} (an exact gradient would reach about {:.3} against this reference), norm ratio {:.3}",
            s.cosine, s.ceiling, s.norm_ratio
        );
        println!(
            "  spread over {GROUPS} groups (standard error / norm): first order {:.3}, zeroth order {:.3}; zeroth-order halves agree to cosine {:.3}",
            s.first_spread, s.zeroth_spread, s.zeroth_halves
        );
        if s.events > 0 {
            eprintln!("warning: {} solver events in the rollouts", s.events);
        }
    }
    Ok(())
}
