//! Parameter identification: measure the gravitational acceleration on Mars
//! with a 1 m pendulum. From where its bob is after 0.5 s, Gauss-Newton with
//! exact gradients through the simulation (the adjoint of 500 steps, not
//! finite differences) recovers g; the fitted g is then checked against the
//! one the swing's period gives by the pendulum's law.
//!
//! Run: `cargo run --example parameter_fit`

use joule::{Objective, Scene};
use std::f64::consts::PI;

/// A pendulum under the weight energy m g z (g a parameter) whose loss
/// compares the bob with a measured position given as parameters.
const SCENE: &str = r#"
scene "pendulum to fit"
settings { dt = 1e-3, gravity = vec3(0, 0, 0), integrator = symplectic_euler }
const L = 1.0
param g = 9.81 in 0.5..30
param seen_x = 0
param seen_z = 0
particle pivot { x = vec3(0, 0, 0), mass = 1 }
particle bob { x = vec3(L * sin(30deg), 0, -L * cos(30deg)), mass = 1 }
fix pivot
energy weight(p: particle, g: scalar) = p.mass * g * p.x.z
energy rod(a: particle, b: particle, l0: scalar) = 0.5 * 1e6 * (norm(a.x - b.x) - l0)^2
weight(bob, g)
rod(pivot, bob, L)
observe angle = atan2(bob.x.x, -bob.x.z)
observe position = bob.x
loss miss = (bob.x.x - seen_x)^2 + (bob.x.z - seen_z)^2
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scene = Scene::compile(SCENE)?;
    let steps = 500;
    let mars = 3.71;
    // The "measurement": where the bob is after 0.5 s on Mars, and the swing
    // over 6 s, whose zero crossings give the period.
    let (seen_x, seen_z, angles) = {
        let mut sim = scene.batch(1);
        sim.set_param("g", mars)?;
        sim.rollout(steps);
        let p = sim.output("position");
        let seen = (p[0][0], p[2][0]);
        let mut angles = vec![];
        for _ in 0..6000 {
            sim.step();
            angles.push(sim.output("angle")[0][0]);
        }
        (seen.0, seen.1, angles)
    };
    let objective = Objective::loss("miss");
    let mut g = 9.81; // start from the Earth's
    for iteration in 0..50 {
        let mut sim = scene.batch(1);
        sim.set_param("g", g)?;
        sim.set_param("seen_x", seen_x)?;
        sim.set_param("seen_z", seen_z)?;
        let grad = sim.gradient(&objective, steps)?;
        let (miss, slope) = (grad.value[0], grad.params[0][0]); // params in declaration order: g first
        if iteration % 5 == 0 {
            println!("iteration {iteration:2}: g {g:.6} m/s^2, squared miss {miss:.3e} m^2");
        }
        if miss < 1e-16 {
            break;
        }
        // Gauss-Newton on miss = r^2: step = miss / slope (a Newton step on r).
        g = (g - 2.0 * miss / slope).clamp(0.5, 30.0);
    }
    // The period from the downward zero crossings (times interpolated), and
    // the g it implies: T = 2 pi sqrt(L / g) (1 + theta0^2 / 16).
    let dt = 1e-3;
    let crossings: Vec<f64> = angles
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] > 0.0 && w[1] <= 0.0)
        .map(|(i, w)| dt * (i as f64 + 1.0 + w[0] / (w[0] - w[1])))
        .collect();
    let period = (crossings[crossings.len() - 1] - crossings[0]) / (crossings.len() - 1) as f64;
    let correction = 1.0 + 30f64.to_radians().powi(2) / 16.0;
    let by_period = 4.0 * PI * PI * 1.0 * (correction / period).powi(2);
    println!("fitted g {g:.6} m/s^2 (true {mars}); the period {period:.4} s gives {by_period:.4}");
    assert!((g - mars).abs() < 1e-4, "did not recover g: {g}");
    assert!(
        (by_period - g).abs() < 5e-3 * g,
        "the fitted g {g} is not the pendulum's ({by_period} by its period)"
    );
    Ok(())
}
