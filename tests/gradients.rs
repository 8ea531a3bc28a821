//! Gradients through time against central finite differences of full
//! rollouts, on every shipped scene (explicit and implicit), for params,
//! controls at a given step and the initial state.

use joule_compiler::compiled::Backend;
use joule_compiler::model::{Integrator, Model};
use joule_runtime::{Gradient, Objective, Scene, Sim};
use std::path::Path;

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::shipped;
#[macro_use]
#[path = "common/scene_list.rs"]
mod scene_list;

/// The scene with a tight Newton tolerance (finite differences of a loosely
/// converged solve measure the solver, not the physics) and, unless
/// `surrogates`, without `backward =` clauses (a surrogate gradient is by design
/// not the derivative of the forward model).
fn model(path: &Path, surrogates: bool) -> Model {
    let checked = joule::check_path(path).expect("readable");
    let mut m = checked.model.expect("a model");
    if let Integrator::ImplicitEuler {
        iterations,
        kinematics,
        ..
    } = m.settings.integrator
    {
        m.settings.integrator = Integrator::ImplicitEuler {
            iterations: iterations.max(60),
            tolerance: 1e-15,
            kinematics,
        };
    }
    if !surrogates {
        for t in &mut m.templates {
            t.backward = None;
        }
    }
    m
}

fn objective(m: &Model) -> Objective {
    use joule_compiler::model::ObjectiveKind;
    let first = |k: ObjectiveKind| {
        m.objectives
            .iter()
            .find(|o| o.kind == k)
            .map(|o| o.name.clone())
    };
    Objective {
        loss: first(ObjectiveKind::Loss),
        reward: first(ObjectiveKind::Reward),
        track: None,
    }
}

/// The objective of a rollout from the scene's initial state.
fn rollout_value(
    scene: &Scene,
    obj: &Objective,
    steps: usize,
    setup: &dyn Fn(&mut Sim),
    at_step: &dyn Fn(&mut Sim, usize),
) -> f64 {
    let mut sim = scene.batch_threads(1, 1);
    setup(&mut sim);
    let mut total = 0.0;
    for t in 0..steps {
        at_step(&mut sim, t);
        sim.step();
        if let Some(r) = &obj.reward {
            total += sim.output(r)[0][0];
        }
    }
    if let Some(l) = &obj.loss {
        total += sim.output(l)[0][0];
    }
    total
}

fn check(what: &str, analytic: f64, plus: f64, minus: f64, h: f64, scale: f64) {
    let fd = (plus - minus) / (2.0 * h);
    // Truncation and solver error (relative 1e-4 of the gradient's scale) plus
    // rounding in the objective divided by the step.
    let tol = 1e-4 * scale + 1e-13 * (plus.abs() + minus.abs()) / h + 1e-10;
    assert!(
        (fd - analytic).abs() <= tol,
        "{what}: adjoint {analytic:e} vs finite difference {fd:e} (tolerance {tol:e})"
    );
}

/// Steps a scene runs before its gradient is checked: 0, except for MuJoCo's
/// hopper and walker2d, which start with thighs and legs exactly on the end
/// of their (soft) ranges, where each limit's damper switches on. There the
/// objective has a kink in several coordinates at once (as in MuJoCo), so
/// neither central nor one-sided differences are a derivative to compare
/// with; 100 steps (0.2 s) later the limits are off the corner.
fn warmup(path: &Path) -> usize {
    match path.file_stem().and_then(|s| s.to_str()) {
        Some("hopper" | "walker2d") => 100,
        // The ball falls 40 steps before its string is taut.
        Some("spatial_tendon") => 40,
        // The block lands on the table, the rod and ball on the bar, by step 150.
        Some("box_on_box" | "capsule_cross") => 150,
        // The cheetah lands on its feet and moves its joints.
        Some("mujoco_euler_cheetah") => 30,
        _ => 0,
    }
}

fn gradient_check(path: &Path, steps: usize) {
    let name = path.display().to_string();
    let m = model(path, false);
    let obj = objective(&m);
    assert!(
        obj.loss.is_some() || obj.reward.is_some(),
        "{name} has an objective"
    );
    let scene = Scene::from_model(m, Backend::Jit).expect("compile");
    // The state the check starts from (the initial state, or `warmup` steps on).
    let mut warm = scene.batch_threads(1, 1);
    warm.rollout(warmup(path));
    let (x0, v0) = (warm.positions(0), warm.velocities(0));
    let start = |s: &mut Sim| s.set_state(0, &x0, &v0);
    let mut sim = scene.batch_threads(1, 1);
    start(&mut sim);
    let g: Gradient = sim.gradient(&obj, steps).expect("gradient");
    assert!(sim.events.is_empty(), "{name}: {:?}", sim.events);
    let base = rollout_value(&scene, &obj, steps, &start, &|_, _| {});
    assert!(
        (g.value[0] - base).abs() <= 1e-12 * base.abs().max(1.0),
        "{name}: value {} vs rollout {base}",
        g.value[0]
    );

    // Parameters.
    let params = &scene.model().params;
    let scale = g.params.iter().map(|p| p[0].abs()).fold(0.0, f64::max);
    for (i, p) in params.iter().enumerate() {
        // Well above the solver's round-off; central differences keep truncation O(h^2).
        let h = 1e-4 * p.value.abs().max(1e-3);
        let f = |d: f64| {
            rollout_value(
                &scene,
                &obj,
                steps,
                &|s| {
                    start(s);
                    s.set_param(&p.name, p.value + d).expect("param")
                },
                &|_, _| {},
            )
        };
        check(
            &format!("{name} d/d{} over {steps} steps", p.name),
            g.params[i][0],
            f(h),
            f(-h),
            h,
            scale,
        );
    }

    // Controls at the first and the last step.
    let nc = scene.model().controls.len();
    for t in [0, steps - 1] {
        let scale = g.controls[t].iter().map(|c| c[0].abs()).fold(0.0, f64::max);
        for c in 0..nc.min(3) {
            let h = 1e-6;
            let f = |d: f64| {
                rollout_value(&scene, &obj, steps, &start, &|s, step| {
                    s.set_control(c, 0, if step == t { d } else { 0.0 })
                })
            };
            check(
                &format!("{name} d/du[{c}] at step {t}"),
                g.controls[t][c][0],
                f(h),
                f(-h),
                h,
                scale,
            );
        }
    }

    // Initial state: a few positions and velocities.
    let n = scene.dofs();
    let rows: Vec<usize> = (0..4).map(|k| k * (n - 1) / 3).collect();
    let sx = g.x0.iter().map(|r| r[0].abs()).fold(0.0, f64::max);
    let sv = g.v0.iter().map(|r| r[0].abs()).fold(0.0, f64::max);
    for &r in &rows {
        let h = 1e-6;
        let fx = |d: f64| {
            rollout_value(
                &scene,
                &obj,
                steps,
                &|s| {
                    let mut x = x0.clone();
                    x[r] += d;
                    s.set_state(0, &x, &v0);
                },
                &|_, _| {},
            )
        };
        check(
            &format!("{name} d/dx0[{r}]"),
            g.x0[r][0],
            fx(h),
            fx(-h),
            h,
            sx,
        );
        let fv = |d: f64| {
            rollout_value(
                &scene,
                &obj,
                steps,
                &|s| {
                    let mut v = v0.clone();
                    v[r] += d;
                    s.set_state(0, &x0, &v);
                },
                &|_, _| {},
            )
        };
        check(
            &format!("{name} d/dv0[{r}]"),
            g.v0[r][0],
            fv(h),
            fv(-h),
            h,
            sv,
        );
    }
}

