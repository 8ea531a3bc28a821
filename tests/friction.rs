//! Friction that cannot be exploited: under bang-bang actuation that
//! switches every step, the impulse the ground transmits in a step stays in
//! the friction cone of that same step's normal impulse, and friction never
//! does positive work. The impulses are measured independently of the
//! contact model, from the momentum each scene's bodies gain in a step
//! minus gravity's and the drive's (`tests/friction/*.joule`). The lagged
//! model the cone replaced breaks the bound on the same inputs, so the
//! check has teeth. Two models pass: MuJoCo's cone (`contact_soft`), whose
//! sliding contacts push out (dilatant), and Coulomb's bound held at the
//! step's solution (`contact_coulomb`), whose do not.

use joule_compiler::compiled::Backend;
use joule_runtime::{Event, Scene, Sim};
use std::path::Path;

const H: f64 = 0.01;
const G: f64 = 9.81;

/// A body's mass and the output holding its centre of mass.
struct Part {
    output: &'static str,
    mass: f64,
}

/// One step's contact impulse, whole and split: horizontal magnitude, the
/// normal (vertical) component, and the horizontal displacement of the
/// scene's centre of mass over the step.
struct Step {
    tangential: [f64; 2],
    normal: f64,
    slip: [f64; 2],
}

/// The contact models under test (`tests/friction/*_{model}.joule`):
/// MuJoCo's cone and Coulomb's bound held at the step's solution.
const MODELS: [&str; 2] = ["cone", "coulomb"];

