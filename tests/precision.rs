//! `precision = f32`: f32x4 kernels over an f32 state, with the integrator's
//! solves, reductions and adjoint accumulators in f64. Checked against a
//! closed form, the f64 simulation, the interpreter, the thread split, and
//! central differences of the f64 rollout.

use joule_compiler::compiled::Backend;
use joule_compiler::model::ObjectiveKind;
use joule_compiler::model::{Integrator, Precision};
use joule_runtime::{Objective, Scene};
use std::path::Path;

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::shipped;
#[macro_use]
#[path = "common/scene_list.rs"]
mod scene_list;

/// A scene file compiled at `precision` (Newton's tolerance tightened to
/// `tolerance`, if given).
fn at(path: &str, precision: Precision, backend: Backend, tolerance: Option<f64>) -> Scene {
    let checked = joule::check_path(Path::new(path)).expect("readable");
    let mut m = checked.model.expect("a model");
    m.settings.precision = precision;
    if let (
        Some(tol),
        Integrator::ImplicitEuler {
            iterations,
            kinematics,
            ..
        },
    ) = (tolerance, &m.settings.integrator)
    {
        m.settings.integrator = Integrator::ImplicitEuler {
            iterations: (*iterations).max(60),
            tolerance: tol,
            kinematics: *kinematics,
        };
    }
    Scene::from_model(m, backend).unwrap_or_else(|e| panic!("{e}"))
}

fn f32_scene(path: &str) -> Scene {
    at(path, Precision::F32, Backend::Jit, None)
}

/// Whether every value is an f32 (the state is held in single precision).
fn all_f32(v: &[f64]) -> bool {
    v.iter().all(|x| (*x as f32) as f64 == *x)
}

#[test]
fn f32_projectile_matches_the_closed_form_to_single_precision() {
    let s = f32_scene("tests/physics/projectile.joule");
    let mut sim = s.batch(3);
    let (h, g) = (0.01, [0.0, 0.0, -9.81]);
    let (x0, v0) = ([0.0, 0.0, 1.0], [3.0, 1.0, 4.0]);
    let mut worst = 0.0f64;
    for n in 1..=200usize {
        sim.step();
        let (x, v) = (sim.positions(2), sim.velocities(2));
        assert!(all_f32(&x) && all_f32(&v), "step {n}: the state is f32");
        let nf = n as f64;
        for k in 0..3 {
            let v_want = v0[k] + nf * h * g[k];
            let x_want = x0[k] + nf * h * v0[k] + h * h * g[k] * nf * (nf + 1.0) / 2.0;
            // Each step rounds v and x to f32 once (half an ulp, 2^-24
            // relative): v's error grows like n, x's like the sum of v's
            // errors times h plus its own roundings.
            let u = f32::EPSILON as f64 / 2.0;
            let vmax = v0[k].abs() + nf * h * g[k].abs();
            let xmax = x0[k].abs() + nf * h * vmax;
            let v_bound = nf * u * vmax;
            let x_bound = nf * u * xmax + h * nf * v_bound;
            assert!(
                (v[k] - v_want).abs() <= v_bound,
                "step {n}: v {} vs {v_want}",
                v[k]
            );
            assert!(
                (x[k] - x_want).abs() <= x_bound,
                "step {n}: x {} vs {x_want}",
                x[k]
            );
            worst = worst.max((x[k] - x_want).abs());
        }
    }
    // Rounding is visible: the state is not silently simulated in f64.
    assert!(worst > 1e-9, "error {worst} is below f32's resolution");
}

/// Every position of `batch` environments after `steps` steps, with
/// parameters varied per environment so that lanes differ.
fn rollout(scene: &Scene, batch: usize, threads: usize, steps: usize) -> Vec<Vec<f64>> {
    let mut sim = scene.batch_threads(batch, threads);
    for p in &scene.model().params {
        for e in 0..batch {
            sim.set_param_env(&p.name, e, p.value * (1.0 + 0.01 * e as f64))
                .expect("param");
        }
    }
    sim.rollout(steps);
    assert!(
        sim.events.is_empty(),
        "{:?}: {:?}",
        scene.model().title,
        sim.events
    );
    (0..batch).map(|e| sim.positions(e)).collect()
}

/// An f32 rollout of a scene stays within 1e-3 (relative) of the f64 one over 25 steps.
fn f32_rollouts_follow_f64(path: &Path) {
    let name = path.display().to_string();
    let wide = at(&name, Precision::F64, Backend::Jit, None);
    let narrow = f32_scene(&name);
    let (a, b) = (rollout(&wide, 3, 1, 25), rollout(&narrow, 3, 1, 25));
    let mut worst = 0.0f64;
    for (x64, x32) in a.iter().zip(&b) {
        assert!(all_f32(x32), "{name}: the state is f32");
        for (p, q) in x64.iter().zip(x32) {
            worst = worst.max((p - q).abs() / (1.0 + p.abs()));
        }
    }
    println!("{name}: largest difference {worst:e}");
    assert!(worst < 1e-3, "{name}: f32 departs from f64 by {worst:e}");
}

#[test]
fn f32_jit_and_interpreter_rollouts_are_identical() {
    for path in [
        "tests/physics/stiff_chain.joule",
        "tests/physics/pendulum.joule",
    ] {
        let jit = f32_scene(path);
        let interp = at(path, Precision::F32, Backend::Interp, None);
        assert_eq!(
            rollout(&jit, 5, 1, 20),
            rollout(&interp, 5, 1, 20),
            "{path}"
        );
    }
}

