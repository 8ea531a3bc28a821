//! `joule bench`: throughput, gradient cost, compile time and memory of a scene.
//!
//! For every (batch, threads) pair the scene is stepped on a rayon pool of
//! exactly `threads` workers after a warm-up; the figure is the median of a few
//! timed repeats, each of `steps` steps continuing the same trajectory from the
//! scene's initial state (default parameters), driven by `--controls`: the
//! scene's default controls (`zero`), fresh uniform draws every step and
//! environment (`random`, seeded), fixed sines (`sine`) or a plan replayed
//! in a loop. Controls other than `zero` are generated before the timer
//! starts, in chunks of at most [`CHUNK_VALUES`] values (the timer stops while
//! the next chunk is generated); setting them before each step
//! ([`Sim::set_controls`]) is timed, as a policy's would be. The gradient
//! (forward + adjoint over `horizon` steps, the scene's first `loss` or
//! `reward`) is timed against a plain rollout of the same steps from the same
//! start, both with the same controls. Compile time is the median of a few
//! full compiles, by phase.

use crate::args::PrecisionArg;
use crate::load::{self, Loaded};
use crate::threads::pool;
use joule_compiler::model::{Integrator, ObjectiveKind, Precision};
use joule_runtime::{Objective, Scene, Sim};
use miette::{miette, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Measure a scene: env-steps/s, simulated s per s, ns per DOF-step, gradient cost, compile time, memory.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule bench scenes/ant.joule --batch 1,64 --threads 1,2\n  joule bench scenes/ant_joints.joule --batch 1,64 --controls random --seed 1\n  joule bench scenes/pendulum.joule --batch 1,1024 --steps 1000 --json\n  joule bench scenes/reacher.joule --controls plan.csv   # as `joule optimize --out` writes\n\nEach figure is the median of --repeats timed runs after a warm-up, on a rayon pool of\nexactly --threads workers. Peak memory is VmHWM (Linux only).\n\n--controls: `zero` steps with the scene's default controls (0, clamped into each range);\n`random` draws every control uniformly in its range ([-1, 1] where it has none), afresh\nevery step and environment, from a ChaCha8 generator seeded by --seed; `sine` sets control\nk at step t to mid + half-range * sin(2 pi f_k t dt + k pi/4), f_k = 0.5, 1, 1.5, 2 Hz for\nk mod 4 = 0..3, the same in every environment; a plan file sets every environment alike,\nrow t mod its length at step t. The values are generated before the timer starts."
)]
pub struct BenchArgs {
    /// The scene file.
    scene: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024,4096")]
    batch: Vec<usize>,
    /// Thread counts, comma-separated (each 1 to 1024).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Steps per timed repeat (default: about 0.3 s worth).
    #[arg(long)]
    steps: Option<usize>,
    /// Timed repeats; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Steps of the differentiated rollout (gradient / forward ratio); 0 skips it.
    #[arg(long, default_value_t = 100)]
    horizon: usize,
    /// Kernel precision, overriding the scene's `precision` setting.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// The controls stepped with: `zero`, `random`, `sine`, or a plan
    /// (`.csv` or `.npy`, as `joule optimize --out` writes) replayed in a loop.
    #[arg(long, value_name = "zero|random|sine|PLAN.csv", default_value = "zero")]
    controls: String,
    /// Seed of `--controls random`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Wall time one timed repeat aims at when `--steps` is not given.
const TARGET_REPEAT: Duration = Duration::from_millis(300);
/// Full compiles timed (the median is reported).
const COMPILES: usize = 3;
/// Most control values generated at once, untimed, ahead of the steps that
/// use them (bounds a schedule's values at 128 kB, or one step's worth).
const CHUNK_VALUES: usize = 1 << 14;
/// `--controls sine`: control k's frequency is `SINE_HZ[k % 4]`.
const SINE_HZ: [f64; 4] = [0.5, 1.0, 1.5, 2.0];

/// The controls a bench steps with (`--controls`).
enum Controls {
    /// The scene's default controls throughout.
    Zero,
    /// Uniform in each control's range, fresh every step and environment.
    Random {
        /// `--seed`.
        seed: u64,
    },
    /// Fixed sines, the same in every environment.
    Sine,
    /// A plan's rows `[step][control]`, replayed in a loop, the same in every environment.
    Plan {
        /// The plan file.
        path: PathBuf,
        /// Its rows.
        rows: Vec<Vec<f64>>,
    },
}

impl Controls {
    /// Reads `--controls` for `scene` (loading a plan), refusing unknown
    /// modes and a scene without controls to drive.
    fn parse(text: &str, seed: u64, scene: &Scene) -> Result<Controls> {
        let ext = Path::new(text).extension().and_then(|e| e.to_str());
        let controls = match (text, ext) {
            ("zero", _) => return Ok(Controls::Zero),
            ("random", _) => Controls::Random { seed },
            ("sine", _) => Controls::Sine,
            (_, Some("csv" | "npy")) => {
                let path = PathBuf::from(text);
                let rows = crate::optimize::load_plan(&path, scene)?;
                if rows.is_empty() {
                    return Err(miette!(
                        help = "a plan needs one row per step, as `joule optimize --out` writes",
                        "`{text}` plans no steps"
                    ));
                }
                Controls::Plan { path, rows }
            }
            _ => {
                return Err(miette!(
                    help = "use `--controls zero`, `random`, `sine`, or a plan file `PLAN.csv` / `PLAN.npy` (as `joule optimize --out` writes)",
                    "unknown `--controls` mode `{text}`"
                ))
            }
        };
        if scene.model().controls.is_empty() {
            return Err(miette!(
                help = "drop `--controls` (or use `--controls zero`): there is nothing to drive",
                "`--controls {text}`: the scene declares no controls"
            ));
        }
        Ok(controls)
    }

