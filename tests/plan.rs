//! Trajectory optimisation as a differentiable policy
//! (`joule_runtime::plan`): the plan and its derivatives with respect to
//! the cost's and the model's params and the start state, against the
//! closed form of a linear-quadratic problem and against central
//! differences of whole plans on a nonlinear one; the truncated derivative
//! reported where the iterations run out; cost params recovered from an
//! expert's plans through the planner's derivative; a model that is a
//! scene of its own, simpler than its world (`--planner-model`).

use joule_learn::planning::{PlanConfig, PlanTrainer};
use joule_runtime::plan::{Plan, Planner, PlannerConfig, State, WorldMap};
use joule_runtime::{Objective, Scene};

fn scene(case: &str) -> Scene {
    let text = std::fs::read_to_string(format!("tests/plan/{case}.joule")).expect("case");
    Scene::compile(&text).expect("the case compiles")
}

fn param(scene: &Scene, name: &str) -> usize {
    scene
        .model()
        .params
        .iter()
        .position(|p| p.name == name)
        .expect("a param")
}

/// The particle's DOFs (x, y, z) at `x` with velocity `v` along x.
fn particle(x: f64, v: f64) -> State {
    (vec![x, 0.0, 0.0], vec![v, 0.0, 0.0])
}

/// Solves the small dense system `a x = b` by LU with partial pivoting:
/// the closed form's own solver, not the planner's Cholesky.
fn solve(a: Vec<Vec<f64>>, b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    let m = nalgebra::DMatrix::from_fn(n, n, |i, j| a[i][j]);
    let x = m
        .lu()
        .solve(&nalgebra::DVector::from_vec(b))
        .expect("a regular system");
    x.iter().copied().collect()
}

/// The linear-quadratic case in closed form. Symplectic Euler with a unit
/// mass gives `x_{t+1} = x0 + (t + 1) h v0 + h^2 sum_{s<=t} (t + 1 - s) u_s`,
/// so `x = a + B u`; with each control held for `hold` steps, `u = E c`
/// (`E` repeats block `j` over its steps), and the cost
/// `|a + B E c - target|^2 + w |E c|^2` is least at
/// `(E^T B^T B E + w E^T E) c = E^T B^T (target - a)`. Returns the plan and
/// its derivatives in `w`, `target`, `x0` and `v0`, per step.
fn lqr_closed_form(
    h: f64,
    n: usize,
    hold: usize,
    w: f64,
    target: f64,
    x0: f64,
    v0: f64,
) -> [Vec<f64>; 5] {
    let m = n.div_ceil(hold);
    // (B E)[t][j]: step t's position per unit of held control j.
    let be = |t: usize, j: usize| -> f64 {
        (j * hold..((j + 1) * hold).min(n))
            .filter(|&s| s <= t)
            .map(|s| h * h * (t + 1 - s) as f64)
            .sum()
    };
    let size = |j: usize| (((j + 1) * hold).min(n) - j * hold) as f64;
    let a: Vec<f64> = (0..n).map(|t| x0 + (t + 1) as f64 * h * v0).collect();
    let normal: Vec<Vec<f64>> = (0..m)
        .map(|i| {
            (0..m)
                .map(|j| {
                    (0..n).map(|t| be(t, i) * be(t, j)).sum::<f64>()
                        + if i == j { w * size(i) } else { 0.0 }
                })
                .collect()
        })
        .collect();
    // (B E)^T y for a vector y over the steps.
    let bt = |y: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..m)
            .map(|i| (0..n).map(|t| be(t, i) * y(t)).sum())
            .collect()
    };
    let c = solve(normal.clone(), bt(&|t| target - a[t]));
    // d/dw: N dc = -E^T E c; d/dtarget: (B E)^T 1; d/dx0: -(B E)^T 1; d/dv0: -(B E)^T ((t + 1) h).
    let dw = solve(
        normal.clone(),
        c.iter().enumerate().map(|(j, x)| -x * size(j)).collect(),
    );
    let dtarget = solve(normal.clone(), bt(&|_| 1.0));
    let dx0 = solve(normal.clone(), bt(&|_| -1.0));
    let dv0 = solve(normal, bt(&|t| -((t + 1) as f64) * h));
    let steps = |v: Vec<f64>| (0..n).map(|t| v[t / hold]).collect();
    [steps(c), steps(dw), steps(dtarget), steps(dx0), steps(dv0)]
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn linear_quadratic_plan_and_derivatives_match_the_closed_form() {
    let scene = scene("lqr");
    let (iw, it) = (param(&scene, "w_u"), param(&scene, "target"));
    let horizon = 13;
    // Every control planned, and each held for three steps (the last for one).
    for hold in [1, 3] {
        let mut config = PlannerConfig::new(Objective::reward("cost"), horizon, 4);
        config.learn = vec![iw, it];
        config.hold = hold;
        let mut planner = Planner::new(&scene, config, 2).expect("a planner");
        let starts = [particle(0.0, 0.0), particle(-0.4, 0.7)];
        let plans = planner.plan(&starts).expect("plans");
        for (plan, (x, v)) in plans.iter().zip(&starts) {
            let [u, dw, dtarget, dx0, dv0] =
                lqr_closed_form(0.1, horizon, hold, 0.5, 1.0, x[0], v[0]);
            // A quadratic: one Newton step, then the check at the optimum.
            assert!(plan.converged, "{plan:?}");
            assert_eq!(plan.iterations, 2);
            assert_eq!(plan.damping, 0.0);
            for t in 0..horizon {
                let pairs = [
                    ("u", plan.schedule[t][0], u[t]),
                    ("du/dw", plan.d_params[t][0], dw[t]),
                    ("du/dtarget", plan.d_params[t][1], dtarget[t]),
                    ("du/dx0", plan.d_x0[t][0], dx0[t]),
                    ("du/dv0", plan.d_v0[t][0], dv0[t]),
                ];
                for (what, got, want) in pairs {
                    assert!(close(got, want, 1e-7), "{what}[{t}]: {got} vs {want}");
                }
                // The particle's y and z move nothing the cost sees.
                assert!(plan.d_x0[t][1].abs() < 1e-9 && plan.d_v0[t][2].abs() < 1e-9);
            }
        }
    }
}

