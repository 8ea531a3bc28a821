//! Optimisation through the simulator: trajectory optimisation that provably
//! converges (a point mass with linear dynamics), parameter identification
//! from a recorded trajectory, model-predictive control, and the CLI's files
//! and errors.

use joule::optimize::{evaluate, mpc, optimize, Method, Problem};
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
    let (applied, plans) = mpc(&scene, &problem, Method::Lbfgs, 20, steps, 10).expect("mpc");
    assert_eq!(applied.len(), steps);
    assert_eq!(plans.len(), steps);
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

/// 300 steps of the pendulum at length 1.3, recorded by `joule run --out`.
fn record_swing(name: &str) -> PathBuf {
    let file = temp(name);
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "300",
        "--param",
        "length=1.3",
        "--out",
        path(&file),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    file
}

#[test]
fn cli_identifies_a_pendulum_length_from_its_recorded_swing() {
    let rec = record_swing("swing.npz");
    let curve = temp("curve.csv");
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("position={}", path(&rec)),
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
    let demo = record_swing("demo.npz");
    let o = joule(&[
        "optimize",
        "scenes/pendulum.joule",
        "--match",
        &format!("position={}", path(&demo)),
        "--chamfer",
        "--wrt",
        "length",
        "--iters",
        "30",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let length = v["params"]["length"].as_f64().expect("length");
    // The demonstration's states, in any order, pin the length down.
    assert!((length - 1.3).abs() < 1e-4, "imitated length {length}");
    assert!(
        v["objective"]["end"].as_f64().expect("end")
            < 1e-3 * v["objective"]["start"].as_f64().expect("start")
    );
}

#[test]
fn cli_refuses_a_recording_with_a_nan() {
    // Was "NaN -> NaN" at the end of the run.
    let rec = record_swing("to-damage.npz");
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
        "length",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        err.contains("array `position` has a non-finite value (NaN) at flat index 7")
            && err.contains("help:"),
        "{err}"
    );
}
