//! Optimisation through the simulator: trajectory optimisation that provably
//! converges (a point mass with linear dynamics), parameter identification
//! from a recorded trajectory, model-predictive control, and the CLI's files
//! and errors.

use joule::optimize::{evaluate, mpc, optimize, Method, Problem, Window};
use joule::{Backend, Objective, Scene};
use std::path::{Path, PathBuf};

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{joule, temp};

fn point_mass() -> Scene {
    Scene::from_path(Path::new("tests/optimize/point_mass.joule"), Backend::Jit).expect("scene")
}

fn controls_problem(scene: &Scene, steps: usize) -> Problem {
    let mut p = Problem::new(scene, Objective::loss("miss"), steps);
    p.wrt_controls = true;
    p
}

#[test]
fn lbfgs_steers_the_point_mass_onto_its_target() {
    let scene = point_mass();
    let problem = controls_problem(&scene, 40);
    let start = evaluate(&scene, &problem).expect("rollout");
    assert!(
        (start - 0.34).abs() < 1e-12,
        "at rest the miss is |target|^2: {start}"
    );
    let s = optimize(&scene, &problem, Method::Lbfgs, 40).expect("optimise");
    assert!(s.value < 1e-10, "miss after L-BFGS: {}", s.value);
    // Every control stays in its range and the solution replays to the same miss.
    assert!(s
        .schedule
        .iter()
        .flatten()
        .all(|u| (-1.0..=1.0).contains(u)));
    let replay = Problem {
        schedule: s.schedule.clone(),
        ..problem.clone()
    };
    assert!((evaluate(&scene, &replay).expect("replay") - s.value).abs() < 1e-15);
    assert_eq!(s.schedule.len(), 40);
}

#[test]
fn adam_descends_and_keeps_its_best_point() {
    let scene = point_mass();
    let problem = controls_problem(&scene, 40);
    let s = optimize(&scene, &problem, Method::Adam(0.05), 150).expect("optimise");
    assert_eq!(s.history.len(), 150, "one evaluation per iteration");
    let first = s.history[0].value;
    let best = s
        .history
        .iter()
        .map(|e| e.value)
        .fold(f64::INFINITY, f64::min);
    assert!(best < 1e-3 * first, "{first} -> {best}");
    assert_eq!(s.value, best, "the solution is the best point evaluated");
}

#[test]
fn parameters_are_identified_from_a_loss() {
    // Which thrust gain puts the puck on target under a fixed control schedule?
    let scene = point_mass();
    let steps = 40;
    let mut p = Problem::new(&scene, Objective::loss("miss"), steps);
    // Full thrust in +x for the first 10 steps: x(T) = f * (0.05^2) * (10 * 40 - 45 + ...).
    p.schedule = (0..steps)
        .map(|t| vec![if t < 10 { 1.0 } else { 0.0 }, 0.0])
        .collect();
    p.wrt_params = vec![0];
    let s = optimize(&scene, &p, Method::Lbfgs, 30).expect("optimise");
    // Symplectic Euler: v_k = k f h, x_T = h^2 f sum_{k=1}^{10} k + (T - 10) h^2 10 f.
    let h: f64 = 0.05;
    let per_unit = h * h * (55.0 + 30.0 * 10.0);
    let best_f = 0.5 / per_unit; // x = 0.5 on target; y stays 0 (miss 0.09 remains)
    assert!(
        (s.params[0] - best_f).abs() < 1e-6 * best_f,
        "{} vs {best_f}",
        s.params[0]
    );
    assert!((s.value - 0.09).abs() < 1e-9);
}

