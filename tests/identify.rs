//! System identification: parameters in the initial state (a particle's `x`
//! and `v`, an affine body's origin, rotation, velocity and spin, a free
//! joint's origin and rates, joints' coordinates and rates), in masses
//! (particles' and affine bodies', both integrators; joint trees' links,
//! their centres of mass and inertias), gravity and rest values. Their
//! gradients against central finite differences (f64, and f32 within its
//! bound), a param mass or gravity moving exactly as the same one declared, the start following its parameters until the first step,
//! resets drawing from it, and `joule optimize --match` recovering a launch,
//! a box's mass and friction, a double pendulum's mass and damping, and
//! gravity from recordings.

use joule_compiler::compiled::Backend;
use joule_compiler::model::{Model, Precision};
use joule_runtime::{Objective, Scene};

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{joule, temp};

/// A case's model with this integrator (implicit: solved to round-off, so
/// finite differences measure the physics) and precision. The integrator is
/// set in the source, as the compiler picks what depends on it (the
/// stiffness of `rigidity`, the step's velocities in energies).
fn model(case: &str, implicit: bool, precision: Precision) -> Model {
    let text = std::fs::read_to_string(format!("tests/identify/{case}.joule")).expect("case");
    let integrator = if implicit {
        "implicit_euler(iterations = 60, tolerance = 1e-15)"
    } else {
        "symplectic_euler"
    };
    let text = match text.find("integrator = ") {
        Some(at) => {
            let end = at + text[at..].find('\n').expect("a line");
            format!("{}integrator = {integrator}{}", &text[..at], &text[end..])
        }
        None => text.replacen(
            "settings {",
            &format!("settings {{\n    integrator = {integrator}"),
            1,
        ),
    };
    let checked = joule::check_source(&format!("{case}.joule"), &text);
    assert!(checked.ok(), "{}", checked.render_diagnostics(false, 10));
    let mut m = checked.model.expect("a model");
    m.settings.precision = precision;
    m
}

/// The case's loss after `steps` steps with parameter `i` set to `value`.
fn loss(scene: &Scene, steps: usize, i: usize, value: f64) -> f64 {
    let name = &scene.model().params[i].name;
    let mut sim = scene.batch_threads(1, 1);
    sim.set_param(name, value).expect("param");
    sim.rollout(steps);
    sim.output(&loss_name(scene))[0][0]
}

/// Every parameter's adjoint gradient against central differences of the
/// rollout (steps `step` relative to the parameter, at least `step`), within
/// `tol` relative to the gradient's scale.
fn check_case(case: &str, implicit: bool, precision: Precision, steps: usize, step: f64, tol: f64) {
    let scene =
        Scene::from_model(model(case, implicit, precision), Backend::Jit).expect("compiles");
    let l = loss_name(&scene);
    let g = gradient(case, implicit, precision, steps);
    let scale = g.iter().map(|p| p.abs()).fold(1e-3, f64::max);
    for (i, p) in scene.model().params.iter().enumerate() {
        let h = step * p.value.abs().max(1.0);
        let fd =
            (loss(&scene, steps, i, p.value + h) - loss(&scene, steps, i, p.value - h)) / (2.0 * h);
        let err = (g[i] - fd).abs() / scale;
        assert!(
            err < tol,
            "{case} (implicit {implicit}, {precision:?}): d{}/d{} = {} vs central difference {fd} (error {err:.1e} of {scale:.2e})",
            l,
            p.name,
            g[i]
        );
        assert!(g[i] != 0.0, "{case}: {} has an effect", p.name);
    }
}