/// Plans on the swing scene from `state` with the learned params at
/// `values`, from the same cold start, converged tightly.
fn swing_plan(scene: &Scene, learn: &[usize], values: &[f64], state: &State, iters: usize) -> Plan {
    let mut config = PlannerConfig::new(Objective::reward("lift"), 8, iters);
    config.learn = learn.to_vec();
    config.tol = 1e-10;
    let mut planner = Planner::new(scene, config, 1).expect("a planner");
    planner.set_learned(values);
    planner
        .plan(std::slice::from_ref(state))
        .expect("a plan")
        .remove(0)
}

#[test]
fn nonlinear_plan_derivatives_match_central_differences_of_whole_plans() {
    let scene = scene("swing");
    let learn = [
        param(&scene, "m_arm"),
        param(&scene, "w_u"),
        param(&scene, "height"),
    ];
    let values = [1.0, 0.05, 0.2];
    let dofs = scene.dofs();
    let q = (0..dofs)
        .position(|d| scene.dof_name(d) == "arm.q")
        .expect("the hinge's coordinate");
    let mut x0 = vec![0.0; dofs];
    let mut v0 = vec![0.0; dofs];
    x0[q] = -0.3;
    v0[q] = 0.5;
    let state = (x0, v0);
    let plan = swing_plan(&scene, &learn, &values, &state, 30);
    assert!(
        plan.converged,
        "{} iterations, |g| {}",
        plan.iterations, plan.grad_norm
    );
    assert!(
        plan.schedule.iter().flatten().any(|u| u.abs() > 0.1),
        "the plan does something"
    );
    let delta = 1e-5;
    let fd = |f: &dyn Fn(f64) -> Plan| -> Vec<f64> {
        let (p, m) = (f(delta), f(-delta));
        assert!(p.converged && m.converged);
        p.schedule
            .iter()
            .flatten()
            .zip(m.schedule.iter().flatten())
            .map(|(a, b)| (a - b) / (2.0 * delta))
            .collect()
    };
    let check = |what: &str, analytic: Vec<f64>, numeric: Vec<f64>| {
        let scale = numeric.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        assert!(scale > 1e-3, "{what}: the plan depends on it");
        for (k, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                (a - n).abs() <= 1e-5 * scale,
                "{what}[{k}]: {a} vs {n} (scale {scale})"
            );
        }
    };
    for (j, name) in ["m_arm", "w_u", "height"].iter().enumerate() {
        let numeric = fd(&|d| {
            let mut v = values;
            v[j] += d;
            swing_plan(&scene, &learn, &v, &state, 30)
        });
        check(name, plan.d_params.iter().map(|r| r[j]).collect(), numeric);
    }
    for (what, velocity) in [("q0", false), ("qdot0", true)] {
        let numeric = fd(&|d| {
            let mut s = state.clone();
            if velocity {
                s.1[q] += d;
            } else {
                s.0[q] += d;
            }
            swing_plan(&scene, &learn, &values, &s, 30)
        });
        let rows = if velocity { &plan.d_v0 } else { &plan.d_x0 };
        check(what, rows.iter().map(|r| r[q]).collect(), numeric);
    }
}

/// A small network in the cost (`tests/plan/swing_net.joule`: param arrays
/// `w1[j, i]`, `b1[j]`, `w2[j]`, all learned through `learn = [.., w1, b1,
/// w2]`): the plan's derivative with respect to every weight against
/// central differences of whole converged plans.
#[test]
fn a_network_in_the_cost_is_differentiated_through_the_plan() {
    let scene = scene("swing_net");
    let spec = &scene.model().planners[0];
    let names: Vec<&str> = spec
        .learn
        .iter()
        .map(|&i| scene.model().params[i].name.as_str())
        .collect();
    assert_eq!(names.len(), 2 + 9 + 3 + 3, "{names:?}");
    assert!(names.contains(&"w1[2, 1]") && names.contains(&"w2[0]"));
    let q = (0..scene.dofs())
        .position(|d| scene.dof_name(d) == "arm.q")
        .expect("the hinge's coordinate");
    let mut state = (vec![0.0; scene.dofs()], vec![0.0; scene.dofs()]);
    (state.0[q], state.1[q]) = (-0.3, 0.5);
    let values: Vec<f64> = spec
        .learn
        .iter()
        .map(|&i| scene.model().params[i].value)
        .collect();
    let plan_at = |v: &[f64]| {
        let mut config = PlannerConfig::declared(spec);
        config.tol = 1e-10;
        let mut planner = Planner::new(&scene, config, 1).expect("a planner");
        planner.set_learned(v);
        let plan = planner
            .plan(std::slice::from_ref(&state))
            .expect("a plan")
            .remove(0);
        assert!(plan.converged, "{} iterations", plan.iterations);
        plan
    };
    let plan = plan_at(&values);
    let delta = 1e-5;
    for (j, name) in names.iter().enumerate() {
        let moved = |d: f64| {
            let mut v = values.clone();
            v[j] += d;
            plan_at(&v).schedule.concat()
        };
        let (p, m) = (moved(delta), moved(-delta));
        let numeric: Vec<f64> = p
            .iter()
            .zip(&m)
            .map(|(a, b)| (a - b) / (2.0 * delta))
            .collect();
        let scale = numeric.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        assert!(scale > 1e-4, "{name}: the plan depends on it ({scale})");
        for (k, (row, n)) in plan.d_params.iter().zip(&numeric).enumerate() {
            assert!(
                (row[j] - n).abs() <= 1e-5 * scale,
                "{name}[{k}]: {} vs {n} (scale {scale})",
                row[j]
            );
        }
    }
}

