//! Write your own energy: a bead on a ring with a magnet, where the magnet's
//! attraction is a user-defined energy; compiled and differentiated like the
//! built-in ones, and compile errors come back as values you can inspect.
//!
//! Run: `cargo run --example custom_energy`

use joule::{Objective, Scene};

const SCENE: &str = r#"
scene "bead, ring and magnet"
settings { dt = 1e-3, gravity = vec3(0, 0, 0), integrator = symplectic_euler }
param strength = 0.05
particle bead { x = vec3(1, 0, 0), v = vec3(0, 0.5, 0), mass = 0.01 }

// Stay on the unit ring (a stiff spring to radius 1, in the x-y plane).
energy ring(p: particle) = 0.5 * 1e4 * ((norm(vec2(p.x.x, p.x.y)) - 1)^2 + p.x.z^2)

// A softened 1/r magnet at (0, 2, 0): attracts the bead.
energy magnet(p: particle, k: scalar) = -k / sqrt(dot(p.x - vec3(0, 2, 0), p.x - vec3(0, 2, 0)) + 0.01)

ring(bead)
magnet(bead, strength)
observe angle = atan2(bead.x.y, bead.x.x)
loss far = -bead.x.y
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A typo is a value with located diagnostics, not a crash.
    match Scene::compile(&SCENE.replace("magnet(bead, strength)", "magnet(bead, strenght)")) {
        Ok(_) => panic!("the typo should not compile"),
        Err(report) => println!("as expected, a compile error:\n{report}"),
    }
    let scene = Scene::compile(SCENE)?;
    let mut sim = scene.batch(1);
    let g = sim.gradient(&Objective::loss("far"), 2000)?;
    let angle = sim.output("angle")[0][0];
    println!(
        "after 2 s the bead is at {angle:.4} rad; d(-y)/d strength = {:.4}",
        g.params[0][0]
    );
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    // The adjoint agrees with a central difference of two more rollouts.
    let far = |k: f64| -> Result<f64, Box<dyn std::error::Error>> {
        let mut s = scene.batch(1);
        s.set_param("strength", k)?;
        s.rollout(2000);
        Ok(s.output("far")[0][0])
    };
    let h = 1e-6;
    let fd = (far(0.05 + h)? - far(0.05 - h)?) / (2.0 * h);
    println!("finite difference {fd:.4}");
    assert!((fd - g.params[0][0]).abs() < 1e-4 * fd.abs().max(1.0));
    Ok(())
}
