//! The command line as users script it: `joule run` and `joule grad` output
//! forms, trajectory files, and errors.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{fails_with_hint, joule, temp};

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

#[test]
fn run_json_has_the_documented_shape() {
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "50",
        "--batch",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["scene"], "scenes/pendulum.joule");
    assert_eq!(v["steps"], 50);
    assert_eq!(v["batch"], 3);
    // A vector observation: one [x, y, z] per environment; a loss: one number per environment.
    let pos = v["observe"]["position"].as_array().expect("per-env list");
    assert_eq!(pos.len(), 3);
    assert_eq!(pos[0].as_array().expect("a vec3").len(), 3);
    assert_eq!(v["loss"]["miss"].as_array().expect("per env").len(), 3);
    for key in ["compile_ms", "run_ms", "env_steps_per_sec"] {
        assert!(v["timing"][key].as_f64().expect("a number") >= 0.0, "{key}");
    }
    // Environments are identical (same params): their values agree.
    assert_eq!(pos[0], pos[2]);
}

#[test]
fn run_writes_csv_with_one_row_per_step_and_environment() {
    let path = temp("traj.csv");
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "10",
        "--batch",
        "2",
        "--out",
        path.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&path).expect("csv written");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("step,t,env,angle,position.x,position.y,position.z"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 11 * 2, "steps 0..=10 for 2 environments");
    assert!(rows[0].starts_with("0,0,0,"));
    let cols = header.split(',').count();
    assert!(rows.iter().all(|r| r.split(',').count() == cols));
}

/// Four steps of three pendulum environments written to `path`.
fn pendulum_trajectory(path: &std::path::Path) -> Output {
    let out = path.to_str().expect("utf-8 temp path");
    joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "4",
        "--batch",
        "3",
        "--out",
        out,
        "--quiet",
    ])
}

#[test]
fn run_writes_npy_and_npz_readable_as_arrays() {
    let npy = temp("traj.npy");
    let o = pendulum_trajectory(&npy);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&npy).expect("npy written");
    let arr = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    // (steps + 1, batch, columns): angle + position(3) + velocity(3) + miss = 8 columns.
    assert_eq!(arr.shape(), &[5, 3, 8]);
    let data: Vec<f64> = arr.into_vec().expect("f64 data");
    assert_eq!(data.len(), 5 * 3 * 8);

    let npz = temp("traj.npz");
    let o = pendulum_trajectory(&npz);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&npz).expect("npz written"))
        .expect("a zip archive");
    let position = npyz::NpyFile::new(zip.by_name("position.npy").expect("position array"))
        .expect("valid npy");
    assert_eq!(position.shape(), &[5, 3, 3]);
    // The npz position at the last step equals the npy columns 1..4.
    let pos: Vec<f64> = position.into_vec().expect("f64");
    assert_eq!(&pos[4 * 9..4 * 9 + 3], &data[4 * 24 + 1..4 * 24 + 4]);
}

#[test]
fn grad_json_and_check_agree_with_finite_differences() {
    let o = joule(&[
        "grad",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--steps",
        "30",
        "--check",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["scene"], "scenes/pendulum.joule");
    assert_eq!(v["steps"], 30);
    assert!(v["loss"].as_f64().is_some());
    let grads = v["gradients"].as_object().expect("gradients");
    assert!(!grads.is_empty());
    for (name, g) in grads {
        let rel = v["check"][name]["relative_error"]
            .as_f64()
            .expect("a check per gradient");
        assert!(rel < 1e-5, "{name}: {g} relative error {rel}");
        let sweep = v["check"][name]["sweep"]
            .as_array()
            .expect("the steps tried");
        assert!(sweep.len() > 2, "{name}: a sweep of steps");
        assert!(v["check"][name]["step"].as_f64().expect("the chosen step") > 0.0);
    }
    assert_eq!(v["verdict"]["agree"], true);
    assert!(v["warnings"].as_array().expect("warnings").is_empty());
}

/// `joule grad --check` of the pendulum's rod stiffness over 20 s: the rod's
/// stretch mode (100 rad/s) makes the loss curve sharply in the stiffness.
fn stiff_check(extra: &[&str]) -> Output {
    let mut args = vec![
        "grad",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--wrt",
        "stiffness",
        "--steps",
        "20000",
        "--check",
        "--json",
    ];
    args.extend_from_slice(extra);
    joule(&args)
}

#[test]
fn a_fixed_difference_step_shows_no_truncation_estimate() {
    // One step has no neighbour to estimate its truncation from: a dash in
    // the table (it printed NaN), null in the JSON.
    let args = [
        "grad",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--steps",
        "50",
        "--check",
        "--fd-step",
        "1e-6",
    ];
    let o = joule(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("length"))
        .expect("a row");
    assert!(!row.contains("NaN") && row.contains(" - "), "{row}");
    let mut json = args.to_vec();
    json.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout(&joule(&json))).expect("JSON");
    assert_eq!(v["check"]["length"]["truncation"], serde_json::Value::Null);
}