#[test]
fn a_plan_out_of_iterations_says_its_derivative_is_truncated() {
    let scene = scene("swing");
    let learn = [param(&scene, "w_u")];
    let dofs = scene.dofs();
    let state = (vec![0.0; dofs], vec![0.0; dofs]);
    let one = swing_plan(&scene, &learn, &[0.05], &state, 1);
    assert!(!one.converged);
    assert_eq!(one.iterations, 1);
    assert!(one.d_params.iter().flatten().all(|x| x.is_finite()));
    let full = swing_plan(&scene, &learn, &[0.05], &state, 30);
    assert!(full.converged);
    assert!(full.cost < one.cost, "more iterations lower the cost");
}

#[test]
fn warm_starts_follow_the_receding_horizon() {
    let scene = scene("lqr");
    let config = PlannerConfig::new(Objective::reward("cost"), 10, 6);
    let mut planner = Planner::new(&scene, config, 1).expect("a planner");
    let mut sim = scene.batch(1);
    let first = planner
        .plan(&[particle(0.0, 0.0)])
        .expect("a plan")
        .remove(0);
    sim.set_control(0, 0, first.first()[0]);
    sim.step();
    let again = planner
        .plan(&[(sim.positions(0), sim.velocities(0))])
        .expect("a plan")
        .remove(0);
    assert!(again.converged);
    // The shifted plan is close to the next optimum: one step lands there.
    assert_eq!(again.iterations, 2);
    // Planning again from the first state with a fresh start gives the first plan.
    planner.reset(0);
    let fresh = planner
        .plan(&[particle(0.0, 0.0)])
        .expect("a plan")
        .remove(0);
    for (a, b) in fresh
        .schedule
        .iter()
        .flatten()
        .zip(first.schedule.iter().flatten())
    {
        assert!((a - b).abs() < 1e-9);
    }
}

/// Learning the cost from an expert's plans (the task loss through the
/// optimiser): an expert plans with `w_u = 0.5, target = 1`; a learner
/// starting from `w_u = 2, target = 0.2` matches the expert's first
/// controls from several states by Gauss-Newton on its params, with the
/// plans' derivatives as the Jacobian, and recovers the expert's params.
#[test]
fn cost_params_are_recovered_from_an_experts_plans() {
    let scene = scene("lqr");
    let learn = vec![param(&scene, "w_u"), param(&scene, "target")];
    let starts: Vec<State> = [(0.0, 0.0), (0.5, -0.3), (-0.8, 0.4), (1.5, 0.0)]
        .iter()
        .map(|&(x, v)| particle(x, v))
        .collect();
    let config = |learn: &[usize]| {
        let mut c = PlannerConfig::new(Objective::reward("cost"), 10, 6);
        c.learn = learn.to_vec();
        c
    };
    let mut expert = Planner::new(&scene, config(&learn), starts.len()).expect("a planner");
    expert.set_learned(&[0.5, 1.0]);
    let shown: Vec<f64> = expert
        .plan(&starts)
        .expect("plans")
        .iter()
        .map(|p| p.first()[0])
        .collect();
    let mut learner = Planner::new(&scene, config(&learn), starts.len()).expect("a planner");
    // Residuals `u0_e - shown_e` and their Jacobian in (ln w_u, target):
    // the weight in logarithms keeps it positive.
    let mut fit = |theta: &[f64]| -> (Vec<f64>, Vec<[f64; 2]>) {
        learner.set_learned(&[theta[0].exp(), theta[1]]);
        for e in 0..starts.len() {
            learner.reset(e);
        }
        let plans = learner.plan(&starts).expect("plans");
        let r = plans
            .iter()
            .zip(&shown)
            .map(|(p, s)| p.first()[0] - s)
            .collect();
        let j = plans
            .iter()
            .map(|p| [p.d_params[0][0] * theta[0].exp(), p.d_params[0][1]])
            .collect();
        (r, j)
    };
    let sq = |r: &[f64]| r.iter().map(|x| x * x).sum::<f64>();
    let mut theta = vec![2.0_f64.ln(), 0.2];
    let (mut r, mut j) = fit(&theta);
    for _ in 0..30 {
        let jtj: Vec<Vec<f64>> = (0..2)
            .map(|a| {
                (0..2)
                    .map(|b| j.iter().map(|row| row[a] * row[b]).sum())
                    .collect()
            })
            .collect();
        let jtr: Vec<f64> = (0..2)
            .map(|a| -j.iter().zip(&r).map(|(row, ri)| row[a] * ri).sum::<f64>())
            .collect();
        let step = solve(jtj, jtr);
        // Gauss-Newton with backtracking on the squared residual.
        let mut t = 1.0;
        loop {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a + t * s).collect();
            let (rt, jt) = fit(&trial);
            if sq(&rt) <= sq(&r) || t < 1e-6 {
                (theta, r, j) = (trial, rt, jt);
                break;
            }
            t *= 0.5;
        }
    }
    let theta = [theta[0].exp(), theta[1]];
    assert!(
        (theta[0] - 0.5).abs() < 1e-6 && (theta[1] - 1.0).abs() < 1e-6,
        "{theta:?}"
    );
}

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;