/// The scene at `path`, compiled.
fn scene(path: &str) -> Scene {
    Scene::from_path(Path::new(path), Backend::Jit).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `steps` steps of `sim`, setting the controls of step n to
/// `controls(n)` and an external force `drive(n)` (N, on the centre of
/// mass, as the scene's drive energy applies it), and returns each step's
/// contact impulse from the change of total momentum.
fn impulses(
    mut sim: Sim<'_>,
    parts: &[Part],
    steps: usize,
    controls: impl Fn(usize) -> Vec<f64>,
    drive: impl Fn(&[f64]) -> [f64; 3],
) -> Vec<Step> {
    let total: f64 = parts.iter().map(|p| p.mass).sum();
    let com = |sim: &mut Sim| {
        let mut c = [0.0; 3];
        for p in parts {
            let x = sim.output(p.output);
            for k in 0..3 {
                c[k] += p.mass * x[k][0] / total;
            }
        }
        c
    };
    let mut xs = vec![com(&mut sim)];
    let mut forces = vec![];
    for n in 0..steps {
        let u = controls(n);
        for (k, v) in u.iter().enumerate() {
            sim.set_control(k, 0, *v);
        }
        forces.push(drive(&u));
        sim.step();
        assert!(sim.events.is_empty(), "step {n}: {:?}", sim.events);
        xs.push(com(&mut sim));
    }
    // v_n = (x_n - x_{n-1}) / h is implicit Euler's velocity; the impulse
    // of step n + 1 is M (v_{n+1} - v_n) - h (F + M g).
    (1..steps)
        .map(|n| {
            let f = forces[n];
            let dv: Vec<f64> = (0..3)
                .map(|k| (xs[n + 1][k] - 2.0 * xs[n][k] + xs[n - 1][k]) / H)
                .collect();
            let j: Vec<f64> = (0..3)
                .map(|k| total * dv[k] - H * f[k] + if k == 2 { H * total * G } else { 0.0 })
                .collect();
            Step {
                tangential: [j[0], j[1]],
                normal: j[2],
                slip: [xs[n + 1][0] - xs[n][0], xs[n + 1][1] - xs[n][1]],
            }
        })
        .collect()
}

/// The largest excess of the horizontal impulse over mu times the normal
/// one, over the steps (N s; negative: inside the cone throughout).
fn cone_excess(steps: &[Step], mu: f64) -> f64 {
    steps
        .iter()
        .map(|s| s.tangential[0].hypot(s.tangential[1]) - mu * s.normal.max(0.0))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Asserts that `model`'s steps stay in the friction cone `mu` (to 1e-7 N s)
/// and that the bound was met while things moved (the scene's centre of
/// mass travelled more than `least` metres along x), not by sticking.
fn assert_in_the_cone_while_moving(model: &str, steps: &[Step], mu: f64, least: f64) {
    let excess = cone_excess(steps, mu);
    assert!(
        excess <= 1e-7,
        "{model}: impulse outside the cone by {excess} N s"
    );
    let moved: f64 = steps.iter().map(|s| s.slip[0].abs()).sum();
    assert!(moved > least, "{model}: moved only {moved} m");
}

/// Bang-bang for the particles: 30 N sideways, switching every step, with
/// the vertical drive pushing down hard (30 N) and then nearly lifting the
/// particle (9 N up) on alternate steps.
fn particle_controls(n: usize) -> Vec<f64> {
    let s = if n.is_multiple_of(2) { 1.0 } else { -1.0 };
    vec![s, if n.is_multiple_of(2) { -1.0 } else { 0.3 }]
}

fn particle_drive(u: &[f64]) -> [f64; 3] {
    [30.0 * u[0], 0.0, 30.0 * u[1]]
}

/// The impulses of 300 bang-bang steps of the 1 kg particle scene at `path`.
fn driven_particle(path: &str) -> Vec<Step> {
    let particle = [Part {
        output: "x",
        mass: 1.0,
    }];
    impulses(
        scene(path).batch(1),
        &particle,
        300,
        particle_controls,
        particle_drive,
    )
}

/// Signs from a fixed linear congruential sequence: bang-bang without a
/// period.
fn sign(n: usize, salt: u64) -> f64 {
    let x = (n as u64 + 1)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(salt.wrapping_mul(1442695040888963407));
    if (x >> 33) & 1 == 0 {
        1.0
    } else {
        -1.0
    }
}

#[test]
fn a_particle_driven_bang_bang_stays_in_the_cone() {
    for model in MODELS {
        let steps = driven_particle(&format!("tests/friction/particle_{model}.joule"));
        // It slides (the drive is three times the friction), so the bound is
        // met with friction at work, not by sticking.
        assert_in_the_cone_while_moving(model, &steps, 1.0, 0.05);
        // Friction never does positive work: its impulse opposes the slip.
        for (n, s) in steps.iter().enumerate() {
            let work = s.tangential[0] * s.slip[0] + s.tangential[1] * s.slip[1];
            assert!(
                work <= 1e-9,
                "{model}, step {n}: friction did {work} J of work"
            );
        }
    }
}

#[test]
fn the_lagged_friction_it_replaced_leaves_the_cone() {
    let steps = driven_particle("tests/friction/particle_lagged.joule");
    let excess = cone_excess(&steps, 1.0);
    assert!(
        excess > 0.05,
        "the lagged model stayed within {excess} N s of the cone: the drive no longer tests the bound"
    );
}

#[test]
fn a_box_pushed_and_twisted_bang_bang_stays_in_the_cone() {
    let bx = [Part {
        output: "x",
        mass: 1.0,
    }];
    let controls = |n: usize| vec![sign(n, 1), sign(n, 2)];
    for model in MODELS {
        let steps = impulses(
            scene(&format!("tests/friction/box_{model}.joule")).batch(1),
            &bx,
            300,
            controls,
            |u| [20.0 * u[0], 0.0, 0.0],
        );
        assert_in_the_cone_while_moving(model, &steps, 0.8, 0.05);
    }
}

#[test]
fn a_robot_kicking_bang_bang_stays_in_the_cone() {
    let robot = [
        Part {
            output: "torso_x",
            mass: 2.0,
        },
        Part {
            output: "shin_x",
            mass: 0.5,
        },
    ];
    let controls = |n: usize| vec![sign(n, 3)];
    for model in MODELS {
        let steps = impulses(
            scene(&format!("tests/friction/leg_{model}.joule")).batch(1),
            &robot,
            300,
            controls,
            |_| [0.0; 3],
        );
        assert_in_the_cone_while_moving(model, &steps, 0.9, 0.01);
    }
}

/// The box's position along x after each of `steps` steps under a constant
/// push (N), with the contact `model`.
fn pushed(model: &str, push: f64, steps: usize) -> Vec<f64> {
    let box_push = scene(&format!("tests/friction/box_push_{model}.joule"));
    let mut sim = box_push.batch(1);
    sim.set_param("push", push).unwrap();
    (0..steps)
        .map(|_| {
            sim.step();
            assert!(sim.events.is_empty(), "{:?}", sim.events);
            sim.output("x")[0][0]
        })
        .collect()
}

/// Static friction holds: pushed at half of mu m g, the box only creeps,
/// at the speed the four bottom corners' tangential dampers allow,
/// push / (4 kt h) with kt = 19 b / h (box_push_*.joule's constants).
#[test]
fn a_box_pushed_below_the_cone_creeps_at_the_dampers_speed() {
    let (m, mu) = (1.0, 0.8);
    let push = 0.5 * mu * m * G;
    let kt = 19.0 * (2.0 * (m / 4.0) / (0.95 * 0.02)) / H;
    for model in MODELS {
        let x = pushed(model, push, 100);
        let speed = (x[99] - x[49]) / (50.0 * H);
        let want = push / (4.0 * kt * H);
        assert!(
            (speed - want).abs() <= 0.02 * want,
            "{model}: creep {speed} m/s, closed form {want} m/s"
        );
    }
}

/// Past the cone it slides on it: pushed sideways at 1.2 times mu m g,
/// the particle's friction impulse is exactly mu times its normal impulse
/// and opposes the slip in every step the ground holds it (Coulomb's law,
/// step by step). Its acceleration is not Coulomb's (push - mu m g) / m:
/// the convex cone pushes a sliding contact out by mu times its slip, so it
/// slides in hops, as MuJoCo's contacts do (docs/joints.md, "Contact").
#[test]
fn a_particle_pushed_past_the_cone_slides_on_it() {
    let particle = [Part {
        output: "x",
        mass: 1.0,
    }];
    let steps = impulses(
        scene("tests/friction/particle_cone.joule").batch(1),
        &particle,
        100,
        |_| vec![0.4, 0.0],
        particle_drive,
    );
    let held: Vec<&Step> = steps.iter().filter(|s| s.normal > 1e-6).collect();
    assert!(
        held.len() >= 20,
        "held by the ground in {} steps",
        held.len()
    );
    for s in held {
        assert!(s.slip[0] > 0.0, "stuck under a push of 3 mu m g");
        let off = s.tangential[0] + s.normal;
        assert!(
            off.abs() <= 1e-7 && s.tangential[1].abs() <= 1e-9,
            "friction {:?} N s for a normal impulse {} N s",
            s.tangential,
            s.normal
        );
    }
}

/// A point the ground does not touch at a step's start feels nothing in
/// that step, however fast it slides: the particle released 1 cm above the
/// ground at 2 m/s follows implicit Euler's free fall until it lands (the
/// convex cone alone would push it up from a distance of mu |slip| = 2 cm).
#[test]
fn a_particle_sliding_above_the_ground_flies_freely() {
    let hovering = scene("tests/friction/particle_hovering.joule");
    let mut sim = hovering.batch(1);
    let (mut x, mut z, mut vz) = (0.0, 0.01, 0.0);
    let mut flown = 0;
    while z >= 0.0 {
        sim.step();
        vz -= G * H;
        x += 2.0 * H;
        z += vz * H;
        let got = sim.output("x");
        assert!(
            (got[0][0] - x).abs() <= 1e-12 && (got[2][0] - z).abs() <= 1e-12,
            "step {flown}: ({}, {}) where free fall is at ({x}, {z})",
            got[0][0],
            got[2][0]
        );
        flown += 1;
    }
    assert!(flown >= 4, "flew {flown} steps");
    for _ in 0..50 {
        sim.step();
    }
    let z = sim.output("x")[2][0];
    assert!((-0.01..0.0).contains(&z), "after landing at z = {z} m");
}

/// The box kicked at 3 m/s (`box_kicked_*.joule`): the position (x, z) of
/// its centre after each of 80 steps.
fn kicked(model: &str) -> Vec<[f64; 2]> {
    let kicked = scene(&format!("tests/friction/box_kicked_{model}.joule"));
    let mut sim = kicked.batch(1);
    (0..80)
        .map(|_| {
            sim.step();
            assert!(sim.events.is_empty(), "{model}: {:?}", sim.events);
            let x = sim.output("x");
            [x[0][0], x[2][0]]
        })
        .collect()
}

/// Coulomb's bound held at the step's solution does not push a sliding
/// box out of the ground: kicked at 3 m/s it slides flat (its centre stays
/// within 0.1 mm of its resting height) and stops within 5 % of Coulomb's
/// v^2 / (2 mu g), never speeding up; MuJoCo's cone, on the same kick,
/// hops over a centimetre and slides further (the check has teeth).
#[test]
fn a_box_kicked_with_held_coulomb_friction_slides_flat_and_stops_where_coulomb_says() {
    let (v, mu, z0) = (3.0, 0.8, 0.0965);
    let coulomb = v * v / (2.0 * mu * G);
    let path = kicked("coulomb");
    let rise = path.iter().map(|p| p[1] - z0).fold(f64::MIN, f64::max);
    assert!(rise <= 1e-4, "coulomb: the centre rose {rise} m");
    let stop = path[79][0];
    assert!(
        (stop - coulomb).abs() <= 0.05 * coulomb,
        "coulomb: stopped at {stop} m, Coulomb's {coulomb} m"
    );
    // While it slides, friction only ever slows it (then the box rocks
    // back onto its rear corners as it stops, a few cm/s).
    let speeds: Vec<f64> = path.windows(2).map(|w| (w[1][0] - w[0][0]) / H).collect();
    for (n, w) in speeds
        .windows(2)
        .enumerate()
        .take_while(|(_, w)| w[0] > 0.1)
    {
        assert!(
            w[1] <= w[0] + 1e-9,
            "coulomb, step {n}: sped up from {} to {} m/s",
            w[0],
            w[1]
        );
    }
    let cone = kicked("cone");
    let hop = cone.iter().map(|p| p[1] - z0).fold(f64::MIN, f64::max);
    assert!(hop > 0.01, "cone: rose only {hop} m");
    assert!(
        cone[79][0] > 1.2 * coulomb,
        "cone: stopped at {} m",
        cone[79][0]
    );
}

/// Past the bound a particle slides at Coulomb's acceleration (push - mu m
/// g) / m with Coulomb's bound held at the step's solution: pushed at 1.2
/// mu m g, friction is exactly mu times the normal impulse in every step,
/// and the particle stays on the ground (the cone's particle hops instead,
/// see `a_particle_pushed_past_the_cone_slides_on_it`).
#[test]
fn a_particle_pushed_past_held_coulomb_friction_accelerates_as_coulomb_says() {
    let particle = [Part {
        output: "x",
        mass: 1.0,
    }];
    let push = 0.4;
    let steps = impulses(
        scene("tests/friction/particle_coulomb.joule").batch(1),
        &particle,
        100,
        |_| vec![push, 0.0],
        particle_drive,
    );
    // Once the particle has settled onto its spring-damper (0.3 s).
    for (n, s) in steps.iter().enumerate().skip(30) {
        assert!(
            (s.tangential[0] + s.normal).abs() <= 1e-7 && s.tangential[1].abs() <= 1e-9,
            "step {n}: friction {:?} N s for a normal impulse {} N s",
            s.tangential,
            s.normal
        );
        assert!(
            (s.normal - G * H).abs() <= 1e-6,
            "step {n}: normal impulse {} N s",
            s.normal
        );
    }
    let (first, last) = (&steps[10], &steps[90]);
    let accel = (last.slip[0] - first.slip[0]) / (80.0 * H * H);
    let want = 30.0 * push - G;
    assert!(
        (accel - want).abs() <= 1e-3 * want,
        "accelerates at {accel} m/s^2, Coulomb's {want}"
    );
}

/// The held values' iteration is per environment: seven robots kicking to
/// different bang-bang sequences (`leg_coulomb.joule`) end bit for bit
/// where they end run one at a time, for any number of threads (lanes
/// that converge early are not moved by the others' updates), and every
/// step converges (within the scene's 100 iterations; the hardest take ~70).
#[test]
fn held_friction_is_independent_of_the_batch_and_the_threads() {
    let leg = scene("tests/friction/leg_coulomb.joule");
    let run = |batch: usize, threads: usize, first: usize| {
        let mut sim = leg.batch_threads(batch, threads);
        let mut reports = vec![];
        for n in 0..60 {
            for e in 0..batch {
                sim.set_control(0, e, sign(n, 10 + (first + e) as u64));
            }
            sim.step();
            for ev in &sim.events {
                if let Event::NotConverged { env, step, .. } = ev {
                    reports.push((first + env, *step));
                } else {
                    panic!("{ev}");
                }
            }
        }
        reports.sort();
        let positions: Vec<Vec<f64>> = (0..batch).map(|e| sim.positions(e)).collect();
        (positions, reports)
    };
    let (mut alone, mut reports) = (vec![], vec![]);
    for e in 0..7 {
        let (mut x, r) = run(1, 1, e);
        alone.push(x.remove(0));
        reports.extend(r);
    }
    reports.sort();
    assert!(
        reports.is_empty(),
        "steps that did not converge: {reports:?}"
    );
    for threads in [1, 2, 3] {
        assert_eq!(
            run(7, threads, 0),
            (alone.clone(), reports.clone()),
            "{threads} threads"
        );
    }
}
