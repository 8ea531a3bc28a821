//! The policy gradient through the simulator against central finite
//! differences of the network's weights: a window of closed-loop steps, the
//! controls set by the network from observations every step (so the gradient
//! flows through the dynamics, the controls and the observations), on an
//! implicit rigid-body scene and an explicit particle scene, with and
//! without a value network closing the window, with the squash penalty
//! on the network's pre-`tanh` outputs, and acting with exploration noise
//! (the reparameterised sample: the gradient of its log standard deviation
//! too, the noise held fixed).

use candle_core::{Device, Tensor, Var};
use joule_compiler::model::{Activation, Init, Integrator};
use joule_learn::envs::Envs;
use joule_learn::net::Mlp;
use joule_learn::{policy, window, Policy};
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A scene whose implicit solves are tight enough for finite differences.
fn tight(src: &str) -> Scene {
    let checked = joule_compiler::check_source("test.joule", src);
    let mut model = checked.model.expect("the scene compiles");
    if let Integrator::ImplicitEuler { kinematics, .. } = model.settings.integrator {
        model.settings.integrator = Integrator::ImplicitEuler {
            iterations: 60,
            tolerance: 1e-15,
            kinematics,
        };
    }
    Scene::from_model(model, joule_compiler::compiled::Backend::Jit).expect("kernels compile")
}

/// The window loss (with the squash penalty `penalty`, exploring with
/// `log_std` and the same noise every call) from a fresh, identically
/// jittered batch.
fn loss(
    scene: &Scene,
    policy: &Policy,
    value: Option<&Mlp>,
    steps: usize,
    penalty: f64,
    log_std: Option<&Var>,
) -> (f64, Vec<Tensor>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let reward = scene
        .compiled
        .layout()
        .outputs
        .iter()
        .find(|o| o.kind == joule_compiler::model::ObjectiveKind::Reward)
        .map(|o| o.name.clone());
    let mut envs = Envs::new(scene, 3, 1, reward.as_deref(), 100, 0.3, &mut rng).expect("envs");
    let mut noise = ChaCha8Rng::seed_from_u64(11);
    let explore = log_std.map(|log_std| window::Explore {
        log_std,
        rng: &mut noise,
    });
    let w = window::run(&mut envs, policy, steps, 0.9, value, penalty, explore).expect("window");
    assert_eq!(w.dropped, 0);
    (w.loss, w.grads)
}