/// `joule run --planner` drives every environment by the scene's `trajopt`
/// policy: its first step is the library's plan's first control, it lifts
/// the arm's tip higher than no push at all, and it reports its plans.
#[test]
fn joule_run_drives_controls_by_the_planner() {
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["run", "tests/plan/swing.joule", "--json"];
        args.extend_from_slice(extra);
        let o = common::joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    let lift = |v: &serde_json::Value| v["reward"]["lift"][0].as_f64().expect("a reward");
    let planned = run(&["--planner", "plan", "--steps", "25", "--batch", "2"]);
    let idle = run(&["--steps", "25"]);
    assert!(
        lift(&planned) > lift(&idle) + 0.1,
        "{} vs {}",
        lift(&planned),
        lift(&idle)
    );
    assert_eq!(planned["planner"]["plans"], 50);
    assert!(planned["planner"]["iterations"].as_u64().expect("a count") >= 50);
    // Step 1: the library's plan from the start, applied by hand.
    let one = run(&["--planner", "plan", "--steps", "1"]);
    let scene = scene("swing");
    let config = PlannerConfig::declared(&scene.model().planners[0]);
    let mut planner = Planner::new(&scene, config, 1).expect("a planner");
    let mut sim = scene.batch(1);
    let plan = planner
        .plan(&[(sim.positions(0), sim.velocities(0))])
        .expect("a plan");
    sim.set_control(0, 0, plan[0].first()[0]);
    sim.step();
    let tip = sim.output("tip_z")[0][0];
    assert_eq!(one["observe"]["tip_z"][0].as_f64(), Some(tip));
    // The model's params differ from the world's with --planner-param.
    let wrong = run(&[
        "--planner",
        "plan",
        "--steps",
        "25",
        "--planner-param",
        "m_arm=3",
    ]);
    assert_ne!(lift(&wrong), lift(&planned));
    // `--param` sets the world and the model alike (as `joule train` does);
    // `--planner-param` sets the model apart from the world.
    let heavy = ["--planner", "plan", "--steps", "25", "--param", "m_arm=3"];
    let known = run(&heavy);
    let said = run(&[&heavy[..], &["--planner-param", "m_arm=3"]].concat());
    assert_eq!(known["reward"], said["reward"]);
    let unknown = run(&[&heavy[..], &["--planner-param", "m_arm=1"]].concat());
    assert_ne!(lift(&unknown), lift(&known));
}

#[test]
fn joule_run_refuses_an_unknown_planner_or_model_param() {
    let o = common::joule(&["run", "tests/plan/swing.joule", "--planner", "nope"]);
    let err = common::fails_with_hint(&o, "no `trajopt` policy named `nope`");
    assert!(err.contains("plan"), "{err}");
    let o = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--planner",
        "plan",
        "--planner-param",
        "m_arm=100",
    ]);
    common::fails_with_hint(&o, "m_arm");
}

/// A planner trainer on the swing scene: `envs` environments jittered by
/// the seed's draws, episodes of `steps`, the model's arm `m_model` kg.
fn trainer(scene: &Scene, envs: usize, steps: usize, m_model: f64) -> PlanTrainer<'_> {
    let mut config = PlanConfig::new("lift");
    config.batch = envs;
    config.episode = steps;
    config.noise = 0.5;
    config.model = vec![("m_arm".into(), m_model)];
    PlanTrainer::new(scene, config).expect("a trainer")
}

/// An episode's gradient in the learned params (at `values`, every plan
/// converged) against central differences of the summed returns of whole
/// episodes.
fn episode_gradient_matches_central_differences(
    episode: impl Fn(&[f64]) -> joule_learn::planning::Episode,
    values: [f64; 3],
) {
    let base = episode(&values);
    assert_eq!(base.stats.not_converged, 0, "{:?}", base.stats);
    let delta = 1e-5;
    for j in 0..3 {
        let total = |d: f64| {
            let mut v = values;
            v[j] += d;
            episode(&v).returns.iter().sum::<f64>()
        };
        let numeric = (total(delta) - total(-delta)) / (2.0 * delta);
        assert!(numeric.abs() > 1e-3, "param {j}: the return depends on it");
        assert!(
            (base.grad[j] - numeric).abs() <= 1e-4 * numeric.abs(),
            "param {j}: {} vs {numeric}",
            base.grad[j]
        );
    }
}

/// The task's return differentiated through every plan of a closed loop
/// (the plans' derivatives in their learned params and their start states,
/// chained through the world's steps) against central differences of the
/// returns of whole closed-loop episodes.
#[test]
fn closed_loop_gradient_through_the_planner_matches_central_differences() {
    let scene = scene("swing");
    let values = [1.4, 0.02, 0.1];
    let episode = |v: &[f64]| {
        let mut t = trainer(&scene, 2, 12, 1.0);
        t.set_learned(v);
        t.episode().expect("an episode")
    };
    episode_gradient_matches_central_differences(episode, values);
}

