//! Robots in joint coordinates against independent references: a hinge
//! pendulum's period against the closed form, the same double pendulum in
//! joint coordinates and as affine bodies held by stiff penalty hinges, and
//! momentum conservation of a free-floating astronaut under random internal
//! torques. Gradients through joints are checked against central differences
//! on the shipped `scenes/ant_joints.joule` (tests/gradients.rs), the
//! kinematics' derivatives in the runtime's unit tests.

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;

use common::Rng;
use joule_compiler::model::Settings;
use joule_runtime::Scene;
use std::path::Path;

fn scene(name: &str) -> Scene {
    Scene::from_path(&Path::new("tests/joints").join(name), Default::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A scene of tests/joints with its settings changed by `change` (a step,
/// substeps, the integrator) before it compiles.
fn scene_with(name: &str, change: impl FnOnce(&mut Settings)) -> Scene {
    let mut m = joule::check_path(&Path::new("tests/joints").join(name))
        .expect("readable")
        .model
        .expect("a model");
    change(&mut m.settings);
    Scene::from_model(m, Default::default()).expect("compiles")
}

/// A scene of tests/joints stepped by symplectic Euler (`symplectic`) or
/// its own integrator.
fn scene_stepped(name: &str, symplectic: bool) -> Scene {
    scene_with(name, |settings| {
        if symplectic {
            settings.integrator = joule_compiler::model::Integrator::SymplecticEuler;
        }
    })
}

#[test]
fn hinge_pendulum_period_matches_the_closed_form() {
    let s = scene("pendulum_period.joule");
    let mut sim = s.batch(1);
    let (dt, theta0, r, l, g): (f64, f64, f64, f64, f64) = (5e-4, 0.1, 0.05, 1.0, 9.81);
    let inertia = 0.4 * r * r + l * l;
    let period =
        2.0 * std::f64::consts::PI * (inertia / (g * l)).sqrt() * (1.0 + theta0 * theta0 / 16.0);
    // Times of the downward zero crossings of x, linearly interpolated.
    let mut crossings = vec![];
    let mut last = theta0.sin();
    for k in 1..=(3.5 * period / dt) as usize {
        sim.step();
        let x = sim.output("swing")[0][0];
        if last > 0.0 && x <= 0.0 {
            crossings.push((k as f64 - x / (x - last)) * dt);
        }
        last = x;
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    assert!(crossings.len() >= 3, "{crossings:?}");
    let measured = (crossings[crossings.len() - 1] - crossings[0]) / (crossings.len() - 1) as f64;
    let err = (measured - period).abs() / period;
    println!("period {measured} s, closed form {period} s, relative error {err:e}");
    assert!(err < 1e-3, "period {measured} vs {period}");
}

/// The compound double pendulum of `double_pendulum_joints.joule` (two
/// uniform capsules, radius `r`, cylinder `l`, mass 1, hinged end to end,
/// released from the horizontal) integrated by RK4 at `dt` from its
/// Lagrangian: angles from the downward vertical, the tip's (x, z) per
/// `every` steps over `steps`.
fn double_pendulum_reference(dt: f64, steps: usize, every: usize) -> Vec<[f64; 2]> {
    let (m, r, l, g) = (1.0f64, 0.03f64, 0.4f64, 9.81f64);
    let pi = std::f64::consts::PI;
    // The capsule's moment about a transverse axis through its centre: the
    // cylinder's plus two hemispheres' (centroid 3r/8 from the flat face,
    // second moment r^2/5 along the axis, 83/320 m r^2 across about it).
    let (vc, vh) = (pi * r * r * l, 2.0 / 3.0 * pi * r.powi(3));
    let (mc, mh) = (m * vc / (vc + 2.0 * vh), m * vh / (vc + 2.0 * vh));
    let cylinder = mc * (r * r / 4.0 + l * l / 12.0);
    let d = l / 2.0 + 3.0 * r / 8.0;
    let inertia = cylinder + 2.0 * mh * (83.0 / 320.0 * r * r + d * d);
    let a = l / 2.0;
    let f = |y: [f64; 4]| {
        let ([p1, p2, w1, w2], delta) = (y, y[0] - y[1]);
        let (m11, m22, m12) = (
            m * a * a + inertia + m * l * l,
            m * a * a + inertia,
            m * l * a * delta.cos(),
        );
        let b1 = -m * l * a * delta.sin() * w2 * w2 - m * g * (a + l) * p1.sin();
        let b2 = m * l * a * delta.sin() * w1 * w1 - m * g * a * p2.sin();
        let det = m11 * m22 - m12 * m12;
        [
            w1,
            w2,
            (m22 * b1 - m12 * b2) / det,
            (m11 * b2 - m12 * b1) / det,
        ]
    };
    let mut y = [pi / 2.0, pi / 2.0, 0.0, 0.0];
    let mut out = vec![];
    for k in 1..=steps {
        let add = |y: [f64; 4], d: [f64; 4], c: f64| std::array::from_fn(|i| y[i] + c * d[i]);
        let k1 = f(y);
        let k2 = f(add(y, k1, dt / 2.0));
        let k3 = f(add(y, k2, dt / 2.0));
        let k4 = f(add(y, k3, dt));
        y = std::array::from_fn(|i| y[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        if k % every == 0 {
            out.push([
                l * (y[0].sin() + y[1].sin()),
                -l * (y[0].cos() + y[1].cos()),
            ]);
        }
    }
    out
}

/// The largest distance over 0.5 s between the tip of `name`'s double
/// pendulum (stepped at 1 ms / `substeps`) and the reference.
fn double_pendulum_error(name: &str, substeps: u32, reference: &[[f64; 2]]) -> f64 {
    tip_error(
        &scene_with(name, |settings| settings.substeps = substeps),
        reference,
    )
}

/// The largest distance between the tip of a double pendulum's scene `s`
/// and the reference, a step per sample; the run reports no event.
fn tip_error(s: &Scene, reference: &[[f64; 2]]) -> f64 {
    let name = &s.model().title;
    let mut sim = s.batch(1);
    let mut worst: f64 = 0.0;
    for want in reference {
        sim.step();
        let tip = sim.output("tip");
        worst = worst.max((tip[0][0] - want[0]).hypot(tip[2][0] - want[1]));
    }
    assert!(sim.events.is_empty(), "{name:?}: {:?}", sim.events);
    worst
}

/// The double pendulum in joint coordinates converges to the solution of
/// its Lagrangian's equations (RK4 at 10 us) at first order in the step,
/// and its tip stays closer to it than the same system's as affine bodies
/// held by penalty hinges (whose straight-line prediction drags rotations).
#[test]
fn double_pendulum_converges_to_its_equations_of_motion() {
    let reference = double_pendulum_reference(1e-5, 50_000, 100);
    let coarse = double_pendulum_error("double_pendulum_joints.joule", 1, &reference);
    let fine = double_pendulum_error("double_pendulum_joints.joule", 4, &reference);
    let affine = double_pendulum_error("double_pendulum_affine.joule", 1, &reference);
    println!("largest tip error over 0.5 s: joints {coarse:e} m at 1 ms, {fine:e} m at 0.25 ms; affine {affine:e} m at 1 ms");
    assert!(coarse < 5e-3, "{coarse} m off at 1 ms");
    assert!(
        fine < coarse / 3.0,
        "{fine} m at h/4 vs {coarse} m at h: not first order"
    );
    assert!(
        coarse < affine / 2.0,
        "joints {coarse} m off, affine bodies {affine} m"
    );
}

/// `rk4` is the classic fourth-order Runge-Kutta method over the joint
/// coordinates, each stage's accelerations the solve of the linear step at
/// the stage's state: the double pendulum stepped by it at 1 ms follows the
/// same method applied to its Lagrangian's equations at 1 ms (in absolute
/// angles: a linear change of the coordinates, which the method commutes
/// with) to rounding over 0.5 s of wide swings, where implicit Euler is
/// millimetres off; and its error against the 10 us solution is far below
/// Euler's (fourth order against first). Gradients through it are refused
/// with the reason.
#[test]
fn rk4_is_the_classic_runge_kutta_of_the_equations_of_motion() {
    let rk4 = |settings: &mut Settings| {
        settings.integrator = joule_compiler::model::Integrator::RungeKutta4 {
            iterations: 40,
            tolerance: 1e-13,
        }
    };
    let s = scene_with("double_pendulum_joints.joule", rk4);
    let worst = tip_error(&s, &double_pendulum_reference(1e-3, 500, 1));
    let fine = double_pendulum_reference(1e-5, 50_000, 100);
    let converged = tip_error(&s, &fine);
    let euler = double_pendulum_error("double_pendulum_joints.joule", 1, &fine);
    println!("rk4 at 1 ms: {worst:e} m from the equations' RK4 at 1 ms, {converged:e} m from their solution; implicit Euler {euler:e} m");
    assert!(worst < 1e-10, "{worst} m from the same method");
    assert!(
        converged < euler / 1000.0,
        "rk4 {converged} m, Euler {euler} m"
    );
    let err = s
        .batch(1)
        .gradient(&joule_runtime::Objective::loss("anything"), 5)
        .expect_err("refused");
    assert!(err.0.contains("rk4"), "{}", err.0);
}

/// Linear and angular momentum of a state's bodies about the origin, from
/// their rows: for an affine body `sum_a W[a][a] u_a x udot_a` over the
/// origin and the rotation's columns (the shapes here are symmetric: `W` is
/// diagonal), with the velocities the step's secants; and the largest
/// angular momentum of one body (the scale of what the parts exchange).
fn momenta(s: &Scene, x: &[f64], v: &[f64]) -> ([f64; 3], [f64; 3], f64) {
    let mass = &s.mass.mass;
    let (mut p, mut l, mut part) = ([0.0; 3], [0.0; 3], 0.0f64);
    for b in &s.model().bodies {
        let d = b.dof.expect("moving") as usize;
        let mut lb = [0.0; 3];
        for a in 0..4 {
            let r = d + 3 * a;
            let (u, du, m) = (&x[r..r + 3], &v[r..r + 3], mass[r]);
            if a == 0 {
                for k in 0..3 {
                    p[k] += m * du[k];
                }
            }
            lb[0] += m * (u[1] * du[2] - u[2] * du[1]);
            lb[1] += m * (u[2] * du[0] - u[0] * du[2]);
            lb[2] += m * (u[0] * du[1] - u[1] * du[0]);
        }
        for k in 0..3 {
            l[k] += lb[k];
        }
        part = part.max(norm(lb));
    }
    (p, l, part)
}

fn norm(a: [f64; 3]) -> f64 {
    a.iter().map(|c| c * c).sum::<f64>().sqrt()
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    norm([a[0] - b[0], a[1] - b[1], a[2] - b[2]])
}

/// The largest drift over `seeds` random-torque runs of 1 s of the
/// astronaut at `substeps` per step: linear momentum relative to its
/// start, angular momentum relative to the largest one body carried.
fn astronaut_drift(substeps: u32, seeds: u64) -> (f64, f64) {
    let s = scene_with("astronaut.joule", |settings| settings.substeps = substeps);
    let mut worst = (0.0f64, 0.0f64);
    for seed in 0..seeds {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed + 1).wrapping_mul(0x1000_0001));
        let mut sim = s.batch(1);
        sim.step();
        let (p0, l0, _) = momenta(&s, &sim.positions(0), &sim.velocities(0));
        let mut scale: f64 = 0.0;
        for _ in 0..100 {
            for c in 0..2 {
                sim.set_control(c, 0, rng.next());
            }
            sim.step();
            scale = scale.max(momenta(&s, &sim.positions(0), &sim.velocities(0)).2);
        }
        assert!(sim.events.is_empty(), "seed {seed}: {:?}", sim.events);
        let (p, l, _) = momenta(&s, &sim.positions(0), &sim.velocities(0));
        worst.0 = worst.0.max(dist(p, p0) / norm(p0));
        worst.1 = worst.1.max(dist(l, l0) / scale);
    }
    worst
}

/// Constrained implicit Euler keeps linear momentum exactly (the potential
/// is translation invariant and the free joint's translations are among
/// the coordinates) and angular momentum to first order in the step (what
/// it loses shrinks with h).
#[test]
fn astronaut_keeps_its_momentum_under_random_internal_torques() {
    let (linear, angular) = astronaut_drift(1, 128);
    let ((_, coarse), (_, finer)) = (astronaut_drift(1, 16), astronaut_drift(4, 16));
    println!(
        "largest drift over 1 s: linear {linear:e}, angular {angular:e} (h = 10 ms, 128 seeds); \
         angular over 16 seeds {coarse:e} (h = 10 ms), {finer:e} (h = 2.5 ms)"
    );
    assert!(linear < 1e-10, "linear momentum drifted by {linear:e}");
    // Random torques of 5 N m switched every 10 ms whip 1.5 kg arms around.
    assert!(
        angular < 0.25,
        "angular momentum drifted by {angular:e} of the largest part's"
    );
    assert!(
        finer < coarse / 3.0,
        "angular drift {finer:e} at h/4 vs {coarse:e} at h: not first order"
    );
}

/// A motor on a hinge drives the coordinate with torque `gear * u`: a disc
/// spun up from rest for 50 ms reaches the rate `gear t / I` and the angle
/// `gear t^2 / (2 I)` (implicit Euler's angle leads by `gear t h / (2 I)`;
/// its drag on a fast rotation, `(w h)^2 / 2` of the rate per step, is
/// below 1e-4 here: docs/joints.md).
#[test]
fn hinge_motor_spins_a_wheel_by_the_closed_form() {
    let s = scene("motor_spin.joule");
    let mut sim = s.batch(1);
    let (gear, m, r, h) = (2.0, 2.0, 0.2, 1e-3);
    let inertia = 0.5 * m * r * r;
    sim.set_control(0, 0, 1.0);
    let steps = 50;
    sim.rollout(steps);
    let t = steps as f64 * h;
    let angle = sim.output("angle")[0][0];
    let rate = sim.output("rate")[0][0];
    let (want, want_rate) = (gear * t * t / (2.0 * inertia), gear * t / inertia);
    println!("angle {angle} vs {want}, rate {rate} vs {want_rate}");
    assert!(
        (angle - want).abs() < gear * t * h / inertia,
        "angle {angle} vs {want}"
    );
    assert!(
        (rate - want_rate).abs() < 1e-4 * want_rate,
        "rate {rate} vs {want_rate}"
    );
}

/// An energy between a fixed body and a jointed one (the MJCF importer's
/// `motor(world, ..)` when a body hangs from the world): the fixed body's
/// rows are constants of the reduced step, so the trajectory is the one
/// with the same body welded to the world instead (it panicked before).
#[test]
fn energies_on_fixed_bodies_act_on_jointed_bodies() {
    let run = |fixed: bool| {
        let (weld, fix) = if fixed {
            ("", "fix w")
        } else {
            (", joint = weld(world)", "")
        };
        let text = format!(
            "settings {{ dt = 0.01, integrator = implicit_euler }}\n\
             body w {{ shape = sphere(1), mass = 1{weld} }}\n{fix}\n\
             body a {{ shape = sphere(0.1), mass = 1, x = vec3(1, 0, 0), \
             joint = hinge(world, at = vec3(0, 0, 0), axis = vec3(0, 0, 1)) }}\n\
             pd(w, a, vec3(0, 0, 1), 0.5, 2)\nobserve q = a.q\n"
        );
        let s = Scene::compile(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = s.batch(1);
        sim.rollout(30);
        sim.output("q")[0][0]
    };
    let (fixed, welded) = (run(true), run(false));
    assert!(fixed > 0.01, "the spring turned the hinge: {fixed}");
    assert!((fixed - welded).abs() < 1e-12, "{fixed} vs {welded}");
}

/// Symplectic Euler in joint coordinates steps (tests/mjcf.rs compares it
/// with MuJoCo's) but has no adjoint yet: a gradient through it is refused
/// with the reason, never computed wrong.
#[test]
fn gradients_through_symplectic_joint_steps_are_refused() {
    let s = scene_stepped("pendulum_mujoco.joule", true);
    let mut sim = s.batch(1);
    sim.rollout(10);
    let tip = sim.output("tip")[2][0];
    assert!(
        tip.is_finite() && tip < 2.0,
        "the pendulum swings: tip z {tip}"
    );
    let err = sim
        .gradient(&joule_runtime::Objective::loss("anything"), 5)
        .expect_err("refused");
    assert!(
        err.0.contains("symplectic Euler in joint coordinates"),
        "{}",
        err.0
    );
}

/// Angle and rate of `tests/joints/soft_range_impact.joule` per step, over
/// `steps` steps, with the scene's implicit step or symplectic Euler.
fn soft_impact(symplectic: bool, steps: usize) -> Vec<(f64, f64)> {
    let s = scene_stepped("soft_range_impact.joule", symplectic);
    let mut sim = s.batch(1);
    let mut out = vec![];
    for _ in 0..steps {
        sim.step();
        out.push((sim.output("angle")[0][0], sim.output("rate")[0][0]));
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    out
}

/// A soft range is MuJoCo's limit: a critically damped spring that only
/// pushes. An arm falling onto it is stopped without a bounce (it does not
/// come back inside the range; the overshoot past the limit is a few
/// hundredths of a radian) and rests on it where the spring holds the arm's
/// weight, k (q - hi) = m g l / 2 cos(q) with k = I / (0.95 * 0.02 s)^2; the
/// symplectic step enforces it too.
#[test]
fn soft_ranges_absorb_impacts_and_hold_the_weight() {
    for symplectic in [false, true] {
        let run = soft_impact(symplectic, 1500);
        let hi = 0.5;
        let hit = run
            .iter()
            .position(|(q, _)| *q > hi)
            .expect("reaches its limit");
        let impact = run[hit].1;
        let back = run[hit..].iter().map(|(q, _)| *q).fold(f64::MAX, f64::min);
        let over = run.iter().map(|(q, _)| q - hi).fold(f64::MIN, f64::max);
        let (q_end, v_end) = *run.last().unwrap();
        // The rest angle from the spring's stiffness (I: a capsule of 1 kg,
        // r 0.02, l 0.5 about its end).
        let (m, r, l, g) = (1.0, 0.02, 0.5, 9.81);
        let inertia = m * (r * r / 4.0 + l * l / 12.0) + m * (l / 2.0_f64).powi(2);
        let t = 0.95 * 0.02;
        let k = inertia / (t * t);
        let rest = hi + m * g * l / 2.0 * hi.cos() / k;
        println!(
            "symplectic {symplectic}: impact {impact} rad/s, lowest angle after it {back}, overshoot {over} rad, rest {q_end} (spring balance {rest})"
        );
        assert!(impact > 2.0, "falls onto the limit: {impact}");
        assert!(back > hi - 1e-3, "bounces back into the range: {back}");
        assert!(over < 0.05, "{over} rad past the limit");
        assert!(v_end.abs() < 1e-3, "still moving: {v_end}");
        assert!(
            (q_end - rest).abs() < 0.05 * (rest - hi),
            "rests at {q_end}, balance {rest}"
        );
    }
}

/// A soft range may exclude the initial coordinate (MJCF's ankles start
/// outside theirs): the arm is pushed inside within a few time constants
/// and stays in its range after that.
#[test]
fn soft_ranges_push_a_coordinate_that_starts_outside_back_in() {
    let s = scene("soft_range_start.joule");
    let mut sim = s.batch(1);
    let mut angles = vec![];
    for _ in 0..300 {
        sim.step();
        angles.push(sim.output("angle")[0][0]);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let entered = angles
        .iter()
        .position(|q| *q >= 0.2)
        .expect("enters its range");
    println!(
        "inside after {} steps; angles from there in {:?}",
        entered + 1,
        {
            let inside = &angles[entered..];
            (
                inside.iter().cloned().fold(f64::MAX, f64::min),
                inside.iter().cloned().fold(f64::MIN, f64::max),
            )
        }
    );
    assert!(entered < 10, "inside only after {} steps", entered + 1);
    assert!(
        angles[entered..]
            .iter()
            .all(|q| (0.2 - 1e-3..=1.2 + 0.05).contains(q)),
        "leaves its range again: {angles:?}"
    );
}

/// Joint coordinate rows are named as observations read them (`A.q`,
/// `A.q[k]` for several coordinates, `A.free[k]` for a free joint's pose),
/// so a diverged coordinate's event names it (Brax's hopper and ant).
#[test]
fn coordinate_rows_are_named_for_their_joints() {
    let hopper =
        Scene::from_path(Path::new("scenes/hopper.joule"), Default::default()).expect("compiles");
    let names: Vec<String> = (48..54).map(|r| hopper.dof_name(r)).collect();
    assert_eq!(
        names,
        [
            "torso.q[0]",
            "torso.q[1]",
            "torso.q[2]",
            "thigh.q",
            "leg.q",
            "foot.q"
        ]
    );
    let ant =
        Scene::from_path(Path::new("scenes/ant_brax.joule"), Default::default()).expect("compiles");
    let n = ant.dofs();
    let names: Vec<String> = (n - 14..n).map(|r| ant.dof_name(r)).collect();
    assert_eq!(names[0], "torso.free[0]");
    assert_eq!(names[5], "torso.free[5]");
    assert_eq!(names[6], "aux_1.q");
    assert_eq!(names[13], "body13.q");
    assert!(
        (0..n).all(|r| !ant.dof_name(r).is_empty()),
        "every row named"
    );
}

/// A state set from outside moves the links with their coordinates at once:
/// outputs read before the next step see the links where the coordinates put
/// them (Brax's hopper, its root raised 0.5 m through its `rootz` slider).
#[test]
fn set_state_moves_the_links_with_their_coordinates() {
    let scene =
        Scene::from_path(Path::new("scenes/hopper.joule"), Default::default()).expect("compiles");
    let mut sim = scene.batch(1);
    let before = sim.output("height")[0][0];
    let (mut x, v) = (sim.positions(0), sim.velocities(0));
    // The coordinate rows follow the 4 links' 12 rows: rootx, rootz, rooty, ...
    let rootz = 4 * 12 + 1;
    x[rootz] += 0.5;
    sim.set_state(0, &x, &v);
    let after = sim.output("height")[0][0];
    assert!(
        (after - before - 0.5).abs() < 1e-12,
        "height {after} after raising the root from {before}"
    );
    // The step starts from the same place: the torso's height changes by
    // what one step of free fall moves it, not by another 0.5 m.
    sim.step();
    let stepped = sim.output("height")[0][0];
    assert!((stepped - after).abs() < 1e-3, "{after} -> {stepped}");
}

/// The prelude's `motor` energy on a joint that turns many times follows
/// the joint's own `motor =` drive (the same torque on the same joint
/// coordinate, at the same step): its potential stays continuous where the
/// relative angle passes +-pi, so every step converges in two or three
/// Newton iterations. (The angle it used to jump 2 pi there, a wall each
/// step that crossed it ran into: 9-11 iterations of halving line searches
/// and a lagging wheel.)
#[test]
fn motor_energy_turns_a_wheel_like_the_joint_motor() {
    let energy = scene("motor_energy_spin.joule");
    let joint = scene_with("motor_spin.joule", |settings| settings.dt = 0.01);
    let (mut a, mut b) = (energy.batch(1), joint.batch(1));
    a.set_control(0, 0, 1.0);
    b.set_control(0, 0, 1.0);
    let mut worst = 0.0f64;
    for n in 1..=100 {
        let before = a.newton_iterations();
        a.step();
        b.step();
        let iterations = a.newton_iterations() - before;
        assert!(iterations <= 3, "step {n}: {iterations} Newton iterations");
        let (qa, qb) = (a.output("angle")[0][0], b.output("angle")[0][0]);
        worst = worst.max((qa - qb).abs() / qb);
    }
    println!("largest relative angle difference: {worst:e}");
    assert!(
        worst < 1e-6,
        "the motor energy's wheel is {worst} off the joint motor's"
    );
    // Implicit Euler's closed form under the constant torque: qdot_n = n h a.
    // The prediction from three points on the circle does not drag the
    // rotation (a straight-line one ends at a third of it, 17 rad/s: its
    // terminal speed); what is left is its inertia, inflated by 3 - 2 cos
    // theta at theta = qdot h (1.2 at the end: 0.47 rad per step).
    let (rate, want) = (
        a.output("rate")[0][0],
        100.0 * 0.01 * 2.0 / (0.5 * 2.0 * 0.2 * 0.2),
    );
    println!("rate after 1 s {rate} rad/s, closed form {want} rad/s");
    assert!(rate > 0.9 * want && rate < want, "rate {rate} vs {want}");
    assert!(
        a.output("angle")[0][0] > 6.0 * std::f64::consts::PI,
        "three turns"
    );
    assert!(
        a.events.is_empty() && b.events.is_empty(),
        "{:?} {:?}",
        a.events,
        b.events
    );
}

/// The step reads a state's coordinate rows alone: the links' velocity rows
/// (after a step, the last step's secants) may hold anything when a state
/// is set from outside, and the floating astronaut (initial torso velocity
/// and spin in its free joint's rates) moves the same.
#[test]
fn the_step_reads_the_coordinates_not_the_links_velocities() {
    let s = scene("astronaut.joule");
    let (mut a, mut b) = (s.batch(1), s.batch(1));
    let (x, v) = (a.positions(0), a.velocities(0));
    let mut scrambled = v.clone();
    for (r, value) in scrambled.iter_mut().enumerate().take(4 * 12) {
        *value = (r as f64 * 0.7).sin();
    }
    b.set_state(0, &x, &scrambled);
    for _ in 0..50 {
        a.step();
        b.step();
    }
    let (pa, pb) = (a.positions(0), b.positions(0));
    let worst = pa
        .iter()
        .zip(&pb)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-12,
        "the links' velocity rows moved the state by {worst}"
    );
    assert!(
        pa[0] > 0.04,
        "the torso keeps its initial velocity: x = {}",
        pa[0]
    );
}

/// A soft range is piecewise quadratic in its coordinate within a step, and
/// Newton's model holds it exactly: a step that crosses into a limit lands
/// on the limit's piece (the reduced step's active-set loop) instead of
/// overshooting and being corrected by the next iteration. On a slider
/// (linear kinematics) pushed by a motor into its upper end and back into
/// its lower end, the potential is exactly that model, so every step takes
/// one Newton step and a second that confirms it (the plain step took a
/// third wherever it crossed an end), and the trajectory is implicit
/// Euler's closed form on the piecewise spring.
#[test]
fn newton_lands_soft_ranges_on_the_piece_it_crosses_into() {
    let s = scene("soft_range_landing.joule");
    let mut sim = s.batch(1);
    let (h, m, armature, damping, gear, t): (f64, f64, f64, f64, f64, f64) =
        (0.01, 2.0, 0.5, 1.0, 20.0, 0.02);
    let (lo, hi) = (-0.1, 0.1);
    // MuJoCo's soft limit on the coordinate's effective inertia (mass and
    // armature), and its spring in a step of length h.
    let inertia = m + armature;
    let (k, b) = (inertia / (0.95 * t).powi(2), 2.0 * inertia / (0.95 * t));
    let big = k + b / h;
    let (mut q, mut v) = (0.0f64, 0.0f64);
    let (mut inside, mut crossings) = (true, 0);
    for n in 0..140 {
        let u = if n < 60 { 1.0 } else { -1.0 };
        sim.set_control(0, 0, u);
        let before = sim.newton_iterations();
        sim.step();
        let iterations = sim.newton_iterations() - before;
        // The closed form: minimise (M / h^2 + d / h) q^2 / 2 - B q plus the
        // spring past the step's ends (each the nearer of the range's end and
        // the damped reference from the step's start).
        let reference = |end: f64| (k * end + b * q / h) / big;
        let (below, above) = (reference(lo).min(lo), reference(hi).max(hi));
        let a = inertia / (h * h) + damping / h;
        let rhs = inertia / (h * h) * (q + h * v) + damping / h * q + gear * u;
        let mut next = rhs / a;
        if next > above {
            next = (rhs + big * above) / (a + big);
        } else if next < below {
            next = (rhs + big * below) / (a + big);
        }
        v = (next - q) / h;
        q = next;
        let got = sim.output("q")[0][0];
        assert!(
            (got - q).abs() < 1e-9 * (1.0 + q.abs()),
            "step {n}: q {got}, closed form {q}"
        );
        assert!(
            iterations <= 2,
            "step {n}: {iterations} Newton iterations (q {q})"
        );
        let now_inside = (lo..=hi).contains(&q);
        crossings += (now_inside != inside) as usize;
        inside = now_inside;
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // Out past the upper end, back in, out past the lower end.
    assert!(crossings >= 3, "{crossings} crossings of the range's ends");
}

/// MuJoCo's limit law (`solref`, `solimp`, `margin`) is a term of the
/// implicit step's potential: a symplectic scene with one is refused, at
/// the joint, rather than stepped without its limits.
#[test]
fn mujocos_limit_law_is_refused_on_the_symplectic_step() {
    let mut m = joule::check_path(Path::new("tests/grad/mujoco_limit.joule"))
        .expect("readable")
        .model
        .expect("a model");
    m.settings.integrator = joule_compiler::model::Integrator::SymplecticEuler;
    let Err(e) = Scene::from_model(m, Default::default()) else {
        panic!("a symplectic scene with MuJoCo's limit compiled");
    };
    let text = format!("{e:?}");
    assert!(
        text.contains("joule::joint") && text.contains("MuJoCo's limit needs the implicit step"),
        "{text}"
    );
}

/// Implicit Euler with linear kinematics (`kinematics = linear`) is
/// MuJoCo's `Euler` step: with no constraint to solve, its minimiser is
/// the unconstrained acceleration at the step's start (the velocity-product
/// forces, stiffness, servo and damping at the start's state, the damping
/// then implicit), which the symplectic step computes directly
/// (tests/mjcf.rs matches that one to MuJoCo's). On a floating chain of
/// every joint type (tests/joints/euler_chain.joule), spinning and driven
/// by varying controls, the two agree to rounding over 200 steps
/// (tests/gradients.rs checks the linear step's gradients on this chain).
#[test]
fn linear_kinematics_step_as_mujocos_euler() {
    let (linear, symplectic) = (
        scene("euler_chain.joule"),
        scene_stepped("euler_chain.joule", true),
    );
    let (mut a, mut b) = (linear.batch(1), symplectic.batch(1));
    let mut worst: f64 = 0.0;
    for k in 0..200 {
        for c in 0..2 {
            let u = (0.13 * k as f64 + c as f64).sin();
            a.set_control(c, 0, u);
            b.set_control(c, 0, u);
        }
        a.step();
        b.step();
        let (pa, pb) = (a.positions(0), b.positions(0));
        worst = pa
            .iter()
            .zip(&pb)
            .map(|(p, q)| (p - q).abs())
            .fold(worst, f64::max);
    }
    assert!(a.events.is_empty(), "{:?}", a.events);
    let travel = a.positions(0)[0].abs() + a.positions(0)[2].abs();
    assert!(travel > 0.5, "the chain moved: {travel}");
    assert!(worst < 1e-9, "linear kinematics vs MuJoCo's Euler: {worst}");
}