#[test]
fn mpc_reaches_the_target_closed_loop() {
    // Plan 20 steps ahead to be near the target and slow there, re-planned every step.
    let scene = point_mass();
    let steps = 80;
    let mut problem = Problem::new(&scene, Objective::reward("closeness"), steps);
    problem.wrt_controls = true;
    assert!(problem.maximise);
    let run = mpc(&scene, &problem, Method::Lbfgs, 20, steps, 10).expect("mpc");
    let applied = run.applied;
    assert_eq!(applied.len(), steps);
    assert_eq!(run.values.len(), steps);
    // Every plan evaluates at least its start, at most an L-BFGS run's worth.
    assert!(
        run.evaluations >= steps && run.evaluations <= steps * 10 * 25,
        "{} evaluations",
        run.evaluations
    );
    // The applied controls, replayed: where is the puck at the end?
    let replay = Problem {
        objective: Objective::loss("miss"),
        schedule: applied,
        ..problem.clone()
    };
    let miss = evaluate(&scene, &replay).expect("replay");
    assert!(miss < 1e-3, "closed-loop miss {miss} (0.34 at rest)");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// 300 steps of the pendulum with one parameter changed (`NAME=VALUE`),
/// recorded by `joule run --out`.
fn record_swing(name: &str, param: &str) -> PathBuf {
    let file = temp(name);
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "300",
        "--param",
        param,
        "--out",
        path(&file),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    file
}

#[test]
fn cli_identifies_a_pendulums_length_from_its_recorded_swing() {
    // The README's parameter fit: a 1.3 m rod's swing angle, fitted from the
    // scene's default 1 m.
    let rec = record_swing("swing.npz", "length=1.3");
    let curve = temp("curve.csv");
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("angle={}", path(&rec)),
        "--wrt",
        "length",
        "--iters",
        "30",
        "--curve",
        path(&curve),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let length = v["params"]["length"].as_f64().expect("length");
    assert!((length - 1.3).abs() < 1e-6, "recovered {length}");
    assert!(v["objective"]["end"].as_f64().expect("end") < 1e-10);
    assert!(v["objective"]["start"].as_f64().expect("start") > 1e-3);
    let rows = std::fs::read_to_string(&curve).expect("curve");
    assert!(rows.starts_with("evaluation,value,grad_norm,seconds\n"));
    assert_eq!(
        rows.lines().count(),
        1 + v["evaluations"].as_u64().expect("n") as usize
    );
}

#[test]
fn cli_writes_the_plan_and_rejects_bad_requests() {
    let plan = temp("plan.csv");
    let o = joule(&[
        "optimize",
        "tests/optimize/point_mass.joule",
        "--loss",
        "miss",
        "--wrt",
        "controls",
        "--steps",
        "20",
        "--iters",
        "20",
        "--out",
        path(&plan),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&plan).expect("plan");
    assert!(text.starts_with("step,u[0],u[1]\n"));
    assert_eq!(text.lines().count(), 21);

    let o = joule(&[
        "optimize",
        "tests/optimize/point_mass.joule",
        "--loss",
        "miss",
        "--wrt",
        "forse",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown parameter `forse`") && err.contains("force"),
        "{err}"
    );

    let missing = temp("missing.npz");
    let o = joule(&[
        "optimize",
        "tests/optimize/point_mass.joule",
        "--match",
        &format!("position={}", path(&missing)),
        "--wrt",
        "force",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
}

#[test]
fn cli_imitates_a_demonstration_by_its_chamfer_distance() {
    let demo = record_swing("demo.npz", "g=3.71");
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("velocity={}", path(&demo)),
        "--chamfer",
        "--wrt",
        "g",
        "--iters",
        "30",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let g = v["params"]["g"].as_f64().expect("g");
    // The demonstration's velocities, in any order, pin g down (its
    // positions would not: under any g the bob runs along the same arc,
    // only faster or slower; the speeds grow as sqrt(g)).
    assert!((g - 3.71).abs() < 1e-4, "imitated g {g}");
    assert!(
        v["objective"]["end"].as_f64().expect("end")
            < 1e-3 * v["objective"]["start"].as_f64().expect("start")
    );
}

#[test]
fn cli_mpc_reports_its_plans_and_their_evaluations() {
    let args = [
        "optimize",
        "tests/optimize/point_mass.joule",
        "--reward",
        "closeness",
        "--wrt",
        "controls",
        "--mpc",
        "--horizon",
        "2",
        "--steps",
        "3",
        "--iters",
        "2",
    ];
    // The same MPC through the library counts the rollouts of its plans.
    let scene = point_mass();
    let mut problem = Problem::new(&scene, Objective::reward("closeness"), 3);
    problem.wrt_controls = true;
    let evaluations = mpc(&scene, &problem, Method::Lbfgs, 2, 3, 2)
        .expect("mpc")
        .evaluations;
    assert!(evaluations >= 3, "at least one per plan: {evaluations}");
    let o = joule(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "MPC: 3 plans over 2 steps, up to 2 iterations each, {evaluations} evaluations"
        )),
        "{text}"
    );
    let o = joule(&[&args[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["mpc"]["plans"], 3);
    assert_eq!(v["mpc"]["horizon"], 2);
    assert_eq!(v["evaluations"], evaluations);
    assert_eq!(v["scene"], "tests/optimize/point_mass.joule");
    assert_eq!(v["steps"], 3);
}

/// `joule optimize` on the point mass over 20 steps with few iterations (a
/// plan that does not reach the target, so the loss is far from zero);
/// returns the final objective it reports.
fn optimize_plan(plan: &Path) -> f64 {
    let o = joule(&[
        "optimize",
        "tests/optimize/point_mass.joule",
        "--loss",
        "miss",
        "--wrt",
        "controls",
        "--steps",
        "20",
        "--iters",
        "2",
        "--out",
        path(plan),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    v["objective"]["end"].as_f64().expect("a number")
}

/// `joule run` of the point mass with extra flags; (exit code, stdout, stderr).
fn run_point_mass(extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["run", "tests/optimize/point_mass.joule"];
    args.extend_from_slice(extra);
    let o = joule(&args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_run_replays_the_plan_optimize_wrote() {
    for name in ["replay.csv", "replay.npy"] {
        let plan = temp(name);
        let end = optimize_plan(&plan);
        assert!(end > 1e-6, "a plan short of the target: {end}");
        let page = temp(&format!("{name}.html"));
        let (code, out, err) = run_point_mass(&[
            "--steps",
            "20",
            "--batch",
            "2",
            "--controls",
            path(&plan),
            "--html",
            path(&page),
            "--json",
        ]);
        assert_eq!(code, Some(0), "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
        // The same rollout: bitwise the loss optimize reported, in every environment.
        assert_eq!(v["loss"]["miss"][0].as_f64(), Some(end), "{name}");
        assert_eq!(v["loss"]["miss"][1].as_f64(), Some(end), "{name}");
        // The viewer plays the replayed run: its last frame puts the puck
        // where the run ends (f32-rounded), away from where it starts.
        let html = std::fs::read_to_string(&page).expect("page written");
        let open = r#"<script id="joule-data" type="application/json">"#;
        let start = html.find(open).expect("the data element") + open.len();
        let len = html[start..].find("</script>").expect("closed");
        let data: serde_json::Value =
            serde_json::from_str(&html[start..start + len]).expect("JSON data");
        // Both environments side by side: frames of [environment][DOF].
        assert_eq!(data["envs"], serde_json::json!([0, 1]));
        let dofs = data["dofs"].as_u64().expect("dofs") as usize;
        let frames = common::html_frames(&data);
        assert_eq!(frames.len(), 21 * 2 * dofs, "steps 0..=20");
        let last = &frames[20 * 2 * dofs..21 * 2 * dofs];
        let position = &v["observe"]["position"][0];
        for (k, (shown, error)) in last.iter().enumerate() {
            let want = position[k % dofs].as_f64().expect("a coordinate");
            assert!(
                (shown - want).abs() <= error + 1e-6,
                "{name}: {shown} vs {want}"
            );
        }
        assert!(last[0].0 > 0.1, "{name}: the plan moved the puck: {last:?}");
    }
}

#[test]
fn cli_run_rejects_plans_that_do_not_fit() {
    let plan = temp("fit.csv");
    optimize_plan(&plan);
    let text = std::fs::read_to_string(&plan).expect("plan");
    let edited = |name: &str, f: &dyn Fn(&str) -> String| {
        let p = temp(name);
        std::fs::write(&p, f(&text)).expect("write");
        p
    };
    let nan = edited("nan.csv", &|t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines[3] = "2,NaN,0".into();
        lines.join("\n")
    });
    let big = edited("big.csv", &|t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines[1] = "0,1.5,0".into();
        lines.join("\n")
    });
    let header = edited("header.csv", &|t| {
        t.replacen("step,u[0],u[1]", "step,u[0]", 1)
    });
    for (flags, message, hint) in [
        (
            vec!["--steps", "21", "--controls", path(&plan)],
            "plans 20 steps, but the run has 21",
            "`--steps 20`",
        ),
        (
            vec!["--steps", "20", "--controls", path(&big)],
            "u[0] = 1.5 at step 0 is outside its range -1..1",
            "declares `u[0]` in -1..1",
        ),
        (
            vec!["--steps", "20", "--controls", path(&nan)],
            "u[0] at step 2 is NaN",
            "finite value",
        ),
        (
            vec!["--steps", "20", "--controls", path(&header)],
            "has the header `step,u[0]`",
            "the header `step,u[0],u[1]`",
        ),
    ] {
        let (code, _, err) = run_point_mass(&flags);
        // miette wraps long lines; read them whole.
        let err = err.replace("\n  │ ", " ").replace("\n        ", " ");
        assert_eq!(code, Some(1), "{flags:?}");
        assert!(
            err.contains(message) && err.contains(hint),
            "{flags:?}: {err}"
        );
    }
    // A plan for a scene without controls.
    let o = joule(&["run", "scenes/pendulum.joule", "--controls", path(&plan)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the scene has no controls"));
    // A plan or a policy, not both.
    let (code, _, _) = run_point_mass(&["--controls", path(&plan), "--policy", "p.safetensors"]);
    assert_eq!(code, Some(2));
}

#[test]
fn cli_refuses_a_recording_with_a_nan() {
    // Was "NaN -> NaN" at the end of the run.
    let rec = record_swing("to-damage.npz", "g=3.71");
    let nan = temp("nan-swing.npz");
    common::rewrite_npz(&rec, &nan, false, &|name, d| {
        if name == "position" {
            d[7] = f64::NAN;
        }
    });
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("position={}", path(&nan)),
        "--wrt",
        "g",
    ]);
    assert_eq!(o.status.code(), Some(1));
    common::fails_with_hint(
        &o,
        "array `position` has a non-finite value (NaN) at flat index 7",
    );
}

#[test]
fn cli_refuses_an_objective_that_overflows() {
    // Was "objective minimised: inf -> inf", exit 0 and the files written.
    let rec = record_swing("to-overflow.npz", "g=3.71");
    let huge = temp("huge-swing.npz");
    common::rewrite_npz(&rec, &huge, false, &|name, d| {
        if name == "position" {
            d[7] = 1e200;
        }
    });
    let curve = temp("overflow-curve.csv");
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("position={}", path(&huge)),
        "--wrt",
        "g",
        "--curve",
        path(&curve),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::fails_with_hint(&o, "the objective is inf at the start");
    assert!(err.contains("squared differences overflow"), "{err}");
    assert!(!curve.exists(), "nothing written");
}

#[test]
fn windows_sum_the_objectives_of_their_separate_rollouts() {
    // Multiple shooting: three windows, each from its own state with its own
    // controls, run as one batch; the objective is the sum of the three
    // single rollouts, and its gradient in the shared param the sum of theirs.
    let scene = point_mass();
    let starts = [
        (vec![0.1, 0.0, 0.0], vec![0.0, 0.2, 0.0]),
        (vec![-0.2, 0.3, 0.0], vec![0.1, 0.0, 0.0]),
        (vec![0.4, -0.1, 0.0], vec![-0.3, 0.1, 0.0]),
    ];
    let steps = 12;
    let schedule = |k: usize| -> Vec<Vec<f64>> {
        (0..steps)
            .map(|t| {
                vec![
                    ((t + k) as f64 * 0.7).sin(),
                    ((t * k) as f64 * 0.3).cos() * 0.5,
                ]
            })
            .collect()
    };
    let mut batched = Problem::new(&scene, Objective::loss("miss"), steps);
    batched.params[0] = 1.7;
    batched.windows = (0..3)
        .map(|k| Window {
            state: starts[k].clone(),
            schedule: schedule(k),
        })
        .collect();
    let single = |k: usize, force: f64| -> f64 {
        let mut p = Problem::new(&scene, Objective::loss("miss"), steps);
        p.params[0] = force;
        p.state = Some(starts[k].clone());
        p.schedule = schedule(k);
        evaluate(&scene, &p).expect("rollout")
    };
    let sum: f64 = (0..3).map(|k| single(k, 1.7)).sum();
    let value = evaluate(&scene, &batched).expect("windows");
    assert!(
        (value - sum).abs() < 1e-14 * sum.abs().max(1.0),
        "{value} vs {sum}"
    );
    // Identification: every window's positions recorded at force 2.3 (one
    // simulation each), the force fitted to all of them from 1.7.
    let recorded: Vec<Vec<Vec<f64>>> = (0..3)
        .map(|k| {
            let mut sim = scene.batch(1);
            sim.set_param("force", 2.3).expect("a param");
            sim.set_state(0, &starts[k].0, &starts[k].1);
            (0..steps)
                .map(|t| {
                    for (c, u) in schedule(k)[t].iter().enumerate() {
                        sim.set_control(c, 0, *u);
                    }
                    sim.step();
                    sim.output("position").iter().map(|row| row[0]).collect()
                })
                .collect()
        })
        .collect();
    let targets = (0..steps)
        .map(|t| {
            (0..3)
                .map(|c| (0..3).map(|k| recorded[k][t][c]).collect())
                .collect()
        })
        .collect();
    let mut fit = batched.clone();
    fit.objective = Objective::track("position", targets);
    fit.maximise = false;
    fit.wrt_params = vec![0];
    let s = optimize(&scene, &fit, Method::Lbfgs, 60).expect("fit");
    assert!((s.params[0] - 2.3).abs() < 1e-9, "force {}", s.params[0]);
    assert!(s.value < 1e-20, "{}", s.value);
    // Windows replay recorded controls: they cannot be optimised.
    let mut both = batched.clone();
    both.wrt_controls = true;
    let err = optimize(&scene, &both, Method::Lbfgs, 1).expect_err("refused");
    assert!(err.to_string().contains("cannot be optimised"), "{err}");
    let mut short = batched.clone();
    short.windows[1].schedule.truncate(5);
    let err = evaluate(&scene, &short).expect_err("refused");
    assert!(err.to_string().contains("window 1 holds 5 steps"), "{err}");
}