#[test]
fn grad_check_sweeps_the_step_where_a_fixed_step_fails() {
    // The former fixed step, 1e-4 of the parameter (1 N/m), truncates at 5e-3:
    // it disagrees, and `--strict` makes that an error.
    let o = stiff_check(&["--fd-step", "1", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let rel = v["check"]["stiffness"]["relative_error"]
        .as_f64()
        .expect("rel");
    assert!(rel > 1e-3, "the fixed step agreed: {rel}");
    assert_eq!(v["verdict"]["agree"], false);
    let message = v["verdict"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("gradients disagree: param stiffness rel. error"),
        "{message}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("the gradient check failed"));
    // The sweep finds a smaller step at which the differences settle, and
    // the adjoint agrees with it.
    let o = stiff_check(&["--strict"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let c = &v["check"]["stiffness"];
    let rel = c["relative_error"].as_f64().expect("rel");
    assert!(rel < 1e-4, "relative error {rel} at the chosen step");
    assert!(c["step"].as_f64().expect("step") < 1.0, "{c}");
    let tried = c["sweep"].as_array().expect("sweep");
    assert!(tried.iter().any(|d| d["step"].as_f64() == Some(100.0)));
    assert!(c["truncation"].as_f64().expect("truncation") < 1e-12);
    assert_eq!(v["verdict"]["agree"], true);
    // The text form ends in the verdict.
    let o = joule(&[
        "grad",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--steps",
        "30",
        "--check",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let last = text.lines().last().expect("output");
    assert!(last.starts_with("gradients agree to "), "{text}");
    assert!(last.contains("(best steps: "), "{last}");
}

/// `joule grad --check --json` of a scene in `tests/grad/` and its exit status.
fn grad_check(scene: &str, loss: &str, steps: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec![
        "grad", scene, "--loss", loss, "--steps", steps, "--check", "--json",
    ];
    args.extend_from_slice(extra);
    let o = joule(&args);
    let v = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code(), v)
}

/// A param array in `joule grad`: `--wrt k` names every element, an
/// element is set by `--param 'k[1]=50'`, and each element's gradient agrees
/// with central differences; an unknown name lists the array as `k[..]`.
#[test]
fn grad_of_a_param_array_by_its_name() {
    let scene = "tests/grad/param_array.joule";
    let (code, v) = grad_check(scene, "low", "50", &["--wrt", "k", "--param", "k[1]=50"]);
    assert_eq!(code, Some(0), "{v}");
    let names: Vec<&String> = v["check"].as_object().expect("checks").keys().collect();
    assert_eq!(names, ["k[0]", "k[1]", "k[2]"]);
    for n in names {
        assert_eq!(v["check"][n]["status"], "agrees", "{n}: {v}");
    }
    let stiff = loss_after(scene, "low", "50", "k[1]", 50.0);
    let soft = loss_after(scene, "low", "50", "k[1]", 20.0);
    assert_ne!(stiff, soft, "`--param 'k[1]=..'` sets the element");
    let o = joule(&["grad", scene, "--loss", "low", "--wrt", "kk"]);
    let err = fails_with_hint(&o, "unknown parameter `kk`");
    assert!(err.contains("k[..], m"), "{err}");
}

/// The loss `name` of `scene` after `steps` steps with one parameter set, by `joule run`.
fn loss_after(scene: &str, name: &str, steps: &str, param: &str, value: f64) -> f64 {
    let set = format!("{param}={value:e}");
    let o = joule(&["run", scene, "--steps", steps, "--param", &set, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    v["loss"][name][0].as_f64().expect("a finite loss")
}

#[test]
fn every_command_that_prints_results_prints_one_json_object_naming_its_scene() {
    // `train` and `imitate` are checked the same way in tests/train.rs, `check`
    // (one object per file, `file`) above.
    let pendulum = "scenes/pendulum.joule";
    let point_mass = "tests/optimize/point_mass.joule";
    for (args, scene, steps) in [
        (vec!["run", pendulum, "--steps", "7"], pendulum, Some(7)),
        (
            vec!["grad", pendulum, "--loss", "miss", "--steps", "7"],
            pendulum,
            Some(7),
        ),
        (
            vec![
                "grad",
                "scenes/cartpole.joule",
                "--loss",
                "final_height",
                "--steps",
                "7",
                "--smooth",
                "0.1",
                "--samples",
                "16",
            ],
            "scenes/cartpole.joule",
            Some(7),
        ),
        (
            vec![
                "optimize", point_mass, "--loss", "miss", "--wrt", "controls", "--steps", "7",
                "--iters", "2",
            ],
            point_mass,
            Some(7),
        ),
        (
            vec![
                "bench",
                pendulum,
                "--batch",
                "1",
                "--threads",
                "1",
                "--steps",
                "7",
                "--horizon",
                "5",
            ],
            pendulum,
            None,
        ),
    ] {
        let mut args = args.clone();
        args.push("--json");
        let o = joule(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = stdout(&o);
        assert_eq!(text.lines().count(), 1, "{args:?}: one line\n{text}");
        let v: Value = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(v["scene"], scene, "{args:?}: {v}");
        if let Some(n) = steps {
            assert_eq!(v["steps"], n, "{args:?}: {v}");
        }
    }
}

#[test]
fn grad_check_raises_no_false_alarm_on_a_bouncing_ball() {
    // The ball has bounced by step 320 and is rising at 450: through the
    // barrier contact the height curves sharply in g, so that a step of 1e-3
    // of g (the kind a fixed step takes) is 18% off; the sweep finds steps
    // at which the differences settle, and the adjoint agrees there.
    let scene = "tests/grad/bouncing_ball.joule";
    let (code, v) = grad_check(scene, "height", "450", &["--strict"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"]["agree"], true, "{v}");
    for name in ["g", "kappa"] {
        let c = &v["check"][name];
        assert_eq!(c["status"], "agrees", "{name}: {c}");
        assert!(
            c["relative_error"].as_f64().expect("rel") < 1e-4,
            "{name}: {c}"
        );
    }
    let coarse = v["check"]["g"]["sweep"]
        .as_array()
        .expect("sweep")
        .iter()
        .find(|d| (d["step"].as_f64().expect("step") - 9.81e-3).abs() < 1e-9)
        .expect("the sweep tries 1e-3 of g")["relative_error"]
        .as_f64()
        .expect("rel");
    assert!(coarse > 0.1, "the coarse step agreed: {coarse}");
    // The adjoint against a derivative computed here from `joule run`'s
    // losses: central differences at h and h / 2, Richardson-extrapolated.
    let at = |g: f64| loss_after(scene, "height", "450", "g", g);
    let central = |h: f64| (at(9.81 + h) - at(9.81 - h)) / (2.0 * h);
    let h = 1e-4;
    let richardson = (4.0 * central(h / 2.0) - central(h)) / 3.0;
    let adjoint = v["gradients"]["g"].as_f64().expect("d height / d g");
    assert!(
        (adjoint - richardson).abs() < 1e-5 * richardson.abs(),
        "adjoint {adjoint}, Richardson {richardson}"
    );
}

#[test]
fn grad_check_reports_a_kink_as_no_derivative() {
    // max(a.z, b.z) where both balls fall alike: after n steps of symplectic
    // Euler at dt, z = z0 - g dt^2 n (n + 1) / 2, so the loss's slope in ga
    // is -dt^2 n (n + 1) / 2 = -0.505 below the default (a is the higher
    // ball) and 0 above it (b is). Central differences give -0.2525 at every
    // step, converged; the check must not take that for a derivative.
    let scene = "tests/grad/kink.joule";
    let (code, v) = grad_check(scene, "higher", "100", &[]);
    assert_eq!(
        code,
        Some(0),
        "without --strict a failed check is reported, not an error"
    );
    assert_eq!(v["verdict"]["agree"], false, "{v}");
    let slope = -1e-4 * 100.0 * 101.0 / 2.0;
    for name in ["ga", "gb"] {
        let c = &v["check"][name];
        assert_eq!(c["status"], "kink", "{name}: {c}");
        assert_eq!(c["differentiable"], false);
        let above = c["kink"]["above"].as_f64().expect("above");
        let below = c["kink"]["below"].as_f64().expect("below");
        assert!(above.abs() < 1e-9, "{name}: from above {above}");
        assert!((below - slope).abs() < 1e-6, "{name}: from below {below}");
        assert!(
            (c["finite_difference"].as_f64().expect("central") - slope / 2.0).abs() < 1e-6,
            "{c}"
        );
    }
    let message = v["verdict"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("not differentiable at this point: param ga has a kink here"),
        "{message}"
    );
    // The adjoint takes one side of the maximum: b's when the two are equal.
    assert!(
        message.contains("the adjoint's 0.0000e0 is the one from above"),
        "{message}"
    );
    assert!(
        message.contains("the adjoint's -5.0500e-1 is the one from below"),
        "{message}"
    );
    let (code, _) = grad_check(scene, "higher", "100", &["--strict"]);
    assert_eq!(code, Some(1));
}

#[test]
fn grad_check_text_of_a_kink() {
    // The table and the verdict as a user reads them (the timing line,
    // which varies from run to run, left out).
    let o = joule(&[
        "grad",
        "tests/grad/kink.joule",
        "--loss",
        "higher",
        "--steps",
        "100",
        "--check",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| !l.trim_start().starts_with("forward "))
        .map(String::from)
        .collect();
    insta::assert_snapshot!(text.join("\n"));
}

/// MuJoCo's laws with the cone's smooth step as the surrogate model
/// (`tests/grad/mujoco_cone_leg.joule`): `--check` says the adjoint
/// differentiates the surrogate model's steps on the trees' configurations,
/// and `--surrogate off` gives the simulation's own derivative, which
/// central differences confirm.
/// Asserts that `--check`'s verdict says what the adjoint differentiates
/// where the surrogates act (`what`), not the simulation.
fn assert_differentiates(v: &Value, what: &str) {
    let message = v["verdict"]["message"].as_str().expect("message");
    let tail = format!(
        "(expected where the surrogates act: the adjoint differentiates {what}, not the simulation)"
    );
    assert!(message.ends_with(&tail), "{message}");
}

#[test]
fn grad_check_of_mujocos_laws_through_the_cone() {
    let scene = "tests/grad/mujoco_cone_leg.joule";
    let (code, v) = grad_check(scene, "where", "8", &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"]["agree"], false, "{v}");
    assert_differentiates(&v, "steps of the surrogate model (implicit Euler on the trees' configurations), its `backward =` of contact_mujoco_cone");
    let (code, v) = grad_check(scene, "where", "8", &["--surrogate", "off"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"]["agree"], true, "{v}");
}

#[test]
fn grad_check_names_the_surrogates_that_make_the_adjoint_differ() {
    // Penalty contact forward, a softplus surrogate backward: the adjoint is
    // deliberately not the simulation's derivative, and the verdict says so.
    let (code, v) = grad_check("tests/grad/surrogate.joule", "height", "300", &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"]["agree"], false, "{v}");
    assert_eq!(v["check"]["g"]["status"], "disagrees", "{v}");
    assert_eq!(v["surrogates"], serde_json::json!(["floor"]));
    assert_differentiates(&v, "`backward =` of floor");
    // Differentiating the surrogate model instead, the verdict says that.
    let (_, v) = grad_check(
        "tests/grad/surrogate.joule",
        "height",
        "300",
        &["--surrogate", "model"],
    );
    assert_eq!(v["verdict"]["agree"], false, "{v}");
    assert_differentiates(
        &v,
        "steps of the surrogate model, its `backward =` of floor",
    );
    // A scene without surrogates names none.
    let (_, v) = grad_check("tests/grad/bouncing_ball.joule", "height", "20", &[]);
    assert_eq!(v["surrogates"], serde_json::json!([]));
}

#[test]
fn grad_check_does_not_call_round_off_a_wrong_gradient() {
    // The loss is zero up to round-off of coordinates near 1000 and 3000
    // (~6e-13), its derivative zero: every difference is noise, which the
    // check reports as unresolved, not as a disagreement, and `--strict`
    // accepts.
    let (code, v) = grad_check("tests/grad/round_off.joule", "apart", "50", &["--strict"]);
    assert_eq!(code, Some(0), "{v}");
    let c = &v["check"]["k"];
    assert_eq!(c["status"], "unresolved", "{c}");
    assert!(c["relative_error"].as_f64().expect("rel") > 1e-4, "{c}");
    assert!(v["gradients"]["k"].as_f64().expect("adjoint").abs() < 1e-12);
    assert_eq!(v["verdict"]["agree"], true);
    let message = v["verdict"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "gradients unresolved, none disagrees: finite differences cannot resolve param k"
        ),
        "{message}"
    );
}

#[test]
fn grad_warns_of_divergence_and_strict_fails() {
    let args = [
        "grad",
        "tests/grad/unstable.joule",
        "--loss",
        "depth",
        "--steps",
        "200",
    ];
    // A warning with the step and environment, exit 0 without `--strict`.
    let o = joule(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: environment 0 diverged at step 78"),
        "{err}"
    );
    assert!(
        err.contains(
            "warning: loss depth is NaN, d depth / d k is NaN (environment 0 diverged at step 78"
        ),
        "{err}"
    );
    // The JSON has the warnings and null for the non-finite numbers.
    let mut json = args.to_vec();
    json.push("--json");
    let o = joule(&json);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["loss"], serde_json::Value::Null);
    assert_eq!(v["gradients"]["k"], serde_json::Value::Null);
    assert_eq!(v["warnings"].as_array().expect("warnings").len(), 2);
    // `--strict`: the same output, then a non-zero exit.
    json.push("--strict");
    let o = joule(&json);
    assert_eq!(o.status.code(), Some(1));
    assert!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).is_ok());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--strict: the result is not finite"));
}

#[test]
fn grad_blames_a_not_finite_objective_on_its_expression_not_the_adjoint() {
    let o = joule(&[
        "grad",
        "tests/grad/nan_loss.joule",
        "--loss",
        "bad",
        "--steps",
        "3",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: loss bad is NaN")
            && err.contains("the loss's expression is not finite there")
            && !err.contains("the adjoint pass produced it"),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_diagnostic_and_a_failure() {
    for args in [
        vec!["run", "scenes/pendulum.joule", "--param", "nope=1"],
        vec!["run", "scenes/pendulum.joule", "--param", "g"],
        vec!["run", "scenes/pendulum.joule", "--out", "x.txt"],
        vec!["grad", "scenes/pendulum.joule", "--loss", "nothing"],
        vec![
            "grad",
            "scenes/pendulum.joule",
            "--loss",
            "miss",
            "--check",
            "--fd-step",
            "0",
        ],
        vec!["run", "compiler/tests/invalid/07_unknown_name_typo.joule"],
        vec![
            "grad",
            "scenes/cartpole.joule",
            "--loss",
            "final_height",
            "--smooth",
            "-1",
        ],
        vec![
            "grad",
            "scenes/cartpole.joule",
            "--loss",
            "final_height",
            "--smooth",
            "0.1",
            "--samples",
            "4",
        ],
        vec![
            "grad",
            "scenes/pendulum.joule",
            "--loss",
            "miss",
            "--smooth",
            "0.1",
        ],
        vec!["run", "no/such/scene.joule"],
    ] {
        let o = joule(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.trim().is_empty() && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !std::path::Path::new("x.txt").exists(),
        "nothing half-written"
    );
}

/// `joule grad --smooth` on the cart-pole (smooth dynamics, no contact): the
/// exact adjoint's smoothed gradient agrees with the simulation's own
/// antithetic differences as far as the differences resolve it (their
/// ceiling), and has no spread of its own to speak of next to theirs.
#[test]
fn grad_smooth_finds_the_exact_gradient_unbiased() {
    let o = joule(&[
        "grad",
        "scenes/cartpole.joule",
        "--loss",
        "final_height",
        "--steps",
        "40",
        "--smooth",
        "0.1",
        "--samples",
        "512",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(v["gradient"], "exact");
    assert!(f("ceiling") > 0.8, "a resolved reference: {v}");
    assert!((f("cosine") - f("ceiling")).abs() < 0.1, "{v}");
    assert!(f("first_spread") < 0.5 * f("zeroth_spread"), "{v}");
}

/// `joule grad --smooth --from REC.npz:K` starts every rollout from step K
/// of a recording, around the controls it applied: with noise too small to
/// move anything, the smoothed objective is the loss `joule run` reports
/// after K + `--steps` steps of the same plan from the start.
#[test]
fn grad_smooth_from_a_recording_continues_it() {
    let plan = |steps: usize| {
        let path = temp(&format!("swing{steps}.csv"));
        let rows: String = (0..steps)
            .map(|t| format!("{t},{}\n", 0.8 * (0.4 * t as f64).sin()))
            .collect();
        std::fs::write(&path, format!("step,u\n{rows}")).expect("a plan");
        path
    };
    let path = |p: std::path::PathBuf| p.to_str().expect("a UTF-8 path").to_string();
    let (plan30, plan22) = (path(plan(30)), path(plan(22)));
    let (rec, bare) = (path(temp("swing.npz")), path(temp("bare.npz")));
    let cartpole = "scenes/cartpole.joule";
    let run = |steps: &str, plan: &str, extra: &[&str]| {
        let mut args = vec!["run", cartpole, "--steps", steps, "--controls", plan];
        args.extend(extra);
        let o = joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    run("30", &plan30, &["--state", "--out", &rec]);
    let o = run("22", &plan22, &["--json"]);
    let run_json: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let expected = run_json["loss"]["final_height"][0]
        .as_f64()
        .expect("the loss");
    let grad = |sigma: &str, extra: &[&str]| {
        let mut args = vec![
            "grad",
            cartpole,
            "--loss",
            "final_height",
            "--smooth",
            sigma,
        ];
        args.extend(["--samples", "16", "--json"]);
        args.extend(extra);
        joule(&args)
    };
    let value = |o: &Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_str(&stdout(o)).expect("one JSON object");
        v["value"].as_f64().expect("the smoothed objective")
    };
    let continued = value(&grad(
        "1e-9",
        &["--steps", "10", "--from", &format!("{rec}:12")],
    ));
    assert!(
        (continued - expected).abs() < 1e-9,
        "{continued} against {expected}"
    );
    // From the scene's start, on controls at 0: another objective.
    let still = value(&grad("1e-9", &["--steps", "22"]));
    assert!(
        (still - expected).abs() > 1e-3,
        "{still} against {expected}"
    );
    // Past the recording's end, a step that is no number, no step, no
    // states: diagnostics.
    run("30", &plan30, &["--out", &bare]);
    for (k, what) in [
        (format!("{rec}:25"), "go past the 30 steps"),
        (format!("{rec}:x"), "is not a step number"),
        (rec.clone(), "names no step"),
        (
            format!("{bare}:3"),
            "`--from` starts from the recording's states",
        ),
    ] {
        fails_with_hint(&grad("0.1", &["--steps", "10", "--from", &k]), what);
    }
}

#[test]
fn grad_of_a_summed_reward() {
    let o = joule(&[
        "grad",
        "scenes/reacher.joule",
        "--reward",
        "closeness",
        "--steps",
        "20",
        "--wrt",
        "target_x,target_y",
        "--check",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert!(v["reward"].as_f64().expect("the summed reward") < 0.0);
    for name in ["target_x", "target_y"] {
        let g = v["gradients"][name].as_f64().expect("a gradient");
        assert!(g.abs() > 1.0, "{name}: {g}");
        let rel = v["check"][name]["relative_error"]
            .as_f64()
            .expect("checked");
        assert!(rel < 1e-5, "{name}: relative error {rel}");
    }
}

#[test]
fn new_scaffolds_a_scene_that_runs_and_never_overwrites() {
    let dir = temp("scaffold");
    std::fs::create_dir_all(&dir).expect("dir");
    let joule_in = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_joule"))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("runs")
    };
    let _ = std::fs::remove_file(dir.join("walker.joule"));
    let o = joule_in(&["new", "walker"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = joule_in(&["run", "walker.joule", "--steps", "50", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["scene"], "walker.joule");
    let before = std::fs::read_to_string(dir.join("walker.joule")).expect("written");
    let o = joule_in(&["new", "walker"]);
    assert!(!o.status.success(), "a second `new` must not overwrite");
    assert_eq!(
        std::fs::read_to_string(dir.join("walker.joule")).expect("kept"),
        before
    );
    assert!(!joule_in(&["new", "../escape"]).status.success());
}

#[test]
fn new_errors_have_a_hint() {
    for (name, want) in [
        ("/dev/full", "is not a plain file name"),
        ("../escape", "is not a plain file name"),
        ("", "is not a plain file name"),
    ] {
        let o = joule(&["new", name]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        fails_with_hint(&o, want);
    }
}

#[test]
fn batches_and_threads_are_bounded_before_allocating() {
    // `--batch 1000000000` aborted on a failed allocation (exit 134);
    // `--threads 10000` started ten thousand threads (30 s).
    let huge = "1000000000";
    for (args, want) in [
        (
            &["run", "scenes/pendulum.joule", "--batch", huge][..],
            "`--batch 1000000000`: 1000000000 environments would take",
        ),
        (
            &[
                "bench",
                "scenes/pendulum.joule",
                "--batch",
                &format!("1,{huge}"),
            ],
            "`--batch 1000000000`: 1000000000 environments would take",
        ),
        (
            &[
                "grad",
                "scenes/cartpole.joule",
                "--loss",
                "final_height",
                "--smooth",
                "0.1",
                "--samples",
                huge,
            ],
            "`--samples 1000000000`: 2000000000 environments would take",
        ),
        (
            &[
                "grad",
                "scenes/cartpole.joule",
                "--loss",
                "final_height",
                "--smooth",
                "0.1",
                "--samples",
                "100000",
                "--steps",
                "100000000",
            ],
            "`--samples 100000` over 100000000 steps would hold",
        ),
        (
            &[
                "run",
                "scenes/pendulum.joule",
                "--batch",
                "100000",
                "--steps",
                "1000000",
                "--out",
                "never.npz",
            ],
            "recording 1000000 steps of 100000 environments (`--out`) would hold",
        ),
        (
            &["run", "scenes/pendulum.joule", "--threads", "10000"],
            "`--threads 10000` is not a thread count from 1 to 1024",
        ),
        (
            &["run", "scenes/pendulum.joule", "--threads", "0"],
            "`--threads 0` is not a thread count",
        ),
        (
            &["bench", "scenes/pendulum.joule", "--threads", "1,10000"],
            "`--threads 10000` is not a thread count",
        ),
        (
            &[
                "optimize",
                "scenes/pendulum.joule",
                "--loss",
                "miss",
                "--wrt",
                "g",
                "--threads",
                "2000",
            ],
            "`--threads 2000` is not a thread count",
        ),
    ] {
        let start = std::time::Instant::now();
        let o = joule(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = fails_with_hint(&o, want);
        assert!(err.contains(" GiB") || err.contains("1 to 1024"), "{err}");
        assert!(
            start.elapsed().as_secs() < 20,
            "{args:?} took {:?}",
            start.elapsed()
        );
    }
    // Within the bounds, the same commands run.
    let o = joule(&[
        "run",
        "scenes/pendulum.joule",
        "--batch",
        "4096",
        "--steps",
        "1",
        "--threads",
        "1024",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn completions_are_generated() {
    let o = joule(&["completions", "bash"]);
    assert!(o.status.success());
    let script = stdout(&o);
    assert!(script.contains("joule") && script.contains("grad") && script.contains("--steps"));
}

#[test]
fn check_json_locates_every_diagnostic() {
    let o = joule(&[
        "check",
        "--json",
        "compiler/tests/invalid/07_unknown_name_typo.joule",
        "scenes/pendulum.joule",
    ]);
    assert_eq!(o.status.code(), Some(1), "one file has an error");
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ok"], false);
    let d = &lines[0]["diagnostics"][0];
    assert_eq!(d["code"], "joule::unknown_name");
    assert_eq!(d["help"], "did you mean `stiffness`?");
    // The label points at the misspelt name in the file.
    let src =
        std::fs::read_to_string("compiler/tests/invalid/07_unknown_name_typo.joule").expect("file");
    let line = d["labels"][0]["line"].as_u64().expect("line") as usize;
    let col = d["labels"][0]["column"].as_u64().expect("column") as usize;
    let len = d["labels"][0]["length"].as_u64().expect("length") as usize;
    let text = src.lines().nth(line - 1).expect("that line");
    assert_eq!(&text[col - 1..col - 1 + len], "stifness");
    assert_eq!(
        lines[1],
        serde_json::json!({"scene": "scenes/pendulum.joule", "ok": true, "diagnostics": []})
    );
}

#[test]
fn import_writes_a_scene_that_runs_and_reports_unsupported_elements() {
    let out = temp("cartpole.joule");
    let o = joule(&[
        "import",
        "tests/mjcf/cartpole.xml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.contains("body cart {") && text.contains("observe tip = pole.point"));
    let o = joule(&["run", out.to_str().unwrap(), "--steps", "20", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without -o the scene goes to standard output.
    let o = joule(&["import", "tests/mjcf/cartpole.xml"]);
    assert_eq!(stdout(&o), text);
    // Unsupported elements: located errors, exit 1, nothing written; --lenient imports the rest.
    let bad = temp("unsupported.joule");
    let args = [
        "import",
        "tests/mjcf/invalid/unsupported_elements.xml",
        "-o",
        bad.to_str().unwrap(),
        "--color",
        "never",
    ];
    let o = joule(&args);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a spatial tendon's `<geom>` is not supported")
            && err.contains("unsupported_elements.xml:16:7"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing written on error");
    let o = joule(&[&args[..], &["--lenient"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped (--lenient)"));
    assert!(bad.exists());
}

/// `joule import --friction coulomb` writes the ground contact as
/// `contact_coulomb` (Coulomb's bound by the step's own normal force) where
/// the default writes MuJoCo's cone; the imported ant stands on either, its
/// torso after 100 steps within 2 mm of the cone's (0.5941 and 0.5928 m;
/// MuJoCo's 0.597). `--friction mujoco` writes MuJoCo's own contact and
/// limit laws (`contact_mujoco`) and MuJoCo's Euler step (`kinematics =
/// linear`), on which it stands where MuJoCo's does (MuJoCo 4.0.1:
/// 0.5969454761825784 m; measured 1.2e-15 m apart), and so does
/// `use "ant.xml" (friction = mujoco)` (tests/mjcf/ant_mujoco.joule).
#[test]
fn import_writes_the_contact_law_asked_for() {
    let torso_height = |friction: Option<&str>| {
        let out = temp(&format!("ant_{}.joule", friction.unwrap_or("default")));
        let mut args = vec!["import", "tests/mjcf/ant.xml", "-o", out.to_str().unwrap()];
        if let Some(f) = friction {
            args.extend(["--friction", f]);
        }
        let o = joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).expect("written");
        let (soft, coulomb, mujoco) = (
            text.matches("contact_soft(").count(),
            text.matches("contact_coulomb(").count(),
            text.matches("contact_mujoco(").count(),
        );
        if friction == Some("mujoco") {
            assert!(
                soft + coulomb == 0 && mujoco > 0,
                "{soft} {coulomb} {mujoco}"
            );
        } else if friction == Some("coulomb") {
            assert!(
                soft == 0 && coulomb > 0,
                "{soft} cone and {coulomb} Coulomb contacts"
            );
        } else {
            assert!(
                soft > 0 && coulomb == 0,
                "{soft} cone and {coulomb} Coulomb contacts"
            );
        }
        let o = joule(&["run", out.to_str().unwrap(), "--steps", "100", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["observe"]["torso_x"][0][2].as_f64().unwrap()
    };
    let (cone, coulomb) = (torso_height(None), torso_height(Some("coulomb")));
    assert_eq!(cone, torso_height(Some("cone")), "the cone is the default");
    assert!(
        (0.58..0.61).contains(&cone),
        "the cone's ant stands at {cone} m"
    );
    assert!(
        (coulomb - cone).abs() < 2e-3,
        "Coulomb's ant at {coulomb} m, the cone's at {cone} m"
    );
    let mujoco = torso_height(Some("mujoco"));
    assert!(
        (mujoco - 0.596_945_476_182_578_4).abs() < 1e-9,
        "MuJoCo's law's ant at {mujoco} m"
    );
    // `use "ant.xml" (friction = mujoco)` imports it the same way.
    let o = joule(&[
        "run",
        "tests/mjcf/ant_mujoco.joule",
        "--steps",
        "100",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["observe"]["height"][0].as_f64(), Some(mujoco));
}

/// `joule import --friction mujoco --surrogate cone` writes MuJoCo's laws
/// forward with the cone's smooth step as the surrogate model: every ground
/// contact `contact_mujoco_cone`, `surrogate = model(kinematics = exact)`;
/// the forward is MuJoCo's (Brax's ant stands where MuJoCo's does, as with
/// `--friction mujoco` alone); without `--friction mujoco` it is refused.
#[test]
fn import_writes_the_cones_surrogate_for_mujocos_laws() {
    let out = temp("ant_mujoco_cone.joule");
    let o = joule(&[
        "import",
        "tests/mjcf/ant.xml",
        "--friction",
        "mujoco",
        "--surrogate",
        "cone",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.contains("surrogate = model(kinematics = exact)"));
    let (cone, plain) = (
        text.matches("contact_mujoco_cone(").count(),
        text.matches("contact_mujoco(").count(),
    );
    assert!(
        cone > 0 && plain == 0,
        "{cone} cone surrogates, {plain} without"
    );
    let o = joule(&["run", out.to_str().unwrap(), "--steps", "100", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let height = v["observe"]["torso_x"][0][2].as_f64().unwrap();
    assert!(
        (height - 0.596_945_476_182_578_4).abs() < 1e-9,
        "the ant stands at {height} m"
    );
    let o = joule(&["import", "tests/mjcf/ant.xml", "--surrogate", "cone"]);
    fails_with_hint(&o, "`--surrogate cone` needs `--friction mujoco`");
}

/// `joule grad SCENE --json` for the pendulum with extra flags.
fn grad_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "grad",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--steps",
        "20",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = joule(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&stdout(&o)).expect("one JSON object")
}

#[test]
fn threads_is_a_flag_of_every_simulating_command() {
    // The same flag, the same meaning: results do not depend on it.
    assert_eq!(
        grad_json(&["--threads", "1"]),
        grad_json(&["--threads", "2"])
    );
    let o = joule(&[
        "optimize",
        "tests/optimize/point_mass.joule",
        "--loss",
        "miss",
        "--wrt",
        "force",
        "--steps",
        "5",
        "--iters",
        "2",
        "--threads",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for command in ["run", "grad", "optimize", "train", "imitate", "repl"] {
        let o = joule(&[command, "--help"]);
        assert!(
            stdout(&o).contains("--threads <N>"),
            "`joule {command}` has no --threads"
        );
    }
}

#[test]
fn inputs_that_are_not_regular_files_are_refused_with_a_hint() {
    // A device (was read without bound), a folder, a FIFO (blocked forever),
    // named on the command line or by `use`.
    let fifo = temp("pipe.joule");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let dir = temp("folder");
    std::fs::create_dir_all(&dir).unwrap();
    for input in [Path::new("/dev/zero"), &dir, &fifo] {
        let o = joule(&["check", input.to_str().unwrap(), "--color", "never"]);
        fails_with_hint(&o, "not a regular file");
        let scene = temp("uses.joule");
        std::fs::write(&scene, format!("use {:?}\n", input.to_str().unwrap())).unwrap();
        let o = joule(&["check", scene.to_str().unwrap(), "--color", "never"]);
        let err = fails_with_hint(&o, "not a regular file");
        assert!(
            err.contains("uses.joule:1:5"),
            "located at the `use`: {err}"
        );
        let o = joule(&["import", input.to_str().unwrap()]);
        fails_with_hint(&o, "not a regular file");
        let o = joule(&["fmt", input.to_str().unwrap()]);
        fails_with_hint(&o, "not a regular file");
        let png = temp("never.png");
        let o = joule(&["plot", input.to_str().unwrap(), "-o", png.to_str().unwrap()]);
        fails_with_hint(&o, "not a regular file");
    }
}

#[test]
fn negative_numbers_are_values() {
    // Rejected before as an unknown flag `-100` (with a wrong `-- -100` tip).
    let policy = temp("negative.safetensors");
    let o = joule(&[
        "train",
        "scenes/cartpole.joule",
        "--reward",
        "height",
        "--target",
        "-1e9",
        "--iters",
        "1",
        "--batch",
        "2",
        "--horizon",
        "4",
        "--episode",
        "4",
        "--out",
        policy.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["target"], -1e9);
    // So does a negative exponent (`-1e-3`, which clap alone reads as a flag
    // `-1`): the flag's own check refuses it.
    let o = joule(&[
        "train",
        "scenes/cartpole.joule",
        "--reward",
        "height",
        "--lr",
        "-1e-3",
    ]);
    let err = fails_with_hint(&o, "`--lr -0.001` must be finite and positive");
    assert!(!err.contains("unexpected argument"), "{err}");
    // A negative count reaches the flag's own parser, which names the flag.
    let o = joule(&["run", "scenes/pendulum.joule", "--steps", "-5"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid value '-5' for '--steps"), "{err}");
    // A parameter whose range is negative takes a negative value.
    let o = joule(&[
        "run",
        "scenes/reacher.joule",
        "--steps",
        "1",
        "--param",
        "target_x=-0.1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn param_overrides_are_checked_like_the_repl_set() {
    for (param, message, hint) in [
        (
            "g=-1",
            "g = -1 is outside its range 0.5..30",
            "param g in 0.5..30",
        ),
        ("g=nan", "`nan` is not a finite number", "finite value"),
        ("g=inf", "`inf` is not a finite number", "finite value"),
        ("g=long", "`long` is not a number", "numbers such as"),
        (
            "gee=1",
            "unknown parameter `gee`",
            "parameters: length, g, stiffness",
        ),
        ("g", "is not NAME=VALUE", "--param NAME=VALUE"),
    ] {
        for command in [
            &["run", "scenes/pendulum.joule", "--steps", "1"][..],
            &[
                "grad",
                "scenes/pendulum.joule",
                "--loss",
                "miss",
                "--steps",
                "1",
            ],
            &[
                "optimize",
                "scenes/pendulum.joule",
                "--loss",
                "miss",
                "--wrt",
                "g",
                "--steps",
                "1",
            ],
        ] {
            let mut args = command.to_vec();
            args.extend(["--param", param]);
            let o = joule(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(message) && err.contains(hint),
                "{args:?}: {err}"
            );
        }
    }
}

/// Runs `joule` with its standard output a pipe whose reading end is closed
/// before anything is written; returns the exit status and standard error.
#[cfg(unix)]
fn with_closed_stdout(args: &[&str], stdin: &str) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    // The read end is closed before the child starts: a child that writes
    // early (its output fits the pipe's buffer) must still meet the closed pipe.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_joule"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the joule binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (child.wait().expect("joule exits"), err)
}

#[test]
#[cfg(unix)]
fn a_closed_standard_output_ends_every_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let plan = temp("pipe-plan.csv");
    for (args, stdin) in [
        (
            &["run", "scenes/pendulum.joule", "--steps", "20", "--json"][..],
            "",
        ),
        (&["run", "scenes/pendulum.joule", "--steps", "20"][..], ""),
        (
            &[
                "grad",
                "scenes/pendulum.joule",
                "--loss",
                "miss",
                "--steps",
                "5",
            ][..],
            "",
        ),
        (
            &[
                "optimize",
                "tests/optimize/point_mass.joule",
                "--loss",
                "miss",
                "--wrt",
                "controls",
                "--steps",
                "5",
                "--iters",
                "2",
                "--out",
                plan.to_str().unwrap(),
                "--json",
            ][..],
            "",
        ),
        (&["check", "scenes/pendulum.joule", "--emit", "ir"][..], ""),
        (&["fmt", "scenes/pendulum.joule", "--stdout"][..], ""),
        (&["repl", "scenes/pendulum.joule"][..], ":info\n:run 3\n"),
    ] {
        let (status, err) = with_closed_stdout(args, stdin);
        // The default action of SIGPIPE, as for any Unix filter (the shell says 141).
        assert_eq!(status.signal(), Some(13), "{args:?}: {status:?}\n{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Files were complete before the pipe mattered.
    let text = std::fs::read_to_string(&plan).expect("plan written");
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn import_of_a_binary_file_names_it_with_a_hint() {
    let xml = temp("binary.xml");
    std::fs::write(&xml, b"<mujoco>\0\0</mujoco>").unwrap();
    let o = joule(&["import", xml.to_str().unwrap()]);
    fails_with_hint(&o, "NUL byte");
}

/// A valid trajectory written to `out` by `joule run`.
fn run_to(out: &Path) -> Output {
    joule(&[
        "run",
        "scenes/pendulum.joule",
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
}

#[test]
fn writes_refuse_non_regular_targets_and_follow_symlinks() {
    // A FIFO (or a device) is not replaced by a regular file.
    let fifo = temp("fifo.csv");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails_with_hint(&run_to(&fifo), "not a regular file");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&kind),
        "still a FIFO"
    );
    let folder = temp("folder.csv");
    std::fs::create_dir_all(&folder).unwrap();
    fails_with_hint(&run_to(&folder), "a folder");
    assert!(folder.is_dir());
    // A symbolic link is written through: the link stays, its target is replaced.
    let real = temp("real.csv");
    std::fs::write(&real, "old").unwrap();
    let link = temp("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = run_to(&link);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .starts_with("step,t,env"));
    // A dangling link and a missing folder: named errors with a hint.
    let dangling = temp("dangling.csv");
    std::os::unix::fs::symlink(temp("no/such/file.csv"), &dangling).unwrap();
    fails_with_hint(&run_to(&dangling), "symbolic link");
    fails_with_hint(&run_to(&temp("no/such/out.csv")), "cannot write");
}

#[test]
fn stale_temporaries_of_killed_writers_are_removed() {
    let out = temp("stale.csv");
    // PIDs above the kernel's maximum (2^22) are never alive.
    let stale = temp(".stale.csv.tmp-999999999");
    std::fs::write(&stale, "half a file").unwrap();
    // Another target's temporary, and a name that is not a PID, stay.
    let other = temp(".other.csv.tmp-999999999");
    std::fs::write(&other, "x").unwrap();
    let odd = temp(".stale.csv.tmp-notapid");
    std::fs::write(&odd, "x").unwrap();
    let o = run_to(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stale.exists(), "the dead writer's temporary is removed");
    assert!(other.exists() && odd.exists());
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".stale.csv.tmp-") && n != ".stale.csv.tmp-notapid"
        })
        .collect();
    assert!(left.is_empty(), "no temporary of ours is left");
}

#[test]
fn import_counts_elements_before_expanding_and_bounds_the_text() {
    // Free bodies make text quadratic in their number (contact pairs), nested
    // ones too (poses along the chain): 2,000 made 180 MB, then "importer bug".
    // Now the bodies, the nesting and the pairs that may touch are counted
    // before anything is written, and the text's size after.
    let free = |n: usize| {
        let bodies: String = (0..n)
            .map(|i| format!("<body pos=\"{i} 0 1\"><freejoint/><geom size=\"0.1\"/></body>\n"))
            .collect();
        format!("<mujoco><worldbody>\n{bodies}</worldbody></mujoco>\n")
    };
    // Few pairs whose contact is long to write: 20 ellipsoids on one body
    // against 20 boxes on another (400 pairs, 13 contacts each).
    let shapes = |kind: &str| -> String {
        (0..20)
            .map(|i| {
                format!(
                    "<geom type=\"{kind}\" size=\"0.1 0.05 0.03\" pos=\"0 0 {}\"/>",
                    0.2 * i as f64
                )
            })
            .collect()
    };
    let eggs_and_boxes = format!(
        "<mujoco><worldbody><body pos=\"0 0 1\"><freejoint/>{}</body><body pos=\"1 0 1\"><freejoint/>{}</body></worldbody></mujoco>\n",
        shapes("ellipsoid"),
        shapes("box")
    );
    let nested = |n: usize| {
        let open = "<body pos=\"0 0 0.1\"><joint/><geom size=\"0.01\"/>\n".repeat(n);
        format!(
            "<mujoco><worldbody>\n{open}{}</worldbody></mujoco>\n",
            "</body>\n".repeat(n)
        )
    };
    for (name, xml, want) in [
        ("free2000.xml", free(2000), "more than 200 bodies"),
        (
            "nested3000.xml",
            nested(3000),
            "more than 100 nested bodies",
        ),
        (
            "free200.xml",
            free(200),
            "19900 pairs of geoms in different bodies may touch",
        ),
        (
            "eggs_and_boxes.xml",
            eggs_and_boxes,
            "the imported scene would be",
        ),
        // On one line (minified): located at the root, which can be drawn.
        (
            "oneline.xml",
            free(2000).replace('\n', ""),
            "more than 200 bodies",
        ),
    ] {
        let path = temp(name);
        std::fs::write(&path, xml).unwrap();
        let out = temp(&format!("{name}.joule"));
        let o = joule(&[
            "import",
            path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let err = fails_with_hint(&o, want);
        assert!(!err.contains("importer bug"), "{err}");
        assert!(!out.exists(), "nothing written");
    }
}

#[test]
fn a_policy_that_does_not_load_is_named_with_a_hint() {
    let weights = temp("not-weights.safetensors");
    std::fs::write(&weights, "garbage").unwrap();
    let o = joule(&[
        "run",
        "scenes/cartpole.joule",
        "--policy",
        weights.to_str().unwrap(),
        "--steps",
        "2",
    ]);
    fails_with_hint(&o, "not a safetensors file");
}

#[test]
fn run_warns_of_outputs_that_are_not_finite() {
    // Printed as `null` in JSON with exit 0 and no word before.
    let scene = temp("nan_output.joule");
    std::fs::write(
        &scene,
        "scene \"nan output\"\n\
         particle p { x = vec3(0, 0, 1)  mass = 1 }\n\
         observe height = p.x.z\n\
         observe bad = sqrt(p.x.z - 2)\n",
    )
    .unwrap();
    let o = joule(&["run", scene.to_str().unwrap(), "--steps", "2", "--json"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: observe `bad` is not finite from step 0 in environment 0"),
        "{err}"
    );
    assert!(!err.contains("`height`"), "{err}");
}

/// `joule run` sums a reward up to the episode's end, as training counts a
/// return: Brax's ant under a random plan falls (its torso leaves the
/// healthy band) and the summed reward is the recorded rewards' sum up to
/// and including that step.
#[test]
fn run_sums_rewards_to_the_episodes_end() {
    let plan = temp("random-ant-plan.csv");
    let mut text = String::from("step");
    for k in 0..8 {
        text += &format!(",u[{k}]");
    }
    let mut x = 0.5f64;
    for s in 0..200 {
        text += &format!("\n{s}");
        for _ in 0..8 {
            x = (x * 3.99 * (1.0 - x)).clamp(1e-6, 1.0 - 1e-6); // logistic map: chaotic, deterministic
            text += &format!(",{}", 2.0 * x - 1.0);
        }
    }
    std::fs::write(&plan, text).unwrap();
    let traj = temp("random-ant.csv");
    let o = joule(&[
        "run",
        "scenes/envs/ant.joule",
        "--steps",
        "200",
        "--controls",
        plan.to_str().unwrap(),
        "--out",
        traj.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let end = v["episode_end"][0]
        .as_u64()
        .expect("the ant falls within 200 steps") as usize;
    let rows = std::fs::read_to_string(&traj).unwrap();
    let mut lines = rows.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (z, total, step) = (col("z"), col("total"), col("step"));
    let (mut sum, mut first_out) = (0.0, None);
    for line in lines {
        let f: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let s = f[step] as usize;
        if s == 0 {
            continue;
        }
        if s <= end {
            sum += f[total];
        }
        if first_out.is_none() && !(0.2..=1.0).contains(&f[z]) {
            first_out = Some(s);
        }
    }
    assert_eq!(
        first_out,
        Some(end),
        "the episode ends where the torso leaves [0.2, 1]"
    );
    let got = v["reward"]["total"][0].as_f64().unwrap();
    assert!(
        (got - sum).abs() < 1e-9 * sum.abs().max(1.0),
        "{got} vs {sum}"
    );
}

/// `run --noise SIGMA --seed S` starts every environment with its
/// velocities jittered as `train` resets episodes: at step 0 the recorded
/// velocities of 256 pucks (a free particle, at rest in the scene: 768
/// samples) have the jitter's mean and standard deviation (within 4.5
/// standard errors), the same seed starts the same batch, another seed
/// another, and without `--noise` every start is the scene's.
#[test]
fn run_noise_starts_each_environment_from_the_reset_distribution() {
    let start_velocities = |extra: &[&str], name: &str| -> Vec<f64> {
        let out = temp(name);
        let mut args = vec![
            "run",
            "tests/learn/reach.joule",
            "--steps",
            "1",
            "--batch",
            "256",
            "--out",
            out.to_str().unwrap(),
            "--state",
            "--quiet",
        ];
        args.extend(extra);
        let o = joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let v = npyz::NpyFile::new(zip.by_name("state.v.npy").expect("state.v")).unwrap();
        let shape = v.shape().to_vec();
        let all: Vec<f64> = v.into_vec().unwrap();
        all[..(shape[1] * shape[2]) as usize].to_vec()
    };
    let v = start_velocities(&["--noise", "0.5", "--seed", "7"], "noise-a.npz");
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert_eq!(v.len(), 256 * 3, "one particle's velocity per environment");
    assert!(
        mean.abs() < 0.08 && (std - 0.5).abs() < 0.06,
        "mean {mean}, std {std}"
    );
    assert_eq!(
        v,
        start_velocities(&["--noise", "0.5", "--seed", "7"], "noise-b.npz")
    );
    assert_ne!(
        v,
        start_velocities(&["--noise", "0.5", "--seed", "8"], "noise-c.npz")
    );
    assert!(start_velocities(&[], "noise-d.npz")
        .iter()
        .all(|&x| x == 0.0));
}