/// A planner whose model is a scene of its own: the swing arm alone plans
/// for `swing_world.joule`, a world with a weight welded to the arm and a
/// pendulum declared first (the model's DOFs are a few of the world's, in
/// another order). The task's return differentiated through every plan
/// (the plans' derivatives by the model's start state placed on the
/// world's DOFs) against central differences of whole closed-loop
/// episodes, and a checkpoint that resumes bitwise.
#[test]
fn a_planner_on_a_model_of_its_own_differentiates_through_its_world() {
    let (world, model) = (scene("swing_world"), scene("swing"));
    let trainer = || {
        let mut config = PlanConfig::new("lift");
        config.batch = 2;
        config.episode = 12;
        config.noise = 0.5;
        PlanTrainer::with_model(&world, &model, config).expect("a trainer")
    };
    let values = [1.3, 0.02, 0.1];
    let episode = |v: &[f64]| {
        let mut t = trainer();
        t.set_learned(v);
        t.episode().expect("an episode")
    };
    episode_gradient_matches_central_differences(episode, values);
    let mut t = trainer();
    t.iterate().expect("an iteration");
    let bytes = t.checkpoint().expect("a checkpoint");
    let mut resumed = PlanTrainer::resume_with_model(&world, &model, &bytes).expect("resumes");
    t.iterate().expect("an iteration");
    resumed.iterate().expect("an iteration");
    assert_eq!(t.learned(), resumed.learned());
}

/// A model that is the world itself, given as a scene of its own, plans
/// exactly as the world's own planner; a model must fit its world: its
/// DOFs among the world's by name, the same controls.
#[test]
fn a_model_of_its_own_is_mapped_onto_its_world_by_name() {
    let (world, model) = (scene("swing_world"), scene("swing"));
    let act = |planner: &mut Planner, scene: &Scene| {
        let mut sim = scene.batch(2);
        let mut plans = vec![];
        for _ in 0..3 {
            plans.push(planner.act(&mut sim).expect("plans"));
            sim.step();
        }
        (plans, sim.positions(1))
    };
    let config = || PlannerConfig::declared(&model.model().planners[0]);
    let mut own = Planner::new(&model, config(), 2).expect("a planner");
    let mut mapped = Planner::new(&model, config(), 2)
        .expect("a planner")
        .for_world(&model)
        .expect("a model fits itself");
    assert_eq!(act(&mut own, &model), act(&mut mapped, &model), "bitwise");
    // In the world, each plan is stated by the world's DOFs: the arm's
    // coordinate carries the model's derivative, the pendulum's nothing.
    let mut planner = Planner::new(&model, config(), 2)
        .expect("a planner")
        .for_world(&world)
        .expect("the arm is the world's");
    let (plans, _) = act(&mut planner, &world);
    let dof = |s: &Scene, name: &str| (0..s.dofs()).position(|d| s.dof_name(d) == name);
    let (arm, flag) = (
        dof(&world, "arm.q").expect("the arm's coordinate"),
        dof(&world, "flag.q").expect("the pendulum's"),
    );
    assert_ne!(arm, dof(&model, "arm.q").expect("in the model too"));
    let first = &plans[2][0];
    assert_eq!(first.d_x0[0].len(), world.dofs());
    assert!(first.d_x0[0][arm] != 0.0 && first.d_v0[0][arm] != 0.0);
    assert_eq!((first.d_x0[0][flag], first.d_v0[0][flag]), (0.0, 0.0));
    // The same plan from the model's own state, read out of the world's.
    let mut sim = world.batch(1);
    let map = WorldMap::by_names(&world, &model).expect("fits");
    let state = map.state(&(sim.positions(0), sim.velocities(0)));
    let mut alone = Planner::new(&model, config(), 1).expect("a planner");
    let direct = alone.plan(&[state]).expect("a plan");
    let mut planner = Planner::new(&model, config(), 1)
        .expect("a planner")
        .for_world(&world)
        .expect("fits");
    let via = planner.act(&mut sim).expect("a plan");
    assert_eq!(direct[0].schedule, via[0].schedule);
    assert_eq!(
        direct[0].d_x0[0][dof(&model, "arm.q").unwrap()],
        via[0].d_x0[0][arm]
    );
    let refused = |w: &Scene, m: &Scene| WorldMap::by_names(w, m).expect_err("refused").0;
    let e = refused(&model, &world);
    assert!(
        e.contains("`flag.x[0]`") && e.contains("the world has not"),
        "{e}"
    );
    let e = refused(&world, &scene("swing_torque"));
    assert!(e.contains("the model's `torque` not the world's"), "{e}");
    assert!(e.contains("the world's `u` not the model's"), "{e}");
}

/// Training through the optimiser: a planner whose model's arm is three
/// times too heavy and whose cost is mis-weighted lifts the arm better
/// after a few steps of Adam on its params, and a checkpoint resumes the
/// run bitwise.
#[test]
fn training_through_the_planner_raises_the_return_and_resumes_bitwise() {
    let scene = scene("swing");
    let mut t = trainer(&scene, 2, 12, 3.0);
    let first = t.iterate().expect("an iteration").0.reward;
    for _ in 0..11 {
        t.iterate().expect("an iteration");
    }
    let (curve, stats) = t.curve();
    let last = curve.last().expect("a point").reward;
    assert!(last > first + 0.05, "{first} -> {last}");
    assert_eq!(stats.len(), 12);
    let bytes = t.checkpoint().expect("a checkpoint");
    let mut resumed = PlanTrainer::resume(&scene, &bytes).expect("resumes");
    for _ in 0..2 {
        t.iterate().expect("an iteration");
        resumed.iterate().expect("an iteration");
    }
    assert_eq!(t.learned(), resumed.learned());
    let rewards = |t: &PlanTrainer| t.curve().0.iter().map(|p| p.reward).collect::<Vec<_>>();
    assert_eq!(rewards(&t), rewards(&resumed));
    assert!(PlanTrainer::resume(&scene, b"{}").is_err());
}