/// The largest absolute entry of a tensor.
fn largest_entry(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn check(scene: &Scene, steps: usize, with_value: bool, penalty: f64, explore: Option<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let spec = policy::spec(scene, None).expect("one policy");
    let mut policy = Policy::new(scene, spec, &mut rng).expect("policy");
    // Larger output weights than a fresh policy's, so the controls move.
    let vars = policy.net.vars();
    let last = &vars[vars.len() - 2];
    last.set(&(last.as_tensor() * 100.0).unwrap()).unwrap();
    // A normalisation that is not the identity.
    let obs: Vec<Vec<f64>> = (0..5)
        .map(|i| {
            (0..policy.inputs())
                .map(|k| (i * k) as f64 * 0.1 + i as f64 * 0.3)
                .collect()
        })
        .collect();
    policy.norm.update(&obs);
    let value = with_value.then(|| {
        Mlp::new(
            &[policy.inputs(), 8, 1],
            Activation::Tanh,
            Init::Small,
            1.0,
            &mut rng,
        )
        .expect("value")
    });
    let k = policy.controls.len();
    let log_std = explore.map(|s| Var::from_vec(vec![s.ln(); k], k, &Device::Cpu).unwrap());
    let (_, grads) = loss(
        scene,
        &policy,
        value.as_ref(),
        steps,
        penalty,
        log_std.as_ref(),
    );
    if penalty > 0.0 || log_std.is_some() {
        let (_, plain) = loss(scene, &policy, value.as_ref(), steps, 0.0, None);
        let apart = grads
            .iter()
            .zip(&plain)
            .map(|(a, b)| largest_entry(&(a - b).unwrap()))
            .fold(0.0, f64::max);
        let largest = grads.iter().map(largest_entry).fold(0.0, f64::max);
        assert!(
            apart > 0.01 * largest,
            "the penalty or the noise moved the gradient by only {apart} (its largest entry: {largest})"
        );
    }
    let mut vars = policy.net.vars();
    vars.extend(log_std.iter().cloned());
    assert_eq!(vars.len(), grads.len());
    let mut checked = 0;
    for (v, g) in vars.iter().zip(&grads) {
        let flat = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let gflat = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for i in [0, flat.len() / 2, flat.len() - 1] {
            let at = |x: f64| {
                let mut p = flat.clone();
                p[i] = x;
                let t = Tensor::from_vec(p, v.as_tensor().shape(), v.as_tensor().device()).unwrap();
                v.set(&t).unwrap();
                let l = loss(
                    scene,
                    &policy,
                    value.as_ref(),
                    steps,
                    penalty,
                    log_std.as_ref(),
                )
                .0;
                v.set(
                    &Tensor::from_vec(flat.clone(), v.as_tensor().shape(), v.as_tensor().device())
                        .unwrap(),
                )
                .unwrap();
                l
            };
            let h = 1e-6 * flat[i].abs().max(1.0);
            let fd = (at(flat[i] + h) - at(flat[i] - h)) / (2.0 * h);
            let tol = 1e-5 * fd.abs().max(1e-4);
            assert!(
                (gflat[i] - fd).abs() < tol,
                "weight {i} of {:?}: adjoint {} vs central difference {fd}",
                v.as_tensor().dims(),
                gflat[i]
            );
            checked += 1;
        }
    }
    assert!(checked >= 9 + 3 * usize::from(explore.is_some()));
}

#[test]
fn policy_gradient_through_implicit_rigid_bodies_matches_finite_differences() {
    let src = std::fs::read_to_string("../scenes/cartpole.joule").expect("cartpole");
    check(&tight(&src), 6, false, 0.0, None);
}

#[test]
fn policy_gradient_with_the_squash_penalty_matches_finite_differences() {
    let src = std::fs::read_to_string("../scenes/cartpole.joule").expect("cartpole");
    check(&tight(&src), 6, false, 0.05, None);
}

#[test]
fn policy_gradient_through_exploration_noise_matches_finite_differences() {
    let src = std::fs::read_to_string("../scenes/cartpole.joule").expect("cartpole");
    check(&tight(&src), 6, true, 0.0, Some(0.5));
}

#[test]
fn policy_gradient_with_a_closing_value_matches_finite_differences() {
    let src = std::fs::read_to_string("../scenes/cartpole.joule").expect("cartpole");
    check(&tight(&src), 4, true, 0.0, None);
}

/// Two particles on explicit springs, the policy's hidden layer activated by `ACTIVATION`.
const SPRINGS: &str = r#"
settings { dt = 0.01, gravity = vec3(0, 0, -9.81) }
control f[k in 0..2] in -3..3
particle a { x = vec3(0, 0, 1), mass = 1 }
particle b { x = vec3(0.5, 0, 1), mass = 2 }
fix a
energy spring(p: particle, q: particle, k: scalar, l: scalar) = 0.5 * k * (norm(p.x - q.x) - l)^2
spring(a, b, 50, 0.5)
energy push(p: particle, g: control, h: control) = -g * p.x.x - h * p.x.z
push(b, f[0], f[1])
observe pos = b.x
observe vel = b.v
reward up = b.x.z - 0.1 * f[0]^2
policy actor = mlp(inputs = [pos, vel], outputs = f, hidden = [6], activation = ACTIVATION)
"#;

#[test]
fn policy_gradient_through_explicit_springs_matches_finite_differences() {
    check(
        &tight(&SPRINGS.replace("ACTIVATION", "elu")),
        8,
        false,
        0.0,
        None,
    );
}

#[test]
fn policy_gradient_through_a_swish_network_matches_finite_differences() {
    check(
        &tight(&SPRINGS.replace("ACTIVATION", "swish")),
        8,
        false,
        0.0,
        None,
    );
}