macro_rules! per_scene {
    ($($scene:ident)*) => {
        /// [`gradient_check`] over 1 and 4 steps, on each shipped scene.
        mod adjoint_matches_finite_differences {
            $(
                #[test]
                fn $scene() {
                    for steps in [1, 4] {
                        super::gradient_check(&super::shipped(stringify!($scene)), steps);
                    }
                }
            )*
        }
    };
}
shipped_scenes!(per_scene);

#[test]
fn adjoint_over_a_long_explicit_horizon() {
    gradient_check(Path::new("scenes/pendulum.joule"), 200);
}

#[test]
fn adjoint_over_a_long_implicit_horizon() {
    gradient_check(Path::new("scenes/double_pendulum.joule"), 60);
}

#[test]
fn recorded_and_checkpointed_gradients_are_identical() {
    // The reverse pass takes the states the forward pass recorded (within
    // the memory budget) or recomputes them from checkpoints (no budget):
    // the same states, so the same gradients bit for bit.
    for (name, steps, subs) in [
        ("scenes/pendulum.joule", 50, 3),
        ("scenes/soft_walker.joule", 12, 1),
        ("scenes/cartpole.joule", 20, 2),
    ] {
        let mut m = model(Path::new(name), true);
        m.settings.substeps = subs;
        let obj = objective(&m);
        let scene = Scene::from_model(m, Backend::Jit).expect("compile");
        let run = |memory: usize| {
            let mut sim = scene.batch_threads(3, 2);
            sim.set_gradient_memory(memory);
            sim.gradient(&obj, steps).expect("gradient")
        };
        let (kept, recomputed) = (run(usize::MAX), run(0));
        assert_eq!(kept.checkpoint_every, steps, "{name}: every state kept");
        assert_eq!(
            recomputed.checkpoint_every,
            (steps as f64).sqrt().ceil() as usize,
            "{name}: checkpoints"
        );
        // Three environments fill two partitions of two f64 lanes: four lanes recorded.
        assert_eq!(
            kept.bytes_per_env_step,
            (16 * scene.dofs() * subs as usize * 4).div_ceil(3),
            "{name}"
        );
        assert_eq!(kept.value, recomputed.value, "{name}");
        assert_eq!(kept.params, recomputed.params, "{name}");
        assert_eq!(kept.controls, recomputed.controls, "{name}");
        assert_eq!(kept.x0, recomputed.x0, "{name}");
        assert_eq!(kept.v0, recomputed.v0, "{name}");
    }
}

#[test]
fn the_gradient_memory_budget_counts_what_is_recorded() {
    // One environment still records a whole f64x2 vector of states: 32 n bytes
    // per step, not the 16 n of its own lane (the budget let a rollout use
    // twice what it allowed, and the documented figure was half the real one).
    let m = model(Path::new("scenes/spring_chain.joule"), true);
    let obj = objective(&m);
    let scene = Scene::from_model(m, Backend::Jit).expect("compile");
    let steps = 10;
    let per_step = 32 * scene.dofs();
    let run = |memory: usize| {
        let mut sim = scene.batch_threads(1, 1);
        sim.set_gradient_memory(memory);
        sim.gradient(&obj, steps).expect("gradient")
    };
    let fits = run(per_step * steps);
    assert_eq!(fits.bytes_per_env_step, per_step);
    assert_eq!(fits.checkpoint_every, steps, "the budget holds every state");
    let short = run(per_step * steps - 1);
    assert!(
        short.checkpoint_every < steps,
        "one byte short: checkpoints"
    );
}