/// SHAC through the planner: a window's objective (its discounted rewards
/// and the critic's discounted value of the state it ends in) differentiated
/// through every plan and the critic, against central differences of
/// windows from the same checkpoint (after two iterations: a critic that
/// has learned, state statistics that are not the identity); and both SHAC
/// and PPO runs resume bitwise.
#[test]
fn shac_windows_through_the_planner_differentiate_and_resume_bitwise() {
    let scene = scene("swing");
    let values = [1.4, 0.02, 0.1];
    let mut t = trainer(&scene, 2, 12, 1.0);
    let mut config = t.config().clone();
    config.algo = joule_learn::Algo::Shac;
    config.ac.horizon = 6;
    t = PlanTrainer::new(&scene, config).expect("a SHAC trainer");
    t.set_learned(&values);
    for _ in 0..2 {
        t.iterate().expect("an iteration");
    }
    t.set_learned(&values);
    let bytes = t.checkpoint().expect("a checkpoint");
    let window = |v: &[f64]| {
        let mut t = PlanTrainer::resume(&scene, &bytes).expect("resumes");
        t.set_learned(v);
        t.window().expect("a window")
    };
    let (objective, grad) = window(&values);
    assert!(objective.is_finite());
    let delta = 1e-5;
    for j in 0..3 {
        let at = |d: f64| {
            let mut v = values;
            v[j] += d;
            window(&v).0
        };
        let numeric = (at(delta) - at(-delta)) / (2.0 * delta);
        assert!(numeric.abs() > 1e-4, "param {j}: the window depends on it");
        assert!(
            (grad[j] - numeric).abs() <= 1e-4 * numeric.abs(),
            "param {j}: {} vs {numeric}",
            grad[j]
        );
    }
    for algo in [joule_learn::Algo::Shac, joule_learn::Algo::Ppo] {
        let mut config = t.config().clone();
        config.algo = algo;
        config.ac.horizon = 4;
        let mut a = PlanTrainer::new(&scene, config).expect("a trainer");
        for _ in 0..3 {
            a.iterate().expect("an iteration");
        }
        let bytes = a.checkpoint().expect("a checkpoint");
        let mut b = PlanTrainer::resume(&scene, &bytes).expect("resumes");
        for _ in 0..3 {
            a.iterate().expect("an iteration");
            b.iterate().expect("an iteration");
        }
        assert_eq!(a.learned(), b.learned(), "{algo:?}");
        let rows = |t: &PlanTrainer| {
            t.curve()
                .0
                .iter()
                .map(|p| [p.reward, p.loss, p.action_std].map(f64::to_bits))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&a), rows(&b), "{algo:?}");
        assert!(a.curve().0.iter().any(|p| p.episodes > 0), "{algo:?}");
        // A learning rate decaying to 0 over two iterations stops the params after them.
        let mut config = a.config().clone();
        config.lr_decay = 2;
        let mut d = PlanTrainer::new(&scene, config).expect("a trainer");
        let start = d.learned();
        d.iterate().expect("an iteration");
        d.iterate().expect("an iteration");
        let moved = d.learned();
        assert_ne!(start, moved, "{algo:?}");
        d.iterate().expect("an iteration");
        assert_eq!(
            moved,
            d.learned(),
            "{algo:?}: the rate is 0 from the third iteration"
        );
    }
}

/// `joule train SCENE --reward lift --algo apg` for `iters` iterations of
/// two 10-step episodes, the model's arm set to 3 kg, JSON out, then `extra`.
fn train_swing(scene: &str, iters: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        scene,
        "--reward",
        "lift",
        "--algo",
        "apg",
        "--iters",
        iters,
        "--batch",
        "2",
        "--episode",
        "10",
        "--planner-param",
        "m_arm=3",
        "--json",
    ];
    args.extend_from_slice(extra);
    common::joule(&args)
}

/// `joule train` of a `trajopt` policy: apg through the optimiser from a
/// model set apart from the world (`--planner-param`), the learned params
/// written as JSON that `joule run --planner-learned` reads, a resumed run
/// bitwise the straight one; shac is refused with a hint.
#[test]
fn joule_train_learns_a_planners_params() {
    let out = |name: &str| common::temp(name).display().to_string();
    let train = |iters: &str, extra: &[&str]| -> serde_json::Value {
        let o = train_swing("tests/plan/swing.joule", iters, extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    let (straight, ck, resumed) = (out("straight.json"), out("ck.json"), out("resumed.json"));
    let s = train("3", &["--out", &straight]);
    assert_eq!(s["iterations"], 3);
    let learned = &s["learned"];
    assert_ne!(learned["m_arm"].as_f64(), Some(3.0), "{s}");
    train("2", &["--out", &out("first.json"), "--checkpoint", &ck]);
    train("3", &["--out", &resumed, "--resume", &ck]);
    let read = |p: &str| std::fs::read_to_string(p).expect("written");
    assert_eq!(
        read(&straight),
        read(&resumed),
        "a resumed run is the straight one"
    );
    // A resumed run keeps its batch.
    let o = common::joule(&[
        "train",
        "tests/plan/swing.joule",
        "--reward",
        "lift",
        "--algo",
        "apg",
        "--iters",
        "3",
        "--batch",
        "3",
        "--resume",
        &ck,
    ]);
    common::fails_with_hint(&o, "a resumed run keeps its batch");
    // The learned params drive a run, named by `--planner` or replayed by `--policy`.
    let o = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--planner",
        "plan",
        "--planner-learned",
        &straight,
        "--steps",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let replay = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--policy",
        &straight,
        "--steps",
        "3",
        "--json",
    ]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let observed = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["observe"]["tip_z"].clone()
    };
    assert_eq!(observed(&o), observed(&replay));
    assert!(observed(&o).is_array());
    let o = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--policy",
        &straight,
        "--planner-learned",
        &straight,
    ]);
    common::fails_with_hint(&o, "already gives the planner `plan` its learned params");
    let o = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--planner-param",
        "w_u=0.1",
    ]);
    common::fails_with_hint(
        &o,
        "`--planner-param` sets a planner, and this run has none",
    );
    let o = common::joule(&[
        "run",
        "tests/plan/swing.joule",
        "--planner",
        "plan",
        "--planner-learned",
        "tests/plan/lqr.joule",
    ]);
    common::fails_with_hint(&o, "is not a planner's params");
}