/// The central-difference cases: case, implicit, steps, relative finite
/// difference step, tolerance (of the gradient's scale).
const CENTRAL_DIFFERENCES: &[(&str, bool, usize, f64, f64)] = &[
    // 1 s: the ball flies, lands on the floor and bounces (implicit: the
    // floor is too stiff for an explicit step). The landing makes the loss
    // curve sharply: small steps, and truncation of 1e-6 of the scale.
    ("particle_launch", true, 500, 1e-6, 1e-5),
    // An affine body's pose and rates, both integrators.
    ("affine_box", false, 60, 1e-5, 1e-6),
    ("affine_box", true, 60, 1e-5, 1e-6),
    // A free joint's coordinates (its rotation's too) and rates.
    ("free_joint_tree", true, 60, 1e-5, 1e-6),
    ("free_rotation", true, 60, 1e-5, 1e-6),
    // Joints' initial coordinates and rates.
    ("hinged_arm", true, 300, 1e-5, 1e-6),
    // Masses (the inertia they add) and friction.
    ("tethered_box", true, 300, 1e-6, 1e-6),
    ("double_pendulum", true, 300, 1e-5, 1e-6),
    // A link's mass in joint coordinates (its solver's tolerance 1e-10).
    ("link_masses", true, 300, 1e-5, 1e-5),
    // A leg's mass in a tree hanging from a free joint (its prediction's
    // momentum shift weighs the scaled masses).
    ("floating_masses", true, 200, 1e-4, 1e-5),
    // A link's centre of mass and inertia: its affine mass matrix in the
    // step (and the floating tree's shift, by its first moments).
    ("link_inertia", true, 200, 1e-4, 1e-5),
    // Masses scaling symplectic Euler's accelerations, and implicitly.
    ("springs", false, 500, 1e-6, 1e-6),
    ("springs", true, 500, 1e-6, 1e-6),
    // Gravity's added weight, both integrators.
    ("gravity", true, 300, 1e-5, 1e-6),
    ("gravity", false, 300, 1e-5, 1e-6),
    // Contact geometry: the contact energies' arguments.
    ("contact_geometry", true, 200, 1e-6, 1e-6),
    // A body's centre of mass and inertia, both integrators.
    ("inertia", true, 200, 1e-6, 1e-6),
    ("inertia", false, 200, 1e-6, 1e-6),
    // A rest length that reads a param, both integrators.
    ("rest_length", true, 300, 1e-6, 1e-6),
    ("rest_length", false, 300, 1e-6, 1e-6),
];

#[test]
fn every_kind_of_param_matches_central_differences() {
    for &(case, implicit, steps, step, tol) in CENTRAL_DIFFERENCES {
        check_case(case, implicit, Precision::F64, steps, step, tol);
    }
}

/// A case's adjoint gradient with respect to every parameter.
fn gradient(case: &str, implicit: bool, precision: Precision, steps: usize) -> Vec<f64> {
    let scene =
        Scene::from_model(model(case, implicit, precision), Backend::Jit).expect("compiles");
    let g = scene
        .batch_threads(1, 1)
        .gradient(&Objective::loss(&loss_name(&scene)), steps)
        .expect("gradient");
    g.params.iter().map(|p| p[0]).collect()
}

/// A case's loss: its last objective.
fn loss_name(scene: &Scene) -> String {
    let last = scene.model().objectives.last().expect("a loss");
    last.name.clone()
}

#[test]
fn a_joint_started_at_q_moves_as_that_pose_declared() {
    // A capsule on a hinge at the origin about y, 0.5 rad from the
    // horizontal through `q`, against the same capsule declared there.
    let pendulum = |x: &str, angle: &str, q: &str| {
        format!(
            "settings {{ dt = 1e-3  integrator = implicit_euler(iterations = 40, tolerance = 1e-12) }}
             body arm {{ shape = capsule(0.03, 0.4), mass = 1, x = {x},
                 rotation = axis_angle(vec3(0, 1, 0), {angle}),
                 joint = hinge(world, at = vec3(0, 0, 0), axis = vec3(0, 1, 0)) {q} }}
             observe tip = arm.point(vec3(0, 0, 0.2))"
        )
    };
    let tip = |text: &str| {
        let scene = Scene::compile(text).expect("compiles");
        let mut sim = scene.batch_threads(1, 1);
        let mut path = vec![];
        for _ in 0..500 {
            sim.step();
            path.extend(sim.output("tip").into_iter().map(|c| c[0]));
        }
        path
    };
    let started = tip(&pendulum("vec3(0.2, 0, 0)", "90deg", "q = 0.5"));
    let declared = tip(&pendulum(
        &format!("vec3({}, 0, {})", 0.2 * 0.5f64.cos(), -0.2 * 0.5f64.sin()),
        "90deg + 0.5",
        "",
    ));
    let gap = started
        .iter()
        .zip(&declared)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(gap < 1e-9, "{gap:e}");
    assert!(
        started[2].abs() > 0.05,
        "it starts turned: {:?}",
        &started[..3]
    );
}

