//! Parameter identification: measure a pendulum's length from its swing.
//! The "measurement" is the swing angle 0.6 s after release of an ideal
//! 1.3 m pendulum, computed here independently of Joule (the pendulum's
//! equation theta'' = -(g / L) sin(theta), integrated by fourth-order
//! Runge-Kutta). From it, Gauss-Newton with exact gradients through the
//! simulation of `scenes/pendulum.joule` (the adjoint of 600 steps, not
//! finite differences) recovers the length; the fitted pendulum's simulated
//! period is then checked against the pendulum's law,
//! 4 sqrt(L / g) K(sin(theta0 / 2)).
//!
//! Run: `cargo run --example parameter_fit`

use joule::{Objective, Scene};
use std::f64::consts::PI;

/// Added to the shipped pendulum: the measured angle as a parameter, and the
/// squared difference of the bob's angle from it as the loss.
const FIT: &str = r#"
param seen = 0
loss off = (atan2(bob.x.x - pivot(length).x, pivot(length).z - bob.x.z) - seen)^2
"#;

/// The complete elliptic integral of the first kind, `K(k) = pi / (2 agm(1,
/// sqrt(1 - k^2)))`.
fn elliptic_k(k: f64) -> f64 {
    let (mut a, mut b) = (1.0, (1.0 - k * k).sqrt());
    while (a - b).abs() > 1e-15 * a {
        (a, b) = ((a + b) / 2.0, (a * b).sqrt());
    }
    PI / (2.0 * a)
}

/// The angle at time `t` of an ideal pendulum of length `l` released at rest
/// from `theta0`: RK4 on (theta, omega) with 10 000 steps per second.
fn ideal_angle(l: f64, g: f64, theta0: f64, t: f64) -> f64 {
    let n = (t * 1e4).round() as usize;
    let h = t / n as f64;
    let f = |(th, om): (f64, f64)| (om, -(g / l) * th.sin());
    let mut y = (theta0, 0.0);
    for _ in 0..n {
        let k1 = f(y);
        let k2 = f((y.0 + h / 2.0 * k1.0, y.1 + h / 2.0 * k1.1));
        let k3 = f((y.0 + h / 2.0 * k2.0, y.1 + h / 2.0 * k2.1));
        let k4 = f((y.0 + h * k3.0, y.1 + h * k3.1));
        y.0 += h / 6.0 * (k1.0 + 2.0 * k2.0 + 2.0 * k3.0 + k4.0);
        y.1 += h / 6.0 * (k1.1 + 2.0 * k2.1 + 2.0 * k3.1 + k4.1);
    }
    y.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shipped = std::fs::read_to_string("scenes/pendulum.joule")?;
    let scene = Scene::compile(&(shipped + FIT))?;
    let (g, theta0, dt) = (9.81, 30f64.to_radians(), 1e-3); // as in the scene
    let (truth, steps) = (1.3, 600);
    let seen = ideal_angle(truth, g, theta0, steps as f64 * dt);
    println!("measured: {seen:.6} rad at {} s", steps as f64 * dt);

    let objective = Objective::loss("off");
    let mut length = 1.0; // the scene's default
    for iteration in 0..30 {
        let mut sim = scene.batch(1);
        sim.set_param("length", length)?;
        sim.set_param("seen", seen)?;
        let grad = sim.gradient(&objective, steps)?;
        // Params in declaration order: length first.
        let (off, slope) = (grad.value[0], grad.params[0][0]);
        println!("iteration {iteration:2}: length {length:.6} m, squared miss {off:.3e} rad^2");
        if off < 1e-20 {
            break;
        }
        // Gauss-Newton on off = r^2: step = off / slope (a Newton step on r).
        length = (length - 2.0 * off / slope).clamp(0.2, 5.0);
    }

    // The fitted pendulum's period from the downward zero crossings of its
    // angle over 8 s (times interpolated).
    let mut sim = scene.batch(1);
    sim.set_param("length", length)?;
    let mut angles = vec![];
    for _ in 0..8000 {
        sim.step();
        angles.push(sim.output("angle")[0][0]);
    }
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let crossings: Vec<f64> = angles
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] > 0.0 && w[1] <= 0.0)
        .map(|(i, w)| dt * (i as f64 + 1.0 + w[0] / (w[0] - w[1])))
        .collect();
    let period = (crossings[crossings.len() - 1] - crossings[0]) / (crossings.len() - 1) as f64;
    let law = 4.0 * (length / g).sqrt() * elliptic_k((theta0 / 2.0).sin());
    println!(
        "fitted length {length:.5} m (the ideal pendulum's {truth} m); \
         its period {period:.5} s, the law's {law:.5} s"
    );
    // The simulation is not the ideal pendulum (its rod stretches by about
    // 1 mm, its time step is 1 ms), so the fit lands near, not on, 1.3 m.
    assert!(
        (length - truth).abs() < 2e-3 * truth,
        "the fitted length {length} m is not the measured pendulum's {truth} m"
    );
    assert!(
        (period - law).abs() < 1e-3 * law,
        "the fitted pendulum's period {period} s is not the law's {law} s"
    );
    Ok(())
}