    /// Describes the controls for the JSON output.
    fn to_json(&self) -> Value {
        match self {
            Controls::Zero => json!({ "mode": "zero" }),
            Controls::Random { seed } => json!({ "mode": "random", "seed": seed }),
            Controls::Sine => json!({ "mode": "sine", "frequencies_hz": SINE_HZ }),
            Controls::Plan { path, rows } => json!({
                "mode": "plan",
                "plan": path.display().to_string(),
                "plan_steps": rows.len(),
            }),
        }
    }

    /// Describes the controls for the text output.
    fn describe(&self) -> String {
        match self {
            Controls::Zero => "zero (the scene's defaults)".into(),
            Controls::Random { seed } => format!(
                "random (uniform in each control's range, fresh every step and environment; seed {seed})"
            ),
            Controls::Sine => "sine (0.5-2 Hz, the same in every environment)".into(),
            Controls::Plan { path, rows } => format!(
                "plan `{}` ({} steps, replayed in a loop)",
                path.display(),
                rows.len()
            ),
        }
    }
}

/// Generates the controls of one run, step after step, for `batch` environments.
struct Drive<'c> {
    controls: &'c Controls,
    /// Each control's range (`[-1, 1]` where it has none).
    ranges: Vec<(f64, f64)>,
    rng: ChaCha8Rng,
    dt: f64,
}