#[test]
fn a_gravity_that_reads_a_param_moves_as_that_gravity_declared() {
    let text = std::fs::read_to_string("tests/identify/gravity.joule").expect("case");
    let explicit = text.replace(
        "integrator = implicit_euler(iterations = 30, tolerance = 1e-14)",
        "integrator = symplectic_euler",
    );
    assert_ne!(explicit, text);
    // Symplectic Euler adds the weight's force as it adds gravity's: the
    // same numbers. Implicit steps agree to their tolerance.
    for (text, tol) in [(text, 1e-9), (explicit, 0.0)] {
        let param = positions_after(&text, Some(("g", 3.71)), 300);
        let declared = positions_after(
            &text.replace("vec3(0, 0, -g)", "vec3(0, 0, -3.71)"),
            None,
            300,
        );
        let unchanged = positions_after(&text, None, 300);
        let gap = param
            .iter()
            .zip(&declared)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let moved = param
            .iter()
            .zip(&unchanged)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(gap <= tol, "{gap:e} from the declared gravity");
        assert!(moved > 1e-2, "gravity matters ({moved:e})");
    }
}

#[test]
fn single_precision_gradients_agree_with_double_within_their_rounding() {
    // The f64 gradients are checked against central differences above. The
    // box's friction gradient is 4% off in f32 with its mass declared too
    // (stick and slip of its contacts round differently).
    for (case, implicit, steps, tol) in [
        ("particle_launch", true, 100, 1e-3),
        ("affine_box", false, 40, 1e-3),
        ("tethered_box", true, 100, 5e-2),
        ("double_pendulum", true, 100, 1e-2),
        ("springs", false, 200, 1e-3),
        ("link_masses", true, 100, 1e-2),
        // A thrown, spinning floating tree: f32's gradients are 1-3 % off
        // (the leg's mass in floating_masses 2.4 %).
        ("link_inertia", true, 100, 2e-2),
        ("rest_length", false, 200, 1e-3),
    ] {
        let wide = gradient(case, implicit, Precision::F64, steps);
        let narrow = gradient(case, implicit, Precision::F32, steps);
        let scale = wide.iter().map(|g| g.abs()).fold(1e-3, f64::max);
        for (w, n) in wide.iter().zip(&narrow) {
            assert!(
                (w - n).abs() < tol * scale,
                "{case}: f32 {narrow:?} vs f64 {wide:?}"
            );
        }
    }
}

/// The positions after `steps` steps of a case's text, with `param` set.
fn positions_after(text: &str, param: Option<(&str, f64)>, steps: usize) -> Vec<f64> {
    let scene = Scene::compile(text).expect("compiles");
    let mut sim = scene.batch_threads(1, 1);
    if let Some((name, value)) = param {
        sim.set_param(name, value).expect("param");
    }
    sim.rollout(steps);
    sim.positions(0)
}

#[test]
fn a_mass_that_reads_a_param_moves_as_that_mass_declared() {
    // The particle's and the body's (with contact, friction and its
    // rigidity, whose stiffness follows the mass) within round-off, in
    // symplectic Euler (springs) too; a link's in joint coordinates to its
    // solver's tolerance; a centre of mass and inertia. Each row: the
    // params set, and the text that declares the same values.
    let rows: &[Declared] = &[
        (
            "double_pendulum",
            &[("m2", 0.8)],
            &[("mass = m2", "mass = 0.8")],
            1e-9,
        ),
        (
            "tethered_box",
            &[("m", 3.1)],
            &[("mass = m", "mass = 3.1")],
            1e-9,
        ),
        (
            "springs",
            &[("m_ball", 0.8), ("m_box", 1.7)],
            &[
                ("mass = m_ball", "mass = 0.8"),
                ("mass = m_box", "mass = 1.7"),
            ],
            1e-9,
        ),
        (
            "link_masses",
            &[("m_lower", 1.6)],
            &[("mass = m_lower", "mass = 1.6")],
            1e-7,
        ),
        (
            "floating_masses",
            &[("m_leg", 0.9)],
            &[("mass = m_leg", "mass = 0.9")],
            1e-9,
        ),
        (
            "link_inertia",
            &[("iy", 0.004), ("cz", -0.03)],
            &[
                ("vec3(0, iy, 0)", "vec3(0, 0.004, 0)"),
                ("vec3(0, 0, cz)", "vec3(0, 0, -0.03)"),
            ],
            1e-9,
        ),
        (
            "inertia",
            &[("iz", 0.03), ("cx", -0.01)],
            &[
                ("vec3(0, 0, iz)", "vec3(0, 0, 0.03)"),
                ("vec3(cx, 0, 0)", "vec3(-0.01, 0, 0)"),
            ],
            1e-9,
        ),
    ];
    for &(case, params, declare, tol) in rows {
        let text = std::fs::read_to_string(format!("tests/identify/{case}.joule")).expect("case");
        moves_as_declared(case, &text, params, declare, tol);
    }
}