/// `joule train --algo shac|ppo` of a `trajopt` policy: windows of 5 steps
/// continuing episodes of 10, a critic on the world's state, the JSON names
/// the algorithm, a resumed run is bitwise the straight one (PPO's
/// Gaussian and the critic included); a network policy's settings are
/// refused with a hint.
#[test]
fn joule_train_a_planner_with_shac_and_ppo() {
    let out = |name: &str| common::temp(name).display().to_string();
    for algo in ["shac", "ppo"] {
        let train = |iters: &str, extra: &[&str]| -> serde_json::Value {
            let mut args = vec![
                "train",
                "tests/plan/swing.joule",
                "--reward",
                "lift",
                "--algo",
                algo,
                "--iters",
                iters,
                "--batch",
                "2",
                "--horizon",
                "5",
                "--episode",
                "10",
                "--epochs",
                "2",
                "--minibatches",
                "2",
                "--planner-param",
                "m_arm=3",
                "--json",
            ];
            args.extend_from_slice(extra);
            let o = common::joule(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).expect("json")
        };
        let (straight, ck, resumed) = (
            out(&format!("{algo}-straight.json")),
            out(&format!("{algo}-ck.json")),
            out(&format!("{algo}-resumed.json")),
        );
        let s = train("4", &["--out", &straight]);
        assert_eq!(s["algo"], algo);
        assert_eq!(s["env_steps"], 40);
        assert!(s["return"].as_f64().is_some_and(f64::is_finite), "{s}");
        assert_ne!(s["learned"]["m_arm"].as_f64(), Some(3.0), "{s}");
        train("2", &["--out", &out("first.json"), "--checkpoint", &ck]);
        let r = train("4", &["--out", &resumed, "--resume", &ck]);
        assert_eq!(r["return"], s["return"]);
        let read = |p: &str| std::fs::read_to_string(p).expect("written");
        assert_eq!(read(&straight), read(&resumed), "{algo}: resumed bitwise");
    }
    let o = common::joule(&[
        "train",
        "tests/plan/swing.joule",
        "--reward",
        "lift",
        "--algo",
        "shac",
        "--explore",
        "0.3",
    ]);
    common::fails_with_hint(
        &o,
        "`--explore` does not apply to the `trajopt` policy `plan`",
    );
}

/// `--planner-model`: `joule train` of a planner whose model is a scene of
/// its own (the world has no planner), resumed only on the same model; the
/// learned params drive `joule run` in that world; models that do not fit
/// are refused before any work, with hints.
#[test]
fn joule_train_and_run_a_planner_on_a_model_of_its_own() {
    let out = |name: &str| common::temp(name).display().to_string();
    let train =
        |iters: &str, extra: &[&str]| train_swing("tests/plan/swing_world.joule", iters, extra);
    let json = |o: &std::process::Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    let model = ["--planner-model", "tests/plan/swing.joule"];
    let (straight, ck, resumed) = (
        out("own-straight.json"),
        out("own-ck.json"),
        out("own-resumed.json"),
    );
    let s = json(&train("3", &[&model[..], &["--out", &straight]].concat()));
    assert_eq!(s["policy"], "plan");
    assert_ne!(s["learned"]["m_arm"].as_f64(), Some(3.0), "{s}");
    json(&train(
        "2",
        &[
            &model[..],
            &["--out", &out("own-first.json"), "--checkpoint", &ck],
        ]
        .concat(),
    ));
    json(&train(
        "3",
        &[&model[..], &["--out", &resumed, "--resume", &ck]].concat(),
    ));
    let read = |p: &str| std::fs::read_to_string(p).expect("written");
    assert_eq!(
        read(&straight),
        read(&resumed),
        "a resumed run is the straight one"
    );
    common::fails_with_hint(
        &train("3", &["--out", &resumed, "--resume", &ck]),
        "resume with the model the checkpoint planned on",
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "tests/plan/swing_world.joule",
            "--planner",
            "plan",
            "--steps",
            "3",
            "--json",
        ];
        args.extend_from_slice(extra);
        common::joule(&args)
    };
    let r = json(&run(
        &[&model[..], &["--planner-learned", &straight]].concat()
    ));
    assert_eq!(r["planner"]["plans"], 3);
    common::fails_with_hint(
        &run(&["--planner-model", "tests/plan/swing_torque.joule"]),
        "it must plan the world's controls",
    );
    // Without its model, the world has no planner.
    common::fails_with_hint(&run(&[]), "the scene has no `trajopt` policy");
    common::fails_with_hint(
        &train("1", &["--planner-model", "tests/plan/swing_torque.joule"]),
        "it must plan the world's controls",
    );
    let o = common::joule(&[
        "train",
        "tests/plan/swing.joule",
        "--reward",
        "lift",
        "--planner-model",
        "tests/plan/swing_world.joule",
    ]);
    common::fails_with_hint(&o, "declare the planner in the model's scene");
}