#[test]
fn surrogate_gradients_differ_from_exact_ones_where_declared() {
    // This scene's contact has a `backward =` clause: its gradients follow the
    // surrogate, so they differ from the exact adjoint of the same trajectory.
    let name = "scenes/quadruped_surrogate.joule";
    let path = Path::new(name);
    let obj = objective(&model(path, true));
    let grads: Vec<Gradient> = [true, false]
        .iter()
        .map(|&s| {
            let scene = Scene::from_model(model(path, s), Backend::Jit).expect("compile");
            let mut sim = scene.batch(1);
            sim.gradient(&obj, 30).expect("gradient")
        })
        .collect();
    assert_eq!(
        grads[0].value, grads[1].value,
        "{name}: same forward trajectory"
    );
    assert!(
        grads
            .iter()
            .all(|g| g.params.iter().all(|p| p[0].is_finite())),
        "{name}"
    );
    assert_ne!(
        grads[0].params, grads[1].params,
        "{name}: different gradients"
    );
}

/// A deterministic, varied control schedule `[step][control][env]` for one environment.
fn schedule(steps: usize, controls: usize) -> Vec<Vec<Vec<f64>>> {
    (0..steps)
        .map(|t| {
            (0..controls)
                .map(|c| vec![0.8 * ((1.7 * t as f64 + 0.9 * c as f64).sin())])
                .collect()
        })
        .collect()
}

#[test]
fn control_schedules_differentiate_step_by_step() {
    // Reacher: explicit arm with two motors; cartpole: a pushed cart.
    for file in ["scenes/reacher.joule", "scenes/cartpole.joule"] {
        let m = model(Path::new(file), false);
        let obj = objective(&m);
        let scene = Scene::from_model(m, Backend::Jit).expect("compile");
        let nc = scene.model().controls.len();
        let steps = 12;
        let sch = schedule(steps, nc);
        let g = scene
            .batch_threads(1, 1)
            .gradient_schedule(&obj, &sch)
            .expect("gradient");
        let apply = |sch: &Vec<Vec<Vec<f64>>>| {
            let sch = sch.clone();
            move |s: &mut Sim, t: usize| {
                for (c, v) in sch[t].iter().enumerate() {
                    s.set_control(c, 0, v[0]);
                }
            }
        };
        let base = rollout_value(&scene, &obj, steps, &|_| {}, &apply(&sch));
        assert!((g.value[0] - base).abs() <= 1e-12 * base.abs().max(1.0));
        for t in [0, 5, steps - 1] {
            let scale = g.controls[t].iter().map(|c| c[0].abs()).fold(0.0, f64::max);
            for c in 0..nc {
                let h = 1e-6;
                let f = |d: f64| {
                    let mut s = sch.clone();
                    s[t][c][0] += d;
                    rollout_value(&scene, &obj, steps, &|_| {}, &apply(&s))
                };
                check(
                    &format!("{file} d/du[{c}] at step {t}"),
                    g.controls[t][c][0],
                    f(h),
                    f(-h),
                    h,
                    scale,
                );
            }
        }
    }
}

/// An output after each of `steps` steps from the initial state with one
/// parameter changed, `[step][component][env 0]`.
fn record_output(
    scene: &Scene,
    param: &str,
    value: f64,
    output: &str,
    steps: usize,
) -> Vec<Vec<Vec<f64>>> {
    let mut sim = scene.batch_threads(1, 1);
    sim.set_param(param, value).expect("param");
    (0..steps)
        .map(|_| {
            sim.step();
            sim.output(output)
        })
        .collect()
}

#[test]
fn tracking_a_recorded_trajectory_differentiates_like_its_sum_of_squares() {
    // Record the spring chain's tip at one stiffness, then match it at another.
    let path = Path::new("scenes/spring_chain.joule");
    let scene = Scene::from_model(model(path, false), Backend::Jit).expect("compile");
    let p = &scene.model().params[0];
    let steps = 30;
    let output = scene.compiled.layout().outputs[0].name.clone();
    let record = |value: f64| record_output(&scene, &p.name, value, &output, steps);
    let targets = record(p.value * 1.3);
    let obj = Objective::track(&output, targets.clone());
    let g = scene
        .batch_threads(1, 1)
        .gradient(&obj, steps)
        .expect("gradient");
    // The value is the sum of squared differences, computed here independently.
    let value = |v: f64| -> f64 {
        let run = record(v);
        run.iter()
            .zip(&targets)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x[0] - y[0]).powi(2)))
            .sum()
    };
    assert!((g.value[0] - value(p.value)).abs() <= 1e-12 * g.value[0].max(1.0));
    assert!(g.value[0] > 0.0);
    let h = 1e-4 * p.value.abs();
    check(
        &format!("track d/d{}", p.name),
        g.params[0][0],
        value(p.value + h),
        value(p.value - h),
        h,
        g.params[0][0].abs(),
    );
    // At the recording's parameter the objective and its gradient vanish.
    let mut sim = scene.batch_threads(1, 1);
    sim.set_param(&p.name, p.value * 1.3).expect("param");
    let g = sim.gradient(&obj, steps).expect("gradient");
    assert_eq!(g.value[0], 0.0);
    assert_eq!(g.params[0][0], 0.0);
}

/// The bidirectional Chamfer distance of two trajectories of points, written
/// out directly (environment 0).
fn chamfer_distance(a: &[Vec<Vec<f64>>], b: &[Vec<Vec<f64>>]) -> f64 {
    let d = |x: &Vec<Vec<f64>>, y: &Vec<Vec<f64>>| -> f64 {
        x.iter().zip(y).map(|(p, q)| (p[0] - q[0]).powi(2)).sum()
    };
    let one_way = |from: &[Vec<Vec<f64>>], to: &[Vec<Vec<f64>>]| -> f64 {
        from.iter()
            .map(|x| to.iter().map(|y| d(x, y)).fold(f64::INFINITY, f64::min))
            .sum::<f64>()
            / from.len() as f64
    };
    one_way(a, b) + one_way(b, a)
}