#[test]
fn masses_and_inertias_move_as_declared_in_symplectic_euler() {
    // The reduced symplectic step's mass matrix, velocity-product and weight
    // terms take the link's affine mass matrix from its params (floating
    // trees; the params' other links' and the torso's masses declared); a
    // particle outside the tree has its force divided by its scale; an
    // affine body's forces are turned by `W0 W(p)^-1`.
    let rows: &[Declared] = &[
        (
            "tree_and_ball",
            &[("m", 2.5)],
            &[("mass = m", "mass = 2.5")],
            1e-12,
        ),
        (
            "inertia",
            &[("iz", 0.03), ("cx", -0.01)],
            &[
                ("vec3(0, 0, iz)", "vec3(0, 0, 0.03)"),
                ("vec3(cx, 0, 0)", "vec3(-0.01, 0, 0)"),
            ],
            1e-12,
        ),
        (
            "floating_masses",
            &[("m_leg", 0.9)],
            &[("mass = m_leg", "mass = 0.9")],
            1e-12,
        ),
        (
            "link_inertia",
            &[("iy", 0.004), ("cz", -0.03)],
            &[
                ("vec3(0, iy, 0)", "vec3(0, 0.004, 0)"),
                ("vec3(0, 0, cz)", "vec3(0, 0, -0.03)"),
            ],
            1e-12,
        ),
    ];
    for &(case, params, declare, tol) in rows {
        let text = std::fs::read_to_string(format!("tests/identify/{case}.joule")).expect("case");
        let at = text.find("integrator = ").expect("an integrator");
        let end = at + text[at..].find('\n').expect("a line");
        let text = format!(
            "{}integrator = symplectic_euler{}",
            &text[..at],
            &text[end..]
        );
        moves_as_declared(case, &text, params, declare, tol);
    }
}

/// Runs `text` 300 steps with `params` set and the text with `declare`'s
/// replacements (the same values declared): their positions within `tol`,
/// and the values matter.
fn moves_as_declared(
    case: &str,
    text: &str,
    params: &[(&str, f64)],
    declare: &[(&str, &str)],
    tol: f64,
) {
    let mut declared = text.to_string();
    for (from, to) in declare {
        declared = declared.replace(from, to);
    }
    assert_eq!(declared.matches(declare[0].1).count(), 1, "{case}");
    let scene = Scene::compile(text).expect("compiles");
    let mut sim = scene.batch_threads(1, 1);
    for (name, value) in params {
        sim.set_param(name, *value).expect("param");
    }
    sim.rollout(300);
    let param = sim.positions(0);
    let gap = max_gap(&param, &positions_after(&declared, None, 300));
    let moved = max_gap(&param, &positions_after(text, None, 300));
    assert!(gap < tol, "{case}: {gap:e} from the declared values");
    assert!(moved > 1e-3, "{case}: the values matter ({moved:e})");
}

/// A case's params set, the text replacements that declare the same
/// values, and the largest difference allowed between the two runs.
type Declared = (
    &'static str,
    &'static [(&'static str, f64)],
    &'static [(&'static str, &'static str)],
    f64,
);