impl<'c> Drive<'c> {
    /// A fresh generator (seeded again): every run with the same controls
    /// sees the same values.
    fn new(controls: &'c Controls, scene: &Scene) -> Drive<'c> {
        let seed = match controls {
            Controls::Random { seed } => *seed,
            _ => 0,
        };
        Drive {
            controls,
            ranges: scene
                .model()
                .controls
                .iter()
                .map(|c| c.bounds.unwrap_or((-1.0, 1.0)))
                .collect(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            dt: scene.model().settings.dt,
        }
    }

    /// Writes the controls of step `t`, `[control][env]`, into `out`.
    /// Random draws continue one sequence (step, then control, then
    /// environment), so steps are generated in order.
    fn fill(&mut self, t: usize, out: &mut [Vec<f64>]) {
        for (k, (row, &(lo, hi))) in out.iter_mut().zip(&self.ranges).enumerate() {
            match self.controls {
                Controls::Zero => {}
                Controls::Random { .. } => {
                    for u in row.iter_mut() {
                        *u = lo + (hi - lo) * self.rng.random::<f64>();
                    }
                }
                Controls::Sine => {
                    let phase = 2.0 * PI * SINE_HZ[k % SINE_HZ.len()] * t as f64 * self.dt
                        + k as f64 * PI / 4.0;
                    row.fill(0.5 * (lo + hi) + 0.5 * (hi - lo) * phase.sin());
                }
                Controls::Plan { rows, .. } => row.fill(rows[t % rows.len()][k]),
            }
        }
    }

    /// The controls of `steps` steps from step `t`: `[step][control][env]`.
    fn schedule(&mut self, t: usize, steps: usize, batch: usize) -> Vec<Vec<Vec<f64>>> {
        (t..t + steps)
            .map(|t| {
                let mut u = vec![vec![0.0; batch]; self.ranges.len()];
                self.fill(t, &mut u);
                u
            })
            .collect()
    }
}

/// One compile's phases in order, with the whole compile's wall time last.
type Phases = Vec<(&'static str, f64)>;

/// Compiles the scene (its warnings unprinted), returning it with its phase
/// times in milliseconds.
fn compile(path: &Path, o: &load::Options) -> Result<(Scene, Phases)> {
    let Loaded { scene, ms } = load::compile(path, o)?;
    let phases: Phases = scene
        .compiled
        .timings
        .iter()
        .map(|(p, d)| (*p, d.as_secs_f64() * 1e3))
        .chain([("total", ms)])
        .collect();
    Ok((scene, phases))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Peak resident memory of this process in bytes (`VmHWM`), on Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak (Linux: writing 5 to `/proc/self/clear_refs`), so that the
/// next [`peak_rss`] covers what follows; true where that is supported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One (batch, threads) measurement.
struct Row {
    batch: usize,
    threads: usize,
    /// Partitions the batch was split into.
    partitions: usize,
    steps: usize,
    /// Median seconds of one repeat.
    seconds: f64,
    /// Environments that diverged or whose Newton solve did not converge.
    events: usize,
    /// Mean Newton iterations per env-step over the timed repeats (implicit scenes).
    newton: Option<f64>,
    /// The sum of every environment's positions after the last repeat.
    fingerprint: f64,
    peak: Option<u64>,
}

impl Row {
    fn env_steps_per_s(&self) -> f64 {
        (self.batch * self.steps) as f64 / self.seconds
    }
}

/// The gradient measurement.
struct GradRow {
    objective: String,
    batch: usize,
    forward_s: f64,
    gradient_s: f64,
    bytes_per_env_step: usize,
    peak: Option<u64>,
}

/// Steps `sim` for `steps` steps driven by `drive` and returns the wall time
/// in seconds: with the default controls a plain rollout; otherwise the
/// controls are generated untimed into `chunk` (`[step][control][env]`, some
/// steps at a time) and set before each timed step.
fn timed(
    sim: &mut Sim,
    steps: usize,
    drive: &mut Drive,
    chunk: &mut [Vec<Vec<f64>>],
) -> Result<f64> {
    if matches!(drive.controls, Controls::Zero) {
        let t = Instant::now();
        sim.rollout(steps);
        return Ok(t.elapsed().as_secs_f64());
    }
    let mut seconds = 0.0;
    let mut done = 0;
    while done < steps {
        let n = chunk.len().min(steps - done);
        let first = sim.steps();
        for (i, u) in chunk[..n].iter_mut().enumerate() {
            drive.fill(first + i, u);
        }
        let t = Instant::now();
        for u in &chunk[..n] {
            sim.set_controls(u).map_err(|e| miette!("{e}"))?;
            sim.step();
        }
        seconds += t.elapsed().as_secs_f64();
        done += n;
    }
    Ok(seconds)
}

/// The sum of every environment's positions (equal for equal runs).
fn fingerprint(sim: &Sim) -> f64 {
    (0..sim.batch())
        .map(|e| sim.positions(e).iter().sum::<f64>())
        .sum()
}

fn measure(
    scene: &Scene,
    controls: &Controls,
    batch: usize,
    threads: usize,
    o: &BenchArgs,
) -> Result<Row> {
    let pool = pool(threads)?;
    let reset = reset_peak_rss();
    let implicit = scene.model().settings.integrator.is_implicit();
    let row = pool.install(|| -> Result<Row> {
        let mut sim = scene.batch_threads(batch, threads);
        let mut drive = Drive::new(controls, scene);
        let per_step = (drive.ranges.len() * batch).max(1);
        let chunk_steps = match controls {
            Controls::Zero => 0,
            _ => (CHUNK_VALUES / per_step).max(1),
        };
        let mut chunk = vec![vec![vec![0.0; batch]; drive.ranges.len()]; chunk_steps];
        // Warm-up: caches, page faults, the pool's threads; it also sizes the repeats.
        let one = timed(&mut sim, 2, &mut drive, &mut chunk)? / 2.0;
        let steps = o.steps.unwrap_or_else(|| {
            (TARGET_REPEAT.as_secs_f64() / one.max(1e-9)).clamp(2.0, 1e6) as usize
        });
        let iterations = sim.newton_iterations();
        let times = (0..o.repeats)
            .map(|_| timed(&mut sim, steps, &mut drive, &mut chunk))
            .collect::<Result<Vec<f64>>>()?;
        let env_steps = (batch * steps * o.repeats) as f64;
        Ok(Row {
            batch,
            threads,
            partitions: sim.partitions(),
            steps,
            seconds: median(times),
            events: sim.events.len(),
            newton: implicit.then(|| (sim.newton_iterations() - iterations) as f64 / env_steps),
            fingerprint: fingerprint(&sim),
            peak: None,
        })
    })?;
    Ok(Row {
        peak: peak_rss().filter(|_| reset),
        ..row
    })
}

/// The first `loss` or `reward` of the scene, as an objective and its label.
fn first_objective(scene: &Scene) -> Option<(Objective, String)> {
    scene
        .compiled
        .layout()
        .outputs
        .iter()
        .find_map(|o| match o.kind {
            ObjectiveKind::Loss => Some((Objective::loss(&o.name), format!("loss {}", o.name))),
            ObjectiveKind::Reward => Some((
                Objective::reward(&o.name),
                format!("reward {} (summed)", o.name),
            )),
            _ => None,
        })
}

fn measure_gradient(
    scene: &Scene,
    controls: &Controls,
    batch: usize,
    threads: usize,
    o: &BenchArgs,
) -> Result<Option<GradRow>> {
    let Some((objective, label)) = first_objective(scene) else {
        return Ok(None);
    };
    let pool = pool(threads)?;
    // The controls of every step, generated before anything is timed.
    let schedule = Drive::new(controls, scene).schedule(0, o.horizon, batch);
    let reset = reset_peak_rss();
    let (forward, gradient, bytes) = pool.install(|| -> Result<_> {
        let mut forward = vec![];
        let mut gradient = vec![];
        let mut bytes = 0;
        // One untimed round first (warm-up), then `repeats` timed ones.
        for round in 0..=o.repeats {
            let mut sim = scene.batch_threads(batch, threads);
            let t = Instant::now();
            for u in &schedule {
                sim.set_controls(u).map_err(|e| miette!("{e}"))?;
                sim.step();
            }
            let f = t.elapsed().as_secs_f64();
            let mut sim = scene.batch_threads(batch, threads);
            let t = Instant::now();
            let g = sim
                .gradient_schedule(&objective, &schedule)
                .map_err(|e| miette!("{e}"))?;
            let gt = t.elapsed().as_secs_f64();
            bytes = g.bytes_per_env_step;
            if round > 0 {
                forward.push(f);
                gradient.push(gt);
            }
        }
        Ok((median(forward), median(gradient), bytes))
    })?;
    Ok(Some(GradRow {
        objective: label,
        batch,
        forward_s: forward,
        gradient_s: gradient,
        bytes_per_env_step: bytes,
        peak: peak_rss().filter(|_| reset),
    }))
}

fn mib(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |b| {
        format!("{:.1}", b as f64 / (1 << 20) as f64)
    })
}

/// `joule bench`: measure and print a table (or one JSON object).
pub fn bench(o: BenchArgs) -> Result<()> {
    if let Some(b) = o.batch.iter().find(|b| **b == 0) {
        return Err(miette!(
            help = "use `--batch 1,64` or similar",
            "a batch of {b} environments"
        ));
    }
    for &t in &o.threads {
        crate::threads::check("--threads", t)?;
    }
    if o.steps == Some(0) || o.repeats == 0 {
        return Err(miette!(
            help = "use at least 1",
            "`--steps` and `--repeats` must be positive"
        ));
    }
    let options = load::Options {
        precision: o.precision.map(Into::into),
        ..load::Options::default()
    };
    let (scene, first) = compile(&o.scene, &options)?;
    // Once, not for every timed compile.
    load::warn(&scene);
    for &b in &o.batch {
        crate::args::check_batch(&scene, &format!("--batch {b}"), b)?;
    }
    let controls = Controls::parse(&o.controls, o.seed, &scene)?;
    let mut compiles = vec![first];
    for _ in 1..COMPILES {
        compiles.push(compile(&o.scene, &options)?.1);
    }
    let phases: Vec<(&str, f64)> = compiles[0]
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (*p, median(compiles.iter().map(|c| c[i].1).collect())))
        .collect();
    let dofs = scene.dofs();
    let settings = &scene.model().settings;
    let dt = settings.dt;
    let precision = match settings.precision {
        Precision::F64 => "f64",
        Precision::F32 => "f32",
    };
    let integrator = match settings.integrator {
        Integrator::SymplecticEuler => "symplectic_euler",
        Integrator::ImplicitEuler { .. } => "implicit_euler",
        Integrator::RungeKutta4 { .. } => "rk4",
    };
    let solver = match (&settings.integrator, scene.direct_solver()) {
        (Integrator::SymplecticEuler, _) => Value::Null,
        _ if scene.tree().is_some() => json!({
            "kind": "dense_cholesky_joint_coordinates",
            "coordinates": scene.tree().map(|t| t.coordinates()),
        }),
        (_, Some(d)) => json!({
            "kind": "sparse_cholesky",
            "lower_nnz": d.lower_nnz(),
            "factor_nnz": d.nnz(),
            "factor_multiply_adds": d.flops(),
        }),
        (_, None) => json!({ "kind": "jacobi_pcg" }),
    };
    let mut rows = vec![];
    for &t in &o.threads {
        for &b in &o.batch {
            rows.push(measure(&scene, &controls, b, t, &o)?);
        }
    }
    let grad_batch = o.batch[0];
    let grad = if o.horizon > 0 {
        measure_gradient(&scene, &controls, grad_batch, o.threads[0], &o)?
    } else {
        None
    };
    let grad_note = match (&grad, o.horizon) {
        (_, 0) => Some("skipped (--horizon 0)"),
        (None, _) => Some("skipped: the scene has no loss or reward"),
        _ => None,
    };
    let title = scene
        .model()
        .title
        .clone()
        .unwrap_or_else(|| o.scene.display().to_string());
    let row_json = |r: &Row| {
        let eps = r.env_steps_per_s();
        json!({
            "batch": r.batch,
            "threads": r.threads,
            "partitions": r.partitions,
            "steps": r.steps,
            "repeats": o.repeats,
            "seconds": r.seconds,
            "env_steps_per_s": eps,
            "sim_s_per_s": eps * dt,
            "ns_per_dof_step": 1e9 / (eps * dofs as f64),
            "events": r.events,
            "newton_iterations_per_step": r.newton,
            "state_fingerprint": r.fingerprint,
            "peak_rss_bytes": r.peak,
        })
    };
    if o.json {
        let gradient = grad.as_ref().map_or(Value::Null, |g| {
            json!({
                "objective": g.objective,
                "horizon": o.horizon,
                "batch": g.batch,
                "threads": o.threads[0],
                "forward_s": g.forward_s,
                "gradient_s": g.gradient_s,
                "ratio": g.gradient_s / g.forward_s,
                "bytes_per_env_step": g.bytes_per_env_step,
                "peak_rss_bytes": g.peak,
            })
        });
        let compile: serde_json::Map<String, Value> = phases
            .iter()
            .map(|(p, ms)| (p.to_string(), json!(ms)))
            .collect();
        let obj = json!({
            "scene": o.scene.display().to_string(),
            "title": title,
            "dofs": dofs,
            "dt": dt,
            "substeps": scene.substeps(),
            "integrator": integrator,
            "precision": precision,
            "linear_solver": solver,
            "controls": controls.to_json(),
            "compile_ms": compile,
            "runs": rows.iter().map(row_json).collect::<Vec<_>>(),
            "gradient": gradient,
            "gradient_note": grad_note,
            "peak_rss_bytes": peak_rss(),
        });
        println!("{obj}");
        return Ok(());
    }
    println!("{title}: {dofs} DOFs, dt = {dt} s, {integrator}, {precision}");
    if let Some(t) = scene.tree().filter(|_| !solver.is_null()) {
        println!(
            "  linear solver: dense Cholesky per environment in joint coordinates ({} coordinates)",
            t.coordinates()
        );
    } else if let Some(d) = scene.direct_solver() {
        println!(
            "  linear solver: sparse Cholesky, {} nonzeros in L ({} in the lower triangle of the matrix), {} multiply-adds per factorisation",
            d.nnz(),
            d.lower_nnz(),
            d.flops()
        );
    } else if !solver.is_null() {
        println!("  linear solver: Jacobi-preconditioned CG");
    }
    println!("  controls: {}", controls.describe());
    let phase_text: Vec<String> = phases
        .iter()
        .map(|(p, ms)| format!("{p} {ms:.2}"))
        .collect();
    println!(
        "  compile (ms, median of {COMPILES}): {}",
        phase_text.join(", ")
    );
    println!(
        "  {:>6} {:>7} {:>7} {:>14} {:>12} {:>14} {:>12} {:>9} {:>6}",
        "batch",
        "threads",
        "steps",
        "env-steps/s",
        "sim-s/s",
        "ns/DOF-step",
        "Newton/step",
        "peak MiB",
        "events"
    );
    for r in &rows {
        let eps = r.env_steps_per_s();
        println!(
            "  {:>6} {:>7} {:>7} {:>14.0} {:>12.2} {:>14.2} {:>12} {:>9} {:>6}",
            r.batch,
            r.threads,
            r.steps,
            eps,
            eps * dt,
            1e9 / (eps * dofs as f64),
            r.newton.map_or("-".into(), |n| format!("{n:.2}")),
            mib(r.peak),
            r.events
        );
    }
    println!(
        "  (median of {} repeats after a warm-up; Newton/step: Newton iterations per env-step)",
        o.repeats
    );
    match (&grad, grad_note) {
        (Some(g), _) => println!(
            "  gradient of {} over {} steps, batch {}, {} thread(s): forward {:.2} ms, forward + backward {:.2} ms = {:.2}x; {} B recorded per env-step, peak {} MiB",
            g.objective,
            o.horizon,
            g.batch,
            o.threads[0],
            g.forward_s * 1e3,
            g.gradient_s * 1e3,
            g.gradient_s / g.forward_s,
            g.bytes_per_env_step,
            mib(g.peak)
        ),
        (None, Some(note)) => println!("  gradient: {note}"),
        (None, None) => {}
    }
    if rows.iter().any(|r| r.events > 0) {
        eprintln!("warning: some environments diverged or did not converge (see `events`); their throughput is not a stable motion's");
    }
    Ok(())
}
