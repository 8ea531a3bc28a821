//! The gait report (`joule::gait`, `joule run --gait`) against gaits whose
//! numbers are known by construction: a foot stepping with a set duty
//! factor, clearance and stance slip, a foot rolling without slipping,
//! controls at a set frequency, a root moving and turning by set amounts.

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;

use joule::gait::{analyse, Pose, Track};

const DT: f64 = 0.01;
const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// A foot (one sphere of radius 0.05 at its origin) stepping with period
/// 0.5 s: 30 frames standing (sliding at `stance_speed` m/s), then 20 in a
/// swing that lifts its lowest point to 0.04 m, moving forward 1 m/s.
fn stepping(stance_speed: f64, periods: usize) -> Track {
    let radius = 0.05;
    let mut x = 0.0;
    let poses = (0..periods * 50 + 1)
        .map(|f| {
            let phase = f % 50;
            // A triangle peaking at 0.04 m on swing frames 39 and 40.
            let k = phase as f64 - 29.0;
            let lift = if phase < 30 {
                0.0
            } else {
                0.004 * k.min(21.0 - k)
            };
            let pose = Pose {
                x: [x, 0.0, radius + lift],
                r: IDENTITY,
            };
            x += if phase < 30 { stance_speed } else { 2.5 } * DT;
            pose
        })
        .collect();
    Track {
        name: "foot".into(),
        points: vec![([0.0; 3], radius)],
        poses,
    }
}

#[test]
fn a_stepping_foot_has_its_duty_factor_clearance_and_step_rate() {
    let g = analyse(&[stepping(0.0, 8)], None, &[], DT);
    let f = &g.feet[0];
    // 8 periods of 30 standing frames in 50, plus the final frame standing.
    assert!((f.duty - 241.0 / 401.0).abs() < 1e-12, "duty {}", f.duty);
    // Every swing peaks at 0.04 m.
    assert!(
        (f.clearance - 0.04).abs() < 1e-12,
        "clearance {}",
        f.clearance
    );
    // 8 swings ended by a touchdown over 4 s.
    assert!(
        (f.touchdowns - 2.0).abs() < 1e-12,
        "touchdowns {}",
        f.touchdowns
    );
    assert!(f.slip.abs() < 1e-12, "slip {}", f.slip);
}

#[test]
fn a_foot_sliding_in_stance_slips_at_its_speed() {
    let g = analyse(&[stepping(0.1, 8)], None, &[], DT);
    let f = &g.feet[0];
    // 29 standing-to-standing steps per period, 8 periods, at 0.1 m/s.
    assert!(
        (f.slip - 8.0 * 29.0 * 0.1 * DT).abs() < 1e-12,
        "slip {}",
        f.slip
    );
    assert!(
        (f.slip_speed - 0.1).abs() < 1e-12,
        "slip speed {}",
        f.slip_speed
    );
}

#[test]
fn a_rolling_foot_does_not_slip_and_a_sliding_one_does() {
    // A ball of radius 0.1 rolling along x at 1 m/s (turning about y at
    // 10 rad/s), and the same ball sliding without turning.
    let radius = 0.1;
    let roll = |turn: bool| Track {
        name: "ball".into(),
        points: vec![([0.0; 3], radius)],
        poses: (0..=100)
            .map(|f| {
                let t = f as f64 * DT;
                let a = if turn { 10.0 * t } else { 0.0 };
                Pose {
                    x: [t, 0.0, radius],
                    r: [
                        [a.cos(), 0.0, a.sin()],
                        [0.0, 1.0, 0.0],
                        [-a.sin(), 0.0, a.cos()],
                    ],
                }
            })
            .collect(),
    };
    let rolling = analyse(&[roll(true)], None, &[], DT).feet[0].slip;
    let sliding = analyse(&[roll(false)], None, &[], DT).feet[0].slip;
    // Over a step the touching material point moves r (a - sin a) with
    // a = 0.1 rad: 1.7e-5 m per step, 100 steps.
    let a: f64 = 10.0 * DT;
    assert!(
        (rolling - 100.0 * radius * (a - a.sin())).abs() < 1e-12,
        "rolling slip {rolling}"
    );
    assert!((sliding - 1.0).abs() < 1e-12, "sliding slip {sliding}");
}

#[test]
fn the_controls_strongest_frequency_and_their_buzz() {
    let n = 500;
    let sine: Vec<f64> = (0..n)
        .map(|j| (2.0 * std::f64::consts::PI * 2.0 * j as f64 * DT).sin())
        .collect();
    let flip: Vec<f64> = (0..n)
        .map(|j: usize| if j.is_multiple_of(2) { 1.0 } else { -1.0 })
        .collect();
    let root = [Pose {
        x: [0.0; 3],
        r: IDENTITY,
    }; 3];
    let smooth = analyse(&[], Some(("root", &root)), std::slice::from_ref(&sine), DT);
    let c = smooth.controls.unwrap();
    assert!(
        (c.dominant - 2.0).abs() < 1e-12,
        "dominant {} Hz",
        c.dominant
    );
    assert!(c.high < 1e-20, "high share {}", c.high);
    let buzz = analyse(&[], Some(("root", &root)), &[flip, sine], DT);
    // The flip's power n^2 at 50 Hz against the sine's n^2 / 4 at 2 Hz.
    let c = buzz.controls.unwrap();
    assert!((c.high - 0.8).abs() < 1e-9, "high share {}", c.high);
}