/// The largest difference of two vectors' components.
fn max_gap(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_start_follows_its_parameters_until_the_first_step() {
    let m = model("particle_launch", true, Precision::F64);
    let scene = Scene::from_model(m, Backend::Jit).expect("compiles");
    let mut sim = scene.batch_threads(2, 1);
    // The declared start: h = 0.5, v = (2, 0.5, 3).
    assert_eq!(sim.positions(0), [0.0, 0.0, 0.5]);
    sim.set_param_env("vx", 1, -4.0).expect("vx");
    sim.set_param("h", 1.25).expect("h");
    assert_eq!(sim.positions(0), [0.0, 0.0, 1.25]);
    assert_eq!(sim.velocities(0), [2.0, 0.5, 3.0]);
    assert_eq!(sim.velocities(1), [-4.0, 0.5, 3.0]);
    // A state given, or a step taken, ends the start: parameters no longer move it.
    sim.set_state(1, &[0.0, 0.0, 0.8], &[0.0; 3]);
    sim.step();
    let after = (sim.positions(0), sim.positions(1));
    sim.set_param("h", 0.2).expect("h");
    assert_eq!((sim.positions(0), sim.positions(1)), after);
    // Nor does a gradient from there carry the start's derivative: a loss
    // that depends on the start only through h then has no gradient in it.
    let g = sim.gradient(&Objective::loss("miss"), 1).expect("gradient");
    let fresh = scene
        .batch_threads(1, 1)
        .gradient(&Objective::loss("miss"), 1)
        .expect("gradient");
    assert_eq!(g.params[0][0], 0.0, "h acts through the start only");
    assert!(fresh.params[0][0] != 0.0, "from the start it does");
}

#[test]
fn a_tape_begun_at_the_start_carries_its_derivative_too() {
    // A closed-loop tape (zero controls here) from the start: the same
    // parameter gradients as the rollout's, to round-off.
    let scene = Scene::from_model(model("affine_box", true, Precision::F64), Backend::Jit)
        .expect("compiles");
    let steps = 20;
    let whole = scene
        .batch_threads(1, 1)
        .gradient(&Objective::loss("corner"), steps)
        .expect("gradient");
    let taped = common::taped_loss_gradient(&scene, "corner", steps);
    for (a, b) in taped.params.iter().zip(&whole.params) {
        assert!(
            (a[0] - b[0]).abs() <= 1e-10 * b[0].abs(),
            "tape {a:?}, rollout {b:?}"
        );
    }
}

#[test]
fn checkpointed_gradients_are_the_recorded_ones() {
    // With no memory to record every state the reverse pass recomputes
    // segments from checkpoints: the same gradients, bit for bit.
    for (case, implicit) in [
        ("particle_launch", true),
        ("springs", false),
        ("hinged_arm", true),
        ("link_masses", true),
    ] {
        let scene = Scene::from_model(model(case, implicit, Precision::F64), Backend::Jit)
            .expect("compiles");
        let l = scene
            .model()
            .objectives
            .last()
            .expect("a loss")
            .name
            .clone();
        let gradient = |memory: usize| {
            let mut sim = scene.batch_threads(1, 1);
            sim.set_gradient_memory(memory);
            let g = sim.gradient(&Objective::loss(&l), 100).expect("gradient");
            (g.params, g.checkpoint_every)
        };
        let (kept, every) = gradient(usize::MAX);
        let (recomputed, k) = gradient(0);
        assert_eq!((every, k), (100, 10), "{case}");
        assert_eq!(kept, recomputed, "{case}");
    }
}

#[test]
fn a_start_that_params_would_break_is_refused() {
    // A non-finite start, a joint started outside its barrier range: an
    // error naming the row, and nothing written.
    let scene = Scene::compile(
        "param p = 1
         particle ball { x = vec3(0, 0, 1), v = vec3(1 / p, 0, 0), mass = 1 }",
    )
    .expect("compiles");
    let mut sim = scene.batch_threads(2, 1);
    let err = sim.set_param("p", 0.0).expect_err("infinite velocity").0;
    assert!(err.contains("ball.x.x") && err.contains("inf"), "{err}");
    assert_eq!(
        (sim.param("p", 0).expect("p"), sim.velocities(1)[0]),
        (1.0, 1.0)
    );
    let err = sim.write_params(&[2.0, 0.0]).expect_err("environment 1").0;
    assert!(err.contains("environment 1"), "{err}");
    assert_eq!(sim.param("p", 0).expect("p"), 1.0, "nothing written");
    let scene = Scene::compile(
        "settings { integrator = implicit_euler(iterations = 20, tolerance = 1e-8) }
         param theta = 0.1
         body arm { shape = capsule(0.03, 0.4), mass = 1, x = vec3(0.2, 0, 0),
             joint = hinge(world, at = vec3(0, 0, 0), axis = vec3(0, 1, 0)) in -0.5..0.5, q = theta }",
    )
    .expect("compiles");
    let mut sim = scene.batch_threads(1, 1);
    let err = sim.set_param_env("theta", 0, 0.9).expect_err("outside").0;
    assert!(err.contains("arm.q") && err.contains("-0.5..0.5"), "{err}");
    sim.set_param_env("theta", 0, 0.4).expect("inside");
    assert_eq!(sim.positions(0)[12], 0.4);
}

#[test]
fn a_reset_starts_from_the_parameters_it_draws() {
    let text = std::fs::read_to_string("tests/identify/particle_launch.joule").expect("case")
        + "\nreset { vx = uniform(-3, 3)  h = uniform(1, 1.5) }\n";
    let scene = Scene::compile(&text).expect("compiles");
    let mut sim = scene.batch_threads(4, 1);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    for e in 0..4 {
        sim.reset_env(e, 0.0, &mut rng);
        let (vx, h) = (
            sim.param("vx", e).expect("vx"),
            sim.param("h", e).expect("h"),
        );
        assert!((1.0..1.5).contains(&h) && (-3.0..3.0).contains(&vx));
        assert_eq!(sim.positions(e), [0.0, 0.0, h]);
        assert_eq!(sim.velocities(e), [vx, 0.5, 3.0]);
    }
}

/// `joule optimize --match OUTPUT=recording --wrt PARAMS` on a case from
/// its declared params, after recording `steps` steps at `truth`: every
/// param recovered within `tol`, the recording matched.
fn identify(case: &str, output: &str, steps: usize, truth: &[(&str, f64)], tol: f64) {
    let rec = temp(&format!("{case}.npz"));
    let scene = format!("tests/identify/{case}.joule");
    let mut args = vec![
        "run".to_string(),
        scene.clone(),
        "--steps".into(),
        steps.to_string(),
    ];
    for (name, value) in truth {
        args.extend(["--param".to_string(), format!("{name}={value}")]);
    }
    args.extend([
        "--out".to_string(),
        rec.to_str().expect("utf-8").into(),
        "--quiet".into(),
    ]);
    let o = joule(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wrt: Vec<&str> = truth.iter().map(|(n, _)| *n).collect();
    let o = joule(&[
        "optimize",
        &scene,
        "--match",
        &format!("{output}={}", rec.to_str().expect("utf-8")),
        "--wrt",
        &wrt.join(","),
        "--iters",
        "80",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for (name, truth) in truth {
        let got = v["params"][name].as_f64().expect("a value");
        assert!(
            (got - truth).abs() < tol,
            "{case}: {name} recovered {got}, recorded {truth}"
        );
    }
    assert!(
        v["objective"]["end"].as_f64().expect("end") < 1e-12,
        "{case}: {v}"
    );
}

#[test]
fn cli_identifies_a_boxs_mass_and_friction_from_its_recorded_slide() {
    // 2 s: it swings on its tether, turns and sticks; from m = 2, mu = 0.2.
    identify(
        "tethered_box",
        "corner",
        400,
        &[("m", 3.1), ("mu", 0.15)],
        1e-9,
    );
}

#[test]
fn cli_identifies_a_double_pendulums_mass_and_damping_from_its_swing() {
    // 2 s; from m2 = 0.5, damping = 0.05.
    identify(
        "double_pendulum",
        "tip",
        1000,
        &[("m2", 0.8), ("damping", 0.2)],
        1e-9,
    );
}

#[test]
fn cli_identifies_gravity_from_a_pendulums_swing() {
    // Half a second of the swing (the phase of a longer one makes the error
    // non-convex in g); from g = 9.81.
    identify("gravity", "bob_x", 100, &[("g", 3.71)], 1e-9);
}

#[test]
fn cli_identifies_masses_in_a_symplectic_euler_scene() {
    // From 0.5 and 1 kg: the ball's 1 s, the box's first half second (the
    // phase of its second makes the error non-convex in its mass).
    identify("springs", "ball_x", 500, &[("m_ball", 0.8)], 1e-9);
    identify("springs", "corner", 250, &[("m_box", 1.7)], 1e-9);
}

#[test]
fn cli_identifies_a_bodys_centre_of_mass_and_inertia() {
    // 0.5 s from cx = 0.02 m, iz = 0.04 kg m^2.
    identify(
        "inertia",
        "corner",
        100,
        &[("iz", 0.03), ("cx", -0.01)],
        1e-9,
    );
}

#[test]
fn cli_identifies_a_links_mass_and_hinge_damping_in_joint_coordinates() {
    // 0.3 s from 1 kg and 0.05, to the solver's tolerance.
    identify(
        "link_masses",
        "tip",
        300,
        &[("m_lower", 1.6), ("damping", 0.2)],
        1e-6,
    );
}

#[test]
fn cli_identifies_a_links_centre_of_mass_and_inertia_in_joint_coordinates() {
    // 0.3 s of a thrown, spinning body from cz = 0.02 m, iy = 0.0045 kg m^2,
    // to the solver's tolerance.
    identify(
        "link_inertia",
        "tip",
        150,
        &[("iy", 0.004), ("cz", -0.03)],
        1e-8,
    );
}

#[test]
fn a_rest_value_that_reads_a_param_is_that_param_times_the_rest_value() {
    // `rest(stretch * norm(..))` (the norm at the initial state, the param
    // at run time) moves exactly as `stretch * rest(norm(..))`, at a value
    // other than the declared one.
    let text = std::fs::read_to_string("tests/identify/rest_length.joule").expect("case");
    let inside = "rest(stretch * norm(p.x - q.x))";
    let factored = text.replace(inside, "stretch * rest(norm(p.x - q.x))");
    assert_ne!(factored, text);
    let param = Some(("stretch", 1.2));
    let (a, b) = (
        positions_after(&text, param, 300),
        positions_after(&factored, param, 300),
    );
    assert_eq!(a, b);
    assert!(max_gap(&a, &positions_after(&text, None, 300)) > 1e-3);
}

#[test]
fn a_free_joints_rotation_moves_as_that_rotation_declared() {
    // The capsule's tip over 1.5 s (its coordinates differ: the declared
    // rotation is the coordinates' origin, the param's a turn from it).
    let text = std::fs::read_to_string("tests/identify/free_rotation.joule").expect("case");
    let declared = text.replace("vec3(0.3, 1, 0), tilt)", "vec3(0.3, 1, 0), 1.1)");
    assert_ne!(declared, text);
    let tip = |text: &str, param: Option<f64>| -> Vec<f64> {
        let scene = Scene::compile(text).expect("compiles");
        let mut sim = scene.batch_threads(1, 1);
        if let Some(p) = param {
            sim.set_param("tilt", p).expect("param");
        }
        sim.rollout(300);
        sim.output("tip")[0].clone()
    };
    let param = tip(&text, Some(1.1));
    let gap = max_gap(&param, &tip(&declared, None));
    assert!(gap < 1e-12, "{gap:e} from the declared rotation");
    assert!(
        max_gap(&param, &tip(&text, None)) > 1e-2,
        "the rotation matters"
    );
}

#[test]
fn cli_identifies_a_free_joints_initial_rotation() {
    // 0.5 s of a thrown, spinning capsule from a tilt of 0.4 rad.
    identify("free_rotation", "tip", 100, &[("tilt", 1.1)], 1e-9);
}

#[test]
fn cli_identifies_a_rest_length_that_reads_a_param() {
    // 0.8 s of a weight swinging on a spring from stretch 1.
    identify("rest_length", "position", 400, &[("stretch", 1.2)], 1e-9);
}

#[test]
fn cli_identifies_a_legs_mass_on_a_floating_body() {
    // 0.3 s of a thrown, spinning body from 0.5 kg: the momentum the leg
    // takes from the torso (2 kg) gives its mass.
    identify("floating_masses", "tip", 150, &[("m_leg", 0.9)], 1e-8);
}

#[test]
fn cli_identifies_a_hinged_arms_start_from_its_swing() {
    // 0.3 s; from theta = 0.3, spin = 1.
    identify(
        "hinged_arm",
        "tip",
        300,
        &[("theta", -0.4), ("spin", 2.5)],
        1e-9,
    );
}

#[test]
fn cli_identifies_a_launch_from_its_recorded_flight() {
    // A throw from 1.2 m at (3.7, 0.5, 1.4) m/s, recorded for 1.5 s (it
    // lands and bounces), identified from the declared h = 0.5, v = (2, 0.5, 3).
    let rec = temp("launch.npz");
    let scene = "tests/identify/particle_launch.joule";
    let o = joule(&[
        "run",
        scene,
        "--steps",
        "750",
        "--param",
        "h=1.2",
        "--param",
        "vx=3.7",
        "--param",
        "vz=1.4",
        "--out",
        rec.to_str().expect("utf-8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = joule(&[
        "optimize",
        scene,
        "--match",
        &format!("position={}", rec.to_str().expect("utf-8")),
        "--wrt",
        "h,vx,vz",
        "--iters",
        "60",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for (name, truth) in [("h", 1.2), ("vx", 3.7), ("vz", 1.4)] {
        let got = v["params"][name].as_f64().expect("a value");
        assert!(
            (got - truth).abs() < 1e-6,
            "{name}: recovered {got}, recorded {truth}"
        );
    }
    assert!(v["objective"]["end"].as_f64().expect("end") < 1e-10);
}

/// `joule optimize` on `scene` with these arguments after `--wrt`: its JSON.
fn optimize_json(args: &[&str]) -> serde_json::Value {
    let o = joule(&[&["optimize"], args, &["--json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn cli_identifies_a_driven_cart_pole_by_multiple_shooting() {
    // 3 s of the cart-pole with a mass halfway up its pole (0.3 kg at the
    // tip, 0.1 kg at the middle), pushed by a plan: the pole goes round, and
    // windows of 10 steps from the recorded states, replaying the recorded
    // pushes, give both masses back from 0.1 and 0.001 kg.
    let scene = "scenes/cartpole_rod.joule";
    let plan = temp("push.csv");
    let rows: String = (0..150)
        .map(|t| {
            let t = t as f64;
            format!("{t},{}\n", 0.7 * (0.15 * t).sin() + 0.3 * (0.71 * t).sin())
        })
        .collect();
    std::fs::write(&plan, format!("step,u\n{rows}")).expect("plan");
    let rec = temp("driven.npz");
    let (plan, rec) = (plan.to_str().expect("utf-8"), rec.to_str().expect("utf-8"));
    let run = |args: &[&str]| -> serde_json::Value {
        let o = joule(&[&["run", scene, "--steps", "150", "--json"], args].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    let recorded = run(&["--controls", plan, "--out", rec, "--state"]);
    // The recording's applied controls replay it exactly.
    let replayed = run(&["--controls", rec]);
    assert_eq!(replayed["observe"]["tip"], recorded["observe"]["tip"]);
    let track = format!("tip={rec}");
    let v = optimize_json(&[
        scene,
        "--match",
        &track,
        "--controls",
        rec,
        "--window",
        "10",
        "--wrt",
        "m_pole,m_rod",
        "--param",
        "m_pole=0.1",
        "--param",
        "m_rod=0.001",
        "--iters",
        "80",
    ]);
    for (name, truth) in [("m_pole", 0.3), ("m_rod", 0.1)] {
        let got = v["params"][name].as_f64().expect("a value");
        assert!(
            (got - truth).abs() < 1e-8,
            "{name} recovered {got}, recorded {truth}"
        );
    }
    assert!(v["objective"]["end"].as_f64().expect("end") < 1e-12, "{v}");
    assert_eq!(v["steps"], 10);
    assert_eq!(v["windows"], 15);
    // Windows need the recorded states, a length that fits, and the controls.
    let bare = temp("bare.npz");
    let bare = bare.to_str().expect("utf-8");
    run(&["--controls", plan, "--out", bare]);
    let fit = |file: &str, window: &str, controls: bool| {
        let track = format!("tip={file}");
        let mut args = vec![
            "optimize", scene, "--match", &track, "--window", window, "--wrt", "m_pole",
        ];
        if controls {
            args.extend(["--controls", file]);
        }
        joule(&args)
    };
    common::fails_with_hint(&fit(bare, "10", true), "has no `state.x`");
    common::fails_with_hint(&fit(rec, "0", true), "cannot cut");
    common::fails_with_hint(&fit(rec, "151", true), "cannot cut");
    common::fails_with_hint(&fit(rec, "10", false), "zero controls");
}
