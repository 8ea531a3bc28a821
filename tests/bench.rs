//! `joule bench`: the JSON it prints has the documented keys, and its figures
//! are positive, finite and consistent with each other. Wall-clock values are
//! never compared against limits (the machine may be loaded).

use serde_json::Value;
use std::process::{Command, Output};

fn joule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(args)
        .output()
        .expect("the joule binary runs")
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).expect("one JSON object")
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is a number in {v}"));
    assert!(x.is_finite() && x > 0.0, "`{key}` = {x}");
    x
}

#[test]
fn bench_json_has_the_documented_keys_and_consistent_figures() {
    let v = json(&joule(&[
        "bench",
        "scenes/pendulum.joule",
        "--batch",
        "1,3",
        "--threads",
        "1,2",
        "--steps",
        "20",
        "--repeats",
        "2",
        "--horizon",
        "10",
        "--json",
    ]));
    assert_eq!(v["scene"], "scenes/pendulum.joule");
    let dofs = v["dofs"].as_u64().expect("dofs") as f64;
    assert!(dofs > 0.0);
    let dt = positive(&v, "dt");
    assert_eq!(v["integrator"], "symplectic_euler");
    // Compile phases: front end and back end, each within the whole compile.
    let compile = &v["compile_ms"];
    let total = positive(compile, "total");
    for phase in ["parse", "resolve", "ir", "diff", "codegen"] {
        let ms = compile[phase].as_f64().unwrap_or_else(|| panic!("{phase}"));
        assert!(ms >= 0.0 && ms <= total, "{phase} {ms} ms of {total} ms");
    }
    // One row per (threads, batch), threads outermost, in the order given.
    let runs = v["runs"].as_array().expect("runs");
    let order: Vec<(u64, u64)> = runs
        .iter()
        .map(|r| (r["threads"].as_u64().unwrap(), r["batch"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [(1, 1), (1, 3), (2, 1), (2, 3)]);
    for r in runs {
        assert_eq!(r["steps"], 20);
        assert_eq!(r["repeats"], 2);
        assert_eq!(r["events"], 0, "the pendulum is stable: {r}");
        let seconds = positive(r, "seconds");
        let eps = positive(r, "env_steps_per_s");
        let batch = r["batch"].as_f64().unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(rel(eps, batch * 20.0 / seconds) < 1e-12, "{r}");
        assert!(rel(positive(r, "sim_s_per_s"), eps * dt) < 1e-12, "{r}");
        // ns per DOF-step and env-steps/s describe the same time.
        let ns = positive(r, "ns_per_dof_step");
        assert!(rel(ns * eps * dofs, 1e9) < 1e-9, "{r}");
        if cfg!(target_os = "linux") {
            assert!(r["peak_rss_bytes"].as_u64().expect("VmHWM on Linux") > 0);
        }
    }
    // The gradient of the first loss over the stated horizon.
    let g = &v["gradient"];
    assert_eq!(g["objective"], "loss miss");
    assert_eq!(g["horizon"], 10);
    assert_eq!(g["batch"], 1);
    let ratio = positive(g, "ratio");
    let (f, gs) = (positive(g, "forward_s"), positive(g, "gradient_s"));
    assert!((ratio - gs / f).abs() <= 1e-12 * ratio);
    // 16 bytes (x and v) per DOF, step and SIMD lane: one environment fills
    // one of the two f64 lanes of the vector it records.
    assert_eq!(g["bytes_per_env_step"].as_f64().unwrap(), 32.0 * dofs);
    assert!(v["gradient_note"].is_null());
}

#[test]
fn bench_table_and_a_scene_without_objectives() {
    let dir = std::env::temp_dir().join(format!("joule-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scene = dir.join("chain.joule");
    std::fs::write(
        &scene,
        "scene \"chain\"\nsettings { dt = 1e-3 }\n\
         particle p[i in 0..3] { x = vec3(0.1 * i, 0, 1), mass = 0.1 }\nfix p[0]\n\
         energy spring(a: particle, b: particle) = 50 * (norm(a.x - b.x) - rest(norm(a.x - b.x)))^2\n\
         spring(p[i], p[i + 1]) for i in 0..2\n",
    )
    .expect("scene written");
    let path = scene.to_str().expect("utf-8 path");
    let args = [
        "bench",
        path,
        "--batch",
        "2",
        "--threads",
        "1",
        "--steps",
        "5",
    ];
    let v = json(&joule(&[&args[..], &["--json"]].concat()));
    assert!(v["gradient"].is_null());
    assert!(v["gradient_note"]
        .as_str()
        .expect("a note")
        .contains("no loss or reward"));
    let o = joule(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for header in [
        "env-steps/s",
        "sim-s/s",
        "ns/DOF-step",
        "peak MiB",
        "compile (ms",
    ] {
        assert!(text.contains(header), "`{header}` in\n{text}");
    }
    assert!(text.contains("gradient: skipped"), "{text}");
}

#[test]
fn bench_rejects_bad_input_with_a_diagnostic() {
    let o = joule(&["bench", "scenes/pendulum.joule", "--batch", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("a batch of 0 environments"));
    let o = joule(&["bench", "scenes/no_such_scene.joule"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
    let o = joule(&["bench", "scenes/pendulum.joule", "--batch", "1,x"]);
    assert_eq!(o.status.code(), Some(2), "bad usage is exit 2");
}

/// `joule bench scenes/reacher.joule` with `extra`, 6 steps of 3
/// environments on one thread, as JSON.
fn reacher(extra: &[&str]) -> Value {
    let args = [
        "bench",
        "scenes/reacher.joule",
        "--batch",
        "3",
        "--threads",
        "1",
        "--steps",
        "6",
        "--repeats",
        "2",
        "--horizon",
        "4",
        "--json",
    ];
    json(&joule(&[&args[..], extra].concat()))
}

/// The final state's fingerprint of the only run.
fn fingerprint(v: &Value) -> f64 {
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    runs[0]["state_fingerprint"]
        .as_f64()
        .unwrap_or_else(|| panic!("a finite fingerprint in {v}"))
}

#[test]
fn bench_controls_are_reproducible_for_a_seed_and_differ_between_seeds() {
    let zero = reacher(&[]);
    assert_eq!(zero["controls"]["mode"], "zero");
    let a = reacher(&["--controls", "random", "--seed", "7"]);
    let b = reacher(&["--controls", "random", "--seed", "7"]);
    let c = reacher(&["--controls", "random", "--seed", "8"]);
    assert_eq!(a["controls"]["mode"], "random");
    assert_eq!(a["controls"]["seed"], 7);
    assert_eq!(
        fingerprint(&a),
        fingerprint(&b),
        "the same seed, the same run"
    );
    assert_ne!(
        fingerprint(&a),
        fingerprint(&c),
        "another seed, other controls"
    );
    assert_ne!(fingerprint(&a), fingerprint(&zero), "random is not at rest");
    // The default seed is 0; the thread count does not change the run
    // (`--threads 2` adds a second run to reacher's `--threads 1`).
    let d = reacher(&["--controls", "random"]);
    let e = reacher(&["--controls", "random", "--seed", "0", "--threads", "2"]);
    assert_eq!(d["controls"]["seed"], 0);
    let runs = e["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["state_fingerprint"].as_f64(), Some(fingerprint(&d)));
    }
    for v in [&zero, &a, &c, &d] {
        let run = &v["runs"][0];
        let newton = run["newton_iterations_per_step"]
            .as_f64()
            .unwrap_or_else(|| panic!("an implicit scene counts Newton iterations: {run}"));
        assert!((1.0..=20.0).contains(&newton), "{run}");
        assert!(v["gradient"]["ratio"].as_f64().is_some(), "{v}");
    }
}

#[test]
fn bench_steps_with_sines_and_plans() {
    let sine = reacher(&["--controls", "sine"]);
    assert_eq!(sine["controls"]["mode"], "sine");
    assert_eq!(sine["runs"][0]["events"], 0, "{sine}");
    assert_ne!(fingerprint(&sine), fingerprint(&reacher(&[])));
    // A plan of 3 steps is replayed in a loop over the 2 + 2 x 6 steps; a
    // plan of zeros is the default controls.
    let dir = std::env::temp_dir().join(format!("joule-bench-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("plan.csv");
    std::fs::write(&plan, "step,u[0],u[1]\n0,0,0\n1,0,0\n2,0,0\n").unwrap();
    let p = reacher(&["--controls", plan.to_str().unwrap()]);
    assert_eq!(p["controls"]["mode"], "plan");
    assert_eq!(p["controls"]["plan_steps"], 3);
    assert_eq!(fingerprint(&p), fingerprint(&reacher(&[])));
    std::fs::write(&plan, "step,u[0],u[1]\n0,1,-0.5\n1,0.25,0\n").unwrap();
    let q = reacher(&["--controls", plan.to_str().unwrap()]);
    assert_ne!(fingerprint(&q), fingerprint(&p));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_refuses_bad_controls_with_a_hint() {
    // (scene, --controls, what the error says, what its hint says)
    let cases = [
        (
            "scenes/reacher.joule",
            "randm",
            "unknown `--controls` mode `randm`",
            "`random`",
        ),
        (
            "scenes/reacher.joule",
            "no/such/plan.csv",
            "cannot read `no/such/plan.csv`",
            "joule optimize --out",
        ),
        (
            "scenes/reacher.joule",
            "tests/bench.rs",
            "unknown `--controls` mode",
            "PLAN.csv",
        ),
        (
            "scenes/pendulum.joule",
            "random",
            "the scene declares no controls",
            "drop `--controls`",
        ),
    ];
    for (scene, controls, error, hint) in cases {
        let o = joule(&["bench", scene, "--controls", controls, "--steps", "2"]);
        assert_eq!(o.status.code(), Some(1), "{controls}: a diagnostic, exit 1");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(error), "{controls}: `{error}` in {err}");
        let help = err
            .split("help:")
            .nth(1)
            .unwrap_or_else(|| panic!("a hint in {err}"));
        // miette wraps long hints: compare without line breaks.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(hint), "{controls}: `{hint}` in {help}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The benchmark inputs of `benches/scenes/` (the peers' rows run them) stay
/// valid scenes: each compiles (`joule check`), and the robots on MuJoCo's
/// laws step under random controls with no solver event (the implicit
/// cloth is documented not to converge, docs/performance.md).
#[test]
fn every_benchmark_input_compiles_and_the_robots_step() {
    let mut seen = 0;
    for entry in std::fs::read_dir("benches/scenes").expect("benches/scenes") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "joule") {
            continue;
        }
        let p = path.to_str().unwrap();
        let o = joule(&["check", p]);
        assert!(
            o.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} benchmark inputs");
    for p in [
        "benches/scenes/ant_mujoco.joule",
        "benches/scenes/humanoid_mujoco.joule",
    ] {
        let v = json(&joule(&[
            "bench",
            p,
            "--batch",
            "1",
            "--threads",
            "1",
            "--steps",
            "20",
            "--repeats",
            "1",
            "--horizon",
            "0",
            "--controls",
            "random",
            "--seed",
            "0",
            "--json",
        ]));
        let run = &v["runs"][0];
        positive(run, "newton_iterations_per_step");
        assert_eq!(run["events"], 0, "{p}: {run}");
    }
}