#[test]
fn chamfer_imitation_loss_and_its_gradient() {
    // An expert demonstration of a different length, at another stiffness.
    let path = Path::new("scenes/spring_chain.joule");
    let scene = Scene::from_model(model(path, false), Backend::Jit).expect("compile");
    let p = &scene.model().params[0];
    let output = scene.compiled.layout().outputs[0].name.clone();
    let record = |value: f64, steps: usize| record_output(&scene, &p.name, value, &output, steps);
    let expert = record(p.value * 1.4, 23);
    let steps = 30;
    let obj = Objective::chamfer(&output, expert.clone());
    let g = scene
        .batch_threads(1, 1)
        .gradient(&obj, steps)
        .expect("gradient");
    let value = |v: f64| chamfer_distance(&record(v, steps), &expert);
    assert!((g.value[0] - value(p.value)).abs() <= 1e-12 * g.value[0].max(1e-300));
    assert!(g.value[0] > 0.0);
    let h = 1e-5 * p.value.abs();
    check(
        &format!("chamfer d/d{}", p.name),
        g.params[0][0],
        value(p.value + h),
        value(p.value - h),
        h,
        g.params[0][0].abs(),
    );
    // Imitating itself: zero distance, zero gradient.
    let own = Objective::chamfer(&output, record(p.value, steps));
    let g = scene
        .batch_threads(1, 1)
        .gradient(&own, steps)
        .expect("gradient");
    assert_eq!(g.value[0], 0.0);
    assert_eq!(g.params[0][0], 0.0);
}

/// A tape on which the state is changed between two steps (an environment
/// reset): the first step's adjoint is taken where that step ended, not at
/// the state the second step started from. Checked against central
/// differences of the output after the first step.
#[test]
fn a_tape_differentiates_each_step_where_it_ended() {
    let scene =
        Scene::compile(&std::fs::read_to_string("tests/physics/stiff_chain.joule").unwrap())
            .expect("test scene");
    let layout = scene.compiled.layout();
    let tip = layout.output("tip").expect("the chain observes its tip");
    let (row, rows) = (tip.offset + 2, layout.output_rows());
    let mut sim = scene.batch(1);
    let (x0, v0) = (sim.positions(0), sim.velocities(0));
    let tip_z_after_one_step = |x: &[f64]| {
        let mut s = scene.batch(1);
        s.set_state(0, x, &v0);
        s.step();
        s.output("tip")[2][0]
    };
    let mut tape = sim.tape();
    sim.step_taped(&mut tape);
    // A reset: the second step starts somewhere else.
    let moved: Vec<f64> = x0.iter().map(|x| x + 0.05).collect();
    sim.set_state(0, &moved, &v0);
    sim.step_taped(&mut tape);
    sim.seed_outputs(&mut tape, &vec![vec![0.0]; rows]).unwrap();
    sim.reverse_step(&mut tape);
    let mut seed = vec![vec![0.0]; rows];
    seed[row][0] = 1.0;
    sim.seed_outputs(&mut tape, &seed).unwrap();
    sim.reverse_step(&mut tape);
    let g = sim.tape_gradient(&tape);
    let h = 1e-6;
    let mut checked = 0;
    for (j, gj) in g.x0.iter().enumerate() {
        let (mut plus, mut minus) = (x0.clone(), x0.clone());
        plus[j] += h;
        minus[j] -= h;
        let (p, m) = (tip_z_after_one_step(&plus), tip_z_after_one_step(&minus));
        check(&format!("d tip.z / d x0[{j}]"), gj[0], p, m, h, 1.0);
        checked += usize::from(gj[0].abs() > 1e-6);
    }
    assert!(checked > 0, "the tip depends on the start");
}

/// The step chooser of `joule grad --check` on functions with known
/// derivatives: a sharply curved one (large steps truncate), one with a kink
/// near the point (steps that straddle it are wrong), and one with a noise
/// floor (small steps round).
mod step_chooser {
    use joule::fdcheck::{log_steps, relative_error, sweep};
    use std::convert::Infallible;

    fn ok(f: impl Fn(f64) -> f64) -> impl FnMut(f64) -> Result<f64, Infallible> {
        move |d| Ok(f(d))
    }

    #[test]
    fn a_sharply_curved_function_gets_a_small_step() {
        let x: f64 = 0.3;
        let exact = 50.0 * (50.0 * x).cos();
        let steps = log_steps(x, 1, 9);
        let s = sweep(ok(|d| (50.0 * (x + d)).sin()), &steps, f64::EPSILON, 1e-4).unwrap();
        let d = s.chosen().expect("a choice");
        // The largest steps are far off; the chosen one is accurate and its
        // error is within the estimates.
        assert!(relative_error(s.differences[0].value, exact) > 0.1);
        assert!(relative_error(d.value, exact) < 1e-8, "{s:?}");
        assert!(
            (d.value - exact).abs() < 10.0 * (s.truncation + s.rounding),
            "{s:?}"
        );
        assert!(d.step < 1e-3 && d.step > 1e-9, "{s:?}");
        assert_eq!(s.kink, None, "a smooth function: {s:?}");
    }

    #[test]
    fn a_kink_at_the_point_is_reported_with_its_one_sided_slopes() {
        let x = 0.3;
        // f = |x - 0.3| + x^2 at x = 0.3: slopes 1 + 2x from above and
        // -1 + 2x from below. Every central difference is 2x, perfectly
        // converged, and no derivative exists.
        let f = |jump: f64| move |d: f64| jump * ((x + d) - 0.3).abs() + (x + d) * (x + d);
        let steps = log_steps(x, 1, 9);
        let s = sweep(ok(f(1.0)), &steps, f64::EPSILON, 1e-4).unwrap();
        let d = s.chosen().expect("a choice");
        assert!(relative_error(d.value, 2.0 * x) < 1e-9, "{s:?}");
        let kink = s.kink.expect("a kink");
        assert!((kink.above - (1.0 + 2.0 * x)).abs() < 2.0 * d.step, "{s:?}");
        assert!(
            (kink.below - (-1.0 + 2.0 * x)).abs() < 2.0 * d.step,
            "{s:?}"
        );
        // At every step of the sweep.
        assert_eq!(kink.steps, (steps[0], steps[steps.len() - 1]), "{s:?}");
        // A jump in slope below the tolerance (3e-6 of the slope) is no
        // kink to a check that asks for 1e-4.
        let s = sweep(ok(f(1e-6)), &steps, f64::EPSILON, 1e-4).unwrap();
        assert_eq!(s.kink, None, "{s:?}");
    }