#[test]
fn f32_results_are_identical_for_any_thread_count_and_batch_split() {
    // 13 environments are four f32x4 vectors: 1, 2 and 3 partitions.
    let s = f32_scene("tests/physics/stiff_chain.joule");
    let runs: Vec<_> = [1, 2, 3].iter().map(|&t| rollout(&s, 13, t, 30)).collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}

#[test]
fn constants_f32_cannot_hold_are_reported() {
    let src = "settings { precision = f32 }\n\
               particle p { x = vec3(0, 0, 1), mass = 1 }\n\
               energy e(a: particle) = 1e-50 * dot(a.x, a.x) + 2 * a.x.z\n\
               e(p)\n";
    let scene = Scene::compile(src).expect("compiles");
    assert_eq!(scene.warnings().len(), 1, "{:?}", scene.warnings());
    assert_eq!(scene.warnings()[0].code, "joule::f32_constant");
    assert!(
        scene.warnings()[0].message.contains("1e-50"),
        "{:?}",
        scene.warnings()
    );
    // The same constants are fine in f64 (and the shipped scenes' in f32:
    // `shipped_constants_fit_f32`).
    let wide = Scene::compile(&src.replace("f32", "f64")).expect("compiles");
    assert!(wide.warnings().is_empty());
    // The CLI prints them.
    let file = common::temp("tiny_constant.joule");
    std::fs::write(&file, src).expect("write");
    let out = common::joule(&["run", file.to_str().expect("utf-8"), "--steps", "1"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning:") && err.contains("1e-50"), "{err}");
}

/// The f32 gradients of a scene's first loss and reward are finite. (A constant
/// that underflows in f32, a guard of 1e-300 in the prelude's quaternion
/// extraction, turned the ant's gradients into NaN.)
fn f32_gradients_are_finite(path: &Path) {
    let name = path.display().to_string();
    let scene = f32_scene(&name);
    let m = scene.model();
    let first = |k: ObjectiveKind| {
        m.objectives
            .iter()
            .find(|o| o.kind == k)
            .map(|o| o.name.clone())
    };
    let obj = Objective {
        loss: first(ObjectiveKind::Loss),
        reward: first(ObjectiveKind::Reward),
        track: None,
    };
    let mut sim = scene.batch_threads(2, 1);
    let g = sim.gradient(&obj, 8).expect("gradient");
    let finite = |rows: &[Vec<f64>]| rows.iter().flatten().all(|x| x.is_finite());
    assert!(finite(&g.params), "{name}: {:?}", g.params);
    assert!(finite(&g.x0) && finite(&g.v0), "{name}: initial state");
    assert!(g.controls.iter().all(|c| finite(c)), "{name}: controls");
}

#[test]
fn f32_gradients_match_central_differences_of_the_f64_rollout() {
    for (path, steps) in [
        ("scenes/spring_chain.joule", 30),
        ("scenes/pendulum.joule", 60),
        ("tests/physics/stiff_chain.joule", 20),
    ] {
        let narrow = at(path, Precision::F32, Backend::Jit, Some(1e-15));
        let wide = at(path, Precision::F64, Backend::Jit, Some(1e-15));
        let loss = narrow
            .model()
            .objectives
            .iter()
            .find(|o| o.kind == ObjectiveKind::Loss)
            .expect("a loss");
        let obj = Objective::loss(&loss.name);
        let mut sim = narrow.batch_threads(1, 1);
        let g = sim.gradient(&obj, steps).expect("gradient");
        assert!(sim.events.is_empty(), "{path}: {:?}", sim.events);
        let value = |name: &str, d: f64| {
            let mut sim = wide.batch_threads(1, 1);
            let p = sim.param(name, 0).expect("param");
            sim.set_param(name, p + d).expect("param");
            sim.rollout(steps);
            sim.output(obj.loss.as_deref().expect("a loss"))[0][0]
        };
        let scale = g.params.iter().map(|p| p[0].abs()).fold(0.0, f64::max);
        for (i, p) in wide.model().params.iter().enumerate() {
            let h = 1e-5 * p.value.abs().max(1e-3);
            let fd = (value(&p.name, h) - value(&p.name, -h)) / (2.0 * h);
            // The f32 trajectory is the f64 one perturbed by rounding
            // (~1e-5 relative, see above); its sensitivities move by up to
            // ~1e-3 of the largest (measured: 1.4e-3 for the chain's damping
            // over 30 implicit steps, 1e-5 to 3e-4 for the others).
            assert!(
                (g.params[i][0] - fd).abs() <= 5e-3 * scale,
                "{path} d/d{}: f32 adjoint {:e} vs f64 differences {fd:e}",
                p.name,
                g.params[i][0]
            );
        }
    }
}

/// A scene's constants survive rounding to f32 (no warning).
fn shipped_constants_fit_f32(path: &Path) {
    let name = path.display().to_string();
    assert!(f32_scene(&name).warnings().is_empty(), "{name}");
}

macro_rules! per_scene {
    ($($scene:ident)*) => {
        /// [`f32_rollouts_follow_f64`] on each shipped scene.
        mod f32_rollouts_follow_f64 {
            $(
                #[test]
                fn $scene() {
                    super::f32_rollouts_follow_f64(&super::shipped(stringify!($scene)));
                }
            )*
        }
        /// [`shipped_constants_fit_f32`] on each shipped scene.
        mod shipped_constants_fit_f32 {
            $(
                #[test]
                fn $scene() {
                    super::shipped_constants_fit_f32(&super::shipped(stringify!($scene)));
                }
            )*
        }
        /// [`f32_gradients_are_finite`] on each shipped scene.
        mod f32_gradients_are_finite {
            $(
                #[test]
                fn $scene() {
                    super::f32_gradients_are_finite(&super::shipped(stringify!($scene)));
                }
            )*
        }
    };
}
shipped_scenes!(per_scene);