#[test]
fn the_root_travel_and_heading() {
    let turn = 30f64.to_radians();
    let poses = [
        Pose {
            x: [0.0; 3],
            r: IDENTITY,
        },
        Pose {
            x: [1.0, 0.1, 0.0],
            r: [
                [turn.cos(), -turn.sin(), 0.0],
                [turn.sin(), turn.cos(), 0.0],
                [0.0, 0.0, 1.0],
            ],
        },
    ];
    let g = analyse(&[], Some(("torso", &poses)), &[], DT);
    let r = g.root.unwrap();
    assert_eq!((r.forward, r.lateral), (1.0, 0.1));
    assert!((r.heading - 30.0).abs() < 1e-12, "heading {}", r.heading);
}

/// `joule ARGS --json`, which must succeed, as JSON.
fn json_run(args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = common::joule(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// From the command line, on a two-link robot whose motor flips every step
/// (`tests/gait/flip.csv`): the feet are the bodies with contact points
/// (with either friction model), the buzz shows in the controls' spectrum
/// and in the shin's hops.
#[test]
fn run_reports_the_gait() {
    for model in ["cone", "coulomb"] {
        let scene = format!("tests/friction/leg_{model}.joule");
        let v = json_run(&[
            "run",
            &scene,
            "--steps",
            "100",
            "--controls",
            "tests/gait/flip.csv",
            "--gait",
        ]);
        let g = &v["gait"][0];
        let feet: Vec<&str> = g["feet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(feet, ["shin", "torso"], "{model}");
        assert_eq!(g["root"]["name"], "torso");
        assert!((g["seconds"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        assert!(g["controls"]["high_share"].as_f64().unwrap() > 0.99, "{g}");
        // Kicked every step, the robot falls onto its torso, which is down
        // most of the second once it has fallen (0.69 with the cone, 0.56
        // with Coulomb's friction, which lets it bounce), and the shin
        // flails: short stances between high swings.
        let shin = &g["feet"][0];
        assert!(
            shin["touchdowns_per_s"].as_f64().unwrap() >= 2.0,
            "{model}: {g}"
        );
        assert!(shin["duty"].as_f64().unwrap() < 0.5, "{model}: {g}");
        assert!(shin["clearance"].as_f64().unwrap() > 0.02, "{model}: {g}");
        assert!(g["feet"][1]["duty"].as_f64().unwrap() > 0.5, "{model}: {g}");
    }
}

#[test]
fn gait_needs_a_moving_body() {
    let out = common::joule(&[
        "run",
        "tests/gait/nothing_moves.joule",
        "--steps",
        "2",
        "--gait",
    ]);
    common::fails_with_hint(&out, "has no moving body or particle to report a gait of");
}

/// With no moving body the root is the free particles' centre of mass, and
/// its heading is their best-fit turn about z: on four particles spinning
/// as a square, the turn of each particle about the centre, read from the
/// run's own outputs.
#[test]
fn a_particle_scenes_root_turns_with_its_particles() {
    let v = json_run(&[
        "run",
        "tests/gait/spinning_particles.joule",
        "--steps",
        "100",
        "--gait",
    ]);
    let root = &v["gait"][0]["root"];
    assert_eq!(root["name"], "centre of mass");
    let at = |name: &str| -> Vec<f64> {
        (0..2)
            .map(|k| v["observe"][name][0][k].as_f64().unwrap())
            .collect()
    };
    let (a, c) = (at("pa"), at("pc"));
    // a started at +x from the centre; the centre is midway between a and c.
    let turn = (a[1] - c[1]).atan2(a[0] - c[0]).to_degrees();
    let heading = root["heading_deg"].as_f64().unwrap();
    assert!(turn > 50.0, "the square turned only {turn} degrees");
    assert!(
        (heading - turn).abs() < 1e-6,
        "heading {heading}, turn {turn}"
    );
    assert!(v["gait"][0]["feet"].as_array().unwrap().is_empty());
}

/// A soft body's feet are its particles that touched the ground: the soft
/// walker, driven by a travelling muscle wave, reports its 14 bottom
/// vertices (the top ones never touch) and its centre of mass's travel, the
/// scene's own `centre` output's.
#[test]
fn a_soft_bodys_feet_are_its_particles_that_touch() {
    let plan = common::temp("soft_walker_wave.csv");
    let mut csv = String::from("step,u[0],u[1],u[2],u[3],u[4],u[5]\n");
    for step in 0..150 {
        let t = step as f64 * 0.01;
        let u: Vec<String> = (0..6)
            .map(|k| {
                let phase = 2.0 * std::f64::consts::PI * (2.0 * t + k as f64 / 6.0);
                format!("{}", phase.sin())
            })
            .collect();
        csv += &format!("{step},{}\n", u.join(","));
    }
    std::fs::write(&plan, csv).unwrap();
    let v = json_run(&[
        "run",
        "scenes/soft_walker.joule",
        "--steps",
        "150",
        "--controls",
        plan.to_str().unwrap(),
        "--gait",
    ]);
    let g = &v["gait"][0];
    let feet = g["feet"].as_array().unwrap();
    assert_eq!(feet.len(), 14, "{g}");
    assert!(feet
        .iter()
        .all(|f| f["name"].as_str().unwrap().starts_with("slab[")));
    assert!(feet.iter().all(|f| f["duty"].as_f64().unwrap() > 0.0));
    let moved = v["observe"]["centre"][0][0].as_f64().unwrap() - 0.3;
    let forward = g["root"]["forward"].as_f64().unwrap();
    assert!(moved.abs() > 1e-3, "the wave moved the walker {moved} m");
    assert!(
        (forward - moved).abs() < 1e-9,
        "root {forward} m, centre {moved} m"
    );
}