    #[test]
    fn a_rough_function_is_not_a_kink() {
        // Roughness at every scale (as an f32 rollout through contact): an
        // offset d adds 0.05 |d| u(d) with u a fixed pseudo-random value in
        // [-1, 1), so the one-sided slopes differ by about 0.05 at every
        // step but change from step to step; a kink keeps them.
        let x: f64 = 0.7;
        let rough = |d: f64| {
            let bits = (d.to_bits() ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let u = 2.0 * ((bits >> 11) as f64 / (1u64 << 53) as f64) - 1.0;
            (x + d) * (x + d) + 0.05 * d.abs() * u
        };
        let steps = log_steps(x, 1, 9);
        let s = sweep(ok(rough), &steps, f64::EPSILON, 1e-4).unwrap();
        let gaps = s
            .differences
            .iter()
            .filter(|d| (d.above - d.below).abs() > 1e-3)
            .count();
        assert!(gaps >= 5, "the slopes part at most steps: {s:?}");
        assert_eq!(s.kink, None, "{s:?}");
    }

    #[test]
    fn a_kink_near_the_point_is_stepped_over_only_by_small_steps() {
        let (x, kink) = (0.3, 0.30001);
        // f = |x - kink| + x^2: left of the kink, f' = -1 + 2x.
        let exact = -1.0 + 2.0 * x;
        let steps = log_steps(x, 1, 9);
        let s = sweep(
            ok(|d| ((x + d) - kink).abs() + (x + d) * (x + d)),
            &steps,
            f64::EPSILON,
            1e-4,
        )
        .unwrap();
        let d = s.chosen().expect("a choice");
        assert!(d.step < 1e-5, "a step across the kink: {s:?}");
        assert_eq!(s.kink, None, "the kink is not at the point: {s:?}");
        assert!(relative_error(d.value, exact) < 1e-8, "{s:?}");
    }

    #[test]
    fn a_rounding_floor_keeps_the_step_from_the_smallest() {
        let x: f64 = 1.0;
        let exact = x.exp();
        // Noise of 1e-9 relative, deterministic in the offset.
        let noisy = |d: f64| {
            let bits = (d.to_bits() ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let u = (bits >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (x + d).exp() * (1.0 + 2e-9 * u)
        };
        let steps = log_steps(x, 0, 10);
        let s = sweep(ok(noisy), &steps, 1e-9, 1e-4).unwrap();
        let d = s.chosen().expect("a choice");
        let smallest = s.differences.last().unwrap();
        assert!(relative_error(smallest.value, exact) > 1e-2, "{s:?}");
        assert!(relative_error(d.value, exact) < 1e-5, "{s:?}");
        assert!(d.step >= 1e-6 && d.step <= 1e-2, "{s:?}");
        assert!(s.rounding > 1e-10, "{s:?}");
        assert_eq!(s.kink, None, "noise is no kink: {s:?}");
        // Told only of f64's rounding, the sweep measures the noise at its
        // smallest step and chooses as well.
        let s = sweep(ok(noisy), &steps, f64::EPSILON, 1e-4).unwrap();
        let d = s.chosen().expect("a choice");
        assert!(relative_error(d.value, exact) < 1e-5, "{s:?}");
        assert!(s.rounding > 1e-10, "the measured rounding: {s:?}");
    }

    #[test]
    fn one_step_and_no_finite_value() {
        let s = sweep(ok(|d| 2.0 * d), &[1e-3], f64::EPSILON, 1e-4).unwrap();
        assert_eq!(s.best, Some(0));
        assert!((s.chosen().unwrap().value - 2.0).abs() < 1e-12);
        assert!(s.truncation.is_nan() && s.rounding.is_finite());
        let s = sweep(ok(|_| f64::NAN), &log_steps(1.0, 1, 4), f64::EPSILON, 1e-4).unwrap();
        assert_eq!(s.best, None);
        assert!(s.differences.iter().all(|d| d.value.is_nan()));
    }
}

/// A jointed arm with a ball-jointed hand, a particle and an affine block in
/// one scene and one solve (`tests/joints/mixed.joule`): [`gradient_check`]
/// through the couplings of link rows with particle and affine rows.
#[test]
fn joint_trees_share_one_solve_with_particles_and_affine_bodies() {
    for steps in [1, 4] {
        gradient_check(Path::new("tests/joints/mixed.joule"), steps);
    }
}

/// A motor and a position servo on joint coordinates
/// (`tests/joints/actuators.joule`): [`gradient_check`], the controls included.
#[test]
fn joint_actuators_differentiate() {
    for steps in [1, 4] {
        gradient_check(Path::new("tests/joints/actuators.joule"), steps);
    }
}

/// Soft ranges (MuJoCo's limits: a spring-damper that pushes only, active
/// while the step starts outside), one starting violated
/// (`tests/joints/soft_range_start.joule`): [`gradient_check`] through the
/// spring, its dependence on the step's start, and the clamp.
#[test]
fn soft_joint_ranges_differentiate() {
    for steps in [1, 4, 12] {
        gradient_check(Path::new("tests/joints/soft_range_start.joule"), steps);
    }
}

/// Tendon equalities, limits, springs, dampers and motors as `joule
/// import` writes them (tests/grad/tendon_equality.joule,
/// tests/grad/spatial_tendon.joule): [`gradient_check`] through the soft
/// constraints' impedance, inertia and lagged limit.
#[test]
fn tendon_constraints_differentiate() {
    for steps in [1, 4, 12] {
        gradient_check(Path::new("tests/grad/tendon_equality.joule"), steps);
        gradient_check(Path::new("tests/grad/spatial_tendon.joule"), steps);
    }
}

/// Box and capsule contact as `joule import` writes it
/// (tests/grad/box_on_box.joule: `touch_box` and `friction_touch_box`, a
/// block resting on a table; tests/grad/capsule_cross.joule:
/// `touch_capsules` and `touch_capsule`): [`gradient_check`].
#[test]
fn box_contact_differentiates() {
    for steps in [1, 4, 12] {
        gradient_check(Path::new("tests/grad/box_on_box.joule"), steps);
        gradient_check(Path::new("tests/grad/capsule_cross.joule"), steps);
    }
}

/// MuJoCo's soft ground contact as `joule import` writes it (`contact_soft`:
/// the damper and the slip read the step's start through `prev`, friction in
/// one cone with the normal force), active from the first step
/// (`tests/joints/soft_contact.joule`): [`gradient_check`] through the
/// contact's spring-damper and the friction cone.
#[test]
fn soft_ground_contact_differentiates() {
    for steps in [1, 4, 12] {
        gradient_check(Path::new("tests/joints/soft_contact.joule"), steps);
    }
}

/// Contact with a plane other than the ground (`tests/grad/box_plane.joule`:
/// a box sliding and rocking on a tilted plane, `ground_plane_point` and
/// `friction_plane_point`): [`gradient_check`] through the barrier, the
/// lagged friction, the friction coefficient and the barrier's stiffness.
#[test]
fn plane_contact_differentiates() {
    for steps in [1, 4] {
        gradient_check(Path::new("tests/grad/box_plane.joule"), steps);
    }
}

/// MuJoCo's Euler in joint coordinates (`kinematics = linear`, as `joule
/// import --friction mujoco` writes a model on `Euler`), on Brax's
/// half_cheetah (tests/grad/mujoco_euler_cheetah.joule: slides and hinges
/// with armature, damping, stiffness, motors, MuJoCo's soft limits and its
/// contact pyramid, landed on its feet): [`gradient_check`] through the
/// prediction's velocity-product forces and mass matrix, the solve and the
/// damping made implicit after it.
#[test]
fn mujocos_euler_differentiates() {
    for steps in [1, 4, 12] {
        gradient_check(Path::new("tests/grad/mujoco_euler_cheetah.joule"), steps);
        gradient_check(Path::new("tests/grad/mujoco_euler_chain.joule"), steps);
        gradient_check(Path::new("tests/grad/mujoco_euler_floating.joule"), steps);
        // From its start, the ankles outside their ranges: MuJoCo's
        // limits push from the first step.
        gradient_check(Path::new("tests/mjcf/ant_mujoco.joule"), steps);
    }
}

/// MuJoCo's own contact law (`tests/grad/mujoco_contact.joule`:
/// `contact_mujoco`, a capsule sliding and rocking on a tilted plane on both
/// end spheres): [`gradient_check`] through the pyramid's edges, the
/// impedance and the reference acceleration, the friction coefficient and
/// the contact's time constant, over 1, 4 and 20 steps.
#[test]
fn mujocos_contact_law_differentiates() {
    for steps in [1, 4, 20] {
        gradient_check(Path::new("tests/grad/mujoco_contact.joule"), steps);
    }
}

/// MuJoCo's own contact law between bodies (`tests/grad/mujoco_touch.joule`:
/// a ball on a tilted box, a ball on that ball, a bead on a capsule within
/// its margin, a hinged capsule across it, each starting in contact):
/// [`gradient_check`] through the closest points and normals of the step's
/// start, the pyramid's edges, the impedance and the reference
/// acceleration, over 1, 4 and 20 steps.
#[test]
fn mujocos_contact_law_between_bodies_differentiates() {
    for steps in [1, 4, 20] {
        gradient_check(Path::new("tests/grad/mujoco_touch.joule"), steps);
    }
}

/// MuJoCo's limit law on joint ranges (`tests/grad/mujoco_limit.joule`: an
/// arm starting past its range inside the margin, where the impedance
/// varies over the violation, and a tip against a limit of direct stiffness
/// and damping): [`gradient_check`] through the reference acceleration, the
/// impedance, and their dependence on the step's start (its coordinate and
/// velocity), over 1, 4, 12 and 30 steps.
#[test]
fn mujocos_limit_law_differentiates() {
    for steps in [1, 4, 12, 30] {
        gradient_check(Path::new("tests/grad/mujoco_limit.joule"), steps);
    }
}

/// Outputs that read the start of a step through `prev` in a scene of 3
/// substeps per step (`tests/grad/step_displacement.joule`): the reward and
/// the loss see the state before the step's first substep, and their
/// gradient reaches it once the step's substeps are reversed:
/// [`gradient_check`].
#[test]
fn outputs_reading_the_start_of_the_step_differentiate() {
    for steps in [1, 4] {
        gradient_check(Path::new("tests/grad/step_displacement.joule"), steps);
    }
}

/// The same through a free joint (`tests/grad/free_step_displacement.joule`):
/// the reads of the initial links' rows pull back onto the joint's
/// displacement and rotation vector (a state set from outside places the
/// links by their coordinates), checked among the initial state's rows:
/// [`gradient_check`].
#[test]
fn outputs_reading_the_start_through_a_free_joint_differentiate() {
    for steps in [1, 3] {
        gradient_check(Path::new("tests/grad/free_step_displacement.joule"), steps);
    }
}

/// The state of one environment after one step of `scene` from `(x, v)`
/// with the parameters `params` set.
fn step_from(scene: &Scene, x: &[f64], v: &[f64], params: &[(&str, f64)]) -> Vec<f64> {
    let mut sim = scene.batch_threads(1, 1);
    for (name, value) in params {
        sim.set_param(name, *value)
            .expect("a parameter of the scene");
    }
    sim.set_state(0, x, v);
    sim.step();
    [sim.positions(0), sim.velocities(0)].concat()
}

/// The states of one environment of `scene` from its start over `steps`
/// steps (positions then velocities), the start first.
fn simulated_states(scene: &Scene, steps: usize) -> Vec<Vec<f64>> {
    let mut sim = scene.batch_threads(1, 1);
    let mut states = vec![[sim.positions(0), sim.velocities(0)].concat()];
    for _ in 0..steps {
        sim.step();
        states.push([sim.positions(0), sim.velocities(0)].concat());
    }
    states
}

/// The tangent by parameter `name` (at `p`) of the state after a chain of
/// `smooth`'s steps, each taken from one of `states` (another scene's
/// simulated states, positions then velocities), by forward-mode central
/// differences: `d_{t+1} = (f(x_t + h d_t; p + h) - f(x_t - h d_t; p - h)) / 2h`.
fn chained_tangent(smooth: &Scene, states: &[Vec<f64>], name: &str, p: f64) -> Vec<f64> {
    let n = smooth.dofs();
    let h = 1e-6 * p.abs().max(1.0);
    let mut tangent = vec![0.0; 2 * n];
    for s in states {
        let shifted = |sign: f64| -> Vec<f64> {
            let y: Vec<f64> = s
                .iter()
                .zip(&tangent)
                .map(|(a, d)| a + sign * h * d)
                .collect();
            step_from(smooth, &y[..n], &y[n..], &[(name, p + sign * h)])
        };
        let (plus, minus) = (shifted(1.0), shifted(-1.0));
        tangent = plus
            .iter()
            .zip(&minus)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
    }
    tangent
}

/// `surrogate = model` (`tests/grad/surrogate_model.joule`: stiff penalty
/// contact simulated, a softplus contact in `backward =`): the gradient
/// chains the surrogate model's own step, re-aligned with the simulation at
/// every step. Checked against forward-mode central differences of that
/// chain built from the surrogate model simulated outright
/// (`surrogate_model_smooth.joule`): the tangent `d_t` of the state is
/// carried by `d_{t+1} = (f(x_t + h d_t; p + h) - f(x_t - h d_t; p - h)) / 2h`,
/// `f` the smooth scene's step and `x_t` the penalty scene's simulated
/// states, over horizons before, into and through the contact.
#[test]
fn a_surrogate_model_is_differentiated_at_every_simulated_state() {
    let aligned = Scene::from_model(
        model(Path::new("tests/grad/surrogate_model.joule"), true),
        Backend::Jit,
    )
    .expect("compile");
    assert!(aligned.surrogate_model().is_some(), "surrogate = model");
    let smooth = Scene::from_model(
        model(Path::new("tests/grad/surrogate_model_smooth.joule"), true),
        Backend::Jit,
    )
    .expect("compile");
    let names = ["push", "k"];
    for steps in [1, 3, 8] {
        let states = simulated_states(&aligned, steps);
        let mut sim = aligned.batch_threads(1, 1);
        let g = sim
            .gradient(&Objective::loss("reach"), steps)
            .expect("gradient");
        assert!(g.events.is_empty(), "{:?}", g.events);
        for (i, name) in names.iter().enumerate() {
            let p = sim.param(name, 0).expect("a parameter");
            let tangent = chained_tangent(&smooth, &states[..steps], name, p);
            // reach = x + 3 z, linear in the state.
            let fd = tangent[0] + 3.0 * tangent[2];
            let adjoint = g.params[i][0];
            assert!(
                (adjoint - fd).abs() <= 1e-6 * fd.abs().max(1e-6),
                "{steps} steps, {name}: adjoint {adjoint:e}, chained differences {fd:e}"
            );
        }
    }
}

/// MuJoCo's laws forward, the cone's smooth step in the gradients
/// (`tests/grad/mujoco_cone_leg.joule`: MuJoCo's Euler, contact and limit
/// simulated; `surrogate = model(kinematics = exact)` with
/// `contact_mujoco_cone`, what `use "model.xml" (friction = mujoco,
/// surrogate = cone)` writes): the gradient chains, at every simulated
/// state, a step of implicit Euler on the joint configurations with the
/// cone contact. Checked against forward-mode central differences of that
/// chain built from the surrogate model written out and simulated outright
/// (`mujoco_cone_leg_smooth.joule`), as for the softplus surrogate above,
/// with respect to a force and the friction coefficient (the feet slide from the second step), over the landing.
#[test]
fn mujocos_laws_differentiate_through_the_cones_smooth_step() {
    let aligned = Scene::from_model(
        model(Path::new("tests/grad/mujoco_cone_leg.joule"), true),
        Backend::Jit,
    )
    .expect("compile");
    assert!(aligned.surrogate_model().is_some(), "surrogate = model");
    let smooth = Scene::from_model(
        model(Path::new("tests/grad/mujoco_cone_leg_smooth.joule"), true),
        Backend::Jit,
    )
    .expect("compile");
    let n = aligned.dofs();
    let row = |name: &str| {
        (0..n)
            .find(|&d| aligned.dof_name(d) == name)
            .unwrap_or_else(|| panic!("a row {name}"))
    };
    // where = torso.x.x + 0.5 torso.x.z + 0.3 thigh.q + 0.1 thigh.qdot.
    let weights = [
        (row("torso.x[0]"), 1.0),
        (row("torso.x[2]"), 0.5),
        (row("thigh.q"), 0.3),
        (n + row("thigh.q"), 0.1),
    ];
    for steps in [1, 3, 8] {
        let states = simulated_states(&aligned, steps);
        let mut sim = aligned.batch_threads(1, 1);
        let g = sim
            .gradient(&Objective::loss("where"), steps)
            .expect("gradient");
        assert!(g.events.is_empty(), "{:?}", g.events);
        for (i, name) in ["push", "mu"].iter().enumerate() {
            let p = sim.param(name, 0).expect("a parameter");
            let tangent = chained_tangent(&smooth, &states[..steps], name, p);
            let fd: f64 = weights.iter().map(|(k, w)| w * tangent[*k]).sum();
            let adjoint = g.params[i][0];
            // (Within the first step the feet stick: mu's derivative is 0
            // there, and the differences' round-off about 1e-11.)
            assert!(
                (adjoint - fd).abs() <= 1e-6 * fd.abs() + 1e-9,
                "{steps} steps, {name}: adjoint {adjoint:e}, chained differences {fd:e}"
            );
        }
    }
}

/// Where no surrogate acts (the particle of `tests/grad/surrogate_model.joule`
/// a metre above the ground, far beyond the softplus' reach), the surrogate
/// model steps as the simulation does and its gradient is the exact one.
#[test]
fn a_surrogate_model_away_from_its_surrogates_gives_the_exact_gradient() {
    let path = Path::new("tests/grad/surrogate_model.joule");
    let grads: Vec<Gradient> = [true, false]
        .iter()
        .map(|&s| {
            let scene = Scene::from_model(model(path, s), Backend::Jit).expect("compile");
            assert_eq!(scene.surrogate_model().is_some(), s);
            let mut sim = scene.batch_threads(1, 1);
            sim.set_state(0, &[0.0, 0.0, 1.0], &[0.5, 0.0, -1.0]);
            sim.gradient(&Objective::loss("reach"), 10)
                .expect("gradient")
        })
        .collect();
    assert_eq!(grads[0].value, grads[1].value);
    for (a, b) in grads[0].params.iter().zip(&grads[1].params) {
        assert!(
            (a[0] - b[0]).abs() <= 1e-12 * b[0].abs().max(1e-9),
            "{a:?} vs {b:?}"
        );
    }
    for (a, b) in grads[0].x0.iter().zip(&grads[1].x0) {
        assert!(
            (a[0] - b[0]).abs() <= 1e-12 * b[0].abs().max(1e-9),
            "{a:?} vs {b:?}"
        );
    }
}

/// The closed-loop tape (what training reverses) differentiates the
/// surrogate model as the whole-rollout gradient does: the same parameter
/// and initial-state gradients of `tests/grad/surrogate_model.joule` over
/// 8 steps, to round-off.
#[test]
fn a_tape_differentiates_the_surrogate_model_like_a_rollout() {
    let scene = Scene::from_model(
        model(Path::new("tests/grad/surrogate_model.joule"), true),
        Backend::Jit,
    )
    .expect("compile");
    let steps = 8;
    let whole = scene
        .batch_threads(1, 1)
        .gradient(&Objective::loss("reach"), steps)
        .expect("gradient");
    let taped = common::taped_loss_gradient(&scene, "reach", steps);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1e-9);
    for (a, b) in taped.params.iter().zip(&whole.params) {
        assert!(close(a[0], b[0]), "params: tape {a:?}, rollout {b:?}");
    }
    for (a, b) in taped
        .x0
        .iter()
        .chain(&taped.v0)
        .zip(whole.x0.iter().chain(&whole.v0))
    {
        assert!(close(a[0], b[0]), "state: tape {a:?}, rollout {b:?}");
    }
}

/// Coulomb friction bounded by the step's own normal force, held at the
/// step's solution (`held(..)`; `tests/grad/coulomb_*.joule`: a box in
/// joint coordinates, the same box as an affine body, particles): the
/// adjoint solves the step's non-symmetric Jacobian by the transpose of the
/// forward's fixed-point iteration. Over 1 step, 4, and 15 of sliding.
#[test]
fn adjoint_through_held_coulomb_friction() {
    for name in ["coulomb_box", "coulomb_affine_box", "coulomb_particle"] {
        for steps in [1, 4, 15] {
            gradient_check(Path::new(&format!("tests/grad/{name}.joule")), steps);
        }
    }
}

/// docs/performance.md's "Recorded memory per environment step" table: for
/// every shipped scene, its DOFs and the bytes the gradient records per
/// environment step (8 environments, f64 or f32 as the scene says), as a
/// one-step gradient reports them.
#[test]
fn the_documented_recorded_bytes_per_env_step_are_true() {
    let text = std::fs::read_to_string("docs/performance.md").expect("docs");
    let rows: Vec<(String, usize, usize)> = text
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells
                .get(1)?
                .strip_prefix("`scenes/")?
                .strip_suffix(".joule`")?;
            Some((
                name.to_string(),
                cells.get(2)?.parse().ok()?,
                cells.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    let mut stems: Vec<String> = std::fs::read_dir("scenes")
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "joule")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    stems.sort();
    assert_eq!(names, stems, "one row per shipped scene");
    for (name, dofs, bytes) in &rows {
        let m = model(&shipped(name), true);
        let obj = objective(&m);
        let scene = Scene::from_model(m, Backend::Jit).expect("compile");
        let mut sim = scene.batch_threads(8, 1);
        let g = sim.gradient(&obj, 1).expect("gradient");
        assert_eq!(
            (scene.dofs(), g.bytes_per_env_step),
            (*dofs, *bytes),
            "{name}: DOFs and recorded bytes per env-step"
        );
    }
}