/// Records 20 steps of `scene`'s planner `plan` with their states, the
/// demonstration the imitation tests learn from.
fn record_demonstration(scene: &str, demo: &str) {
    let o = common::joule(&[
        "run",
        scene,
        "--planner",
        "plan",
        "--steps",
        "20",
        "--out",
        demo,
        "--state",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Learning a planner's cost from one demonstration: an expert planner
/// (the declared `w_u = 0.5, target = 1`) is recorded; `joule imitate`
/// starts the learner's cost at `w_u = 2, target = 0.2` and recovers the
/// expert's weights by matching its trajectory through the optimiser, and
/// `--algo bc` (DiffTOP's objective: the plans from the demonstration's
/// states against the controls it applied) recovers them too.
#[test]
fn joule_imitate_recovers_a_planners_cost_from_one_demonstration() {
    let demo = common::temp("lqr-demo.npz").display().to_string();
    let learned = common::temp("lqr-learned.json").display().to_string();
    record_demonstration("tests/plan/lqr.joule", &demo);
    // Each way from the same wrong cost: the closed loop matched step by
    // step, and the plans from the demonstration's states cloned.
    let imitate = |how: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "imitate",
            "tests/plan/lqr.joule",
            "--expert",
            &demo,
            "--planner-param",
            "w_u=2",
            "--planner-param",
            "target=0.2",
            "--iters",
            "1000",
            "--out",
            &learned,
            "--json",
        ];
        args.extend_from_slice(how);
        let o = common::joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let (w, target) = (
            v["learned"]["w_u"].as_f64().unwrap(),
            v["learned"]["target"].as_f64().unwrap(),
        );
        assert!((w - 0.5).abs() < 1e-4 && (target - 1.0).abs() < 1e-4, "{v}");
        assert!(v["return"].as_f64().unwrap() > -1e-10, "{v}");
        v
    };
    let v = imitate(&["--match", "x", "--batch", "1"]);
    assert_eq!(v["objective"], "imitation");
    let v = imitate(&["--algo", "bc", "--batch", "2"]);
    assert_eq!(
        (&v["algo"], &v["objective"]),
        (&"bc".into(), &"cloning".into())
    );
    assert_eq!(
        (v["plans"].as_u64(), v["env_steps"].as_u64()),
        (Some(20_000), Some(0))
    );
    assert!(v["first_return"].as_f64().unwrap() < -1e-2, "{v}");
}

/// A planner built from the library checks its settings before any work:
/// no horizon, iteration or hold of 0, at most 2000 variables, learned
/// params that exist.
#[test]
fn planner_settings_are_checked_before_planning() {
    let scene = scene("lqr");
    let make = |horizon: usize, iters: usize, hold: usize, learn: Vec<usize>| {
        let mut c = PlannerConfig::new(Objective::reward("cost"), horizon, iters);
        c.hold = hold;
        c.learn = learn;
        Planner::new(&scene, c, 1).err().map(|e| e.0)
    };
    assert!(make(0, 4, 1, vec![]).is_some());
    assert!(make(10, 0, 1, vec![]).is_some());
    assert!(make(10, 4, 0, vec![]).is_some());
    assert!(make(3000, 4, 1, vec![])
        .expect("refused")
        .contains("3000 variables"));
    assert!(
        make(3000, 4, 2, vec![]).is_none(),
        "1500 held controls plan"
    );
    assert!(make(10, 4, 1, vec![99]).expect("refused").contains("99"));
}

/// A planner's cost cloned from one demonstration
/// (`scenes/reacher_planner.joule`, `joule imitate --algo bc`): the control
/// error falls by 40 % in 8 steps from a cost 10 times too effort-averse, the file holds the
/// learned params and those set apart (`--planner-param`) only, so a run in
/// a world whose target moved (`--param`) plans for that target.
#[test]
fn a_planners_cost_cloned_from_one_demonstration_follows_a_moved_target() {
    let scene = "scenes/reacher_planner.joule";
    let (demo, learned) = (
        common::temp("reacher-demo.npz").display().to_string(),
        common::temp("reacher-cloned.json").display().to_string(),
    );
    record_demonstration(scene, &demo);
    let o = common::joule(&[
        "imitate",
        scene,
        "--policy",
        "plan",
        "--algo",
        "bc",
        "--expert",
        &demo,
        "--planner-param",
        "w_effort=0.2",
        "--planner-param",
        "gear=0.05",
        "--iters",
        "8",
        "--lr",
        "0.1",
        "--batch",
        "2",
        "--out",
        &learned,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let (first, last) = (
        v["first_return"].as_f64().unwrap(),
        v["return"].as_f64().unwrap(),
    );
    assert!(
        last > 0.6 * first,
        "control error {} from {}",
        -last,
        -first
    );
    let w = v["learned"]["w_effort"].as_f64().unwrap();
    assert!(w < 0.2 * 0.7, "{v}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&learned).expect("written")).expect("json");
    let mut names: Vec<&str> = file["params"]
        .as_object()
        .expect("params")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(names, ["gear", "w_effort", "w_speed"]);
    let tip = |target: &[&str]| {
        let mut args = vec![
            "run",
            scene,
            "--planner",
            "plan",
            "--planner-learned",
            &learned,
            "--steps",
            "40",
            "--json",
        ];
        args.extend_from_slice(target);
        let o = common::joule(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let t = &v["observe"]["to_target"][0];
        (0..2)
            .map(|k| t[k].as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt()
    };
    assert!(tip(&[]) < 0.01, "misses the demonstration's target");
    let moved = tip(&["--param", "target_x=-0.05", "--param", "target_y=0.15"]);
    assert!(moved < 0.01, "misses the moved target by {moved} m");
}
