//! PPO's settings beyond the defaults (`Config::{epochs, minibatches,
//! entropy, reward_scale, value_hidden}`, Brax's `num_updates_per_batch`,
//! `num_minibatches`, `entropy_cost`, `reward_scaling` and value network),
//! on the reach scene of the CLI tests: each does what it says, measured on
//! the trained tensors.

use candle_core::Tensor;
use joule_learn::policy::read_safetensors;
use joule_learn::{Algo, Config, Trainer};
use joule_runtime::Scene;
use std::collections::BTreeMap;

fn scene() -> Scene {
    let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
    Scene::from_path(path.as_ref(), Default::default()).expect("the scene compiles")
}

fn config() -> Config {
    let mut c = Config::new(Algo::Ppo, "closeness");
    (c.batch, c.horizon, c.episode, c.seed) = (4, 10, 20, 3);
    c
}

/// The checkpoint's tensors after `iters` iterations of `c`.
fn tensors(scene: &Scene, c: Config, iters: usize) -> BTreeMap<String, Tensor> {
    let mut tr = Trainer::new(scene, c).expect("trainer");
    for _ in 0..iters {
        tr.iterate().expect("iteration");
    }
    let (t, _) = read_safetensors(&tr.checkpoint().unwrap()).expect("safetensors");
    t.into_iter().collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// With an entropy weight far above the (normalised) surrogate's scale,
/// the log standard deviations follow the entropy's gradient: at PPO's
/// initial 0.61 the squashed Gaussian's entropy still grows with the width
/// (the squash's saturation takes back about three quarters of the
/// Gaussian's gain), so each of Adam's steps raises every log standard
/// deviation by nearly the learning rate: one iteration of 3 passes of 2
/// minibatches makes 6 steps. Without the bonus they follow the surrogate's
/// gradient, not all of them up.
#[test]
fn the_entropy_bonus_widens_the_gaussian_by_one_step_per_minibatch() {
    let scene = scene();
    let mut c = config();
    (c.batch, c.epochs, c.minibatches, c.entropy, c.lr, c.clip) = (16, 3, 2, 1e4, 1e-3, 1e12);
    let start = -0.5; // PPO's initial log standard deviation
    let after = values(&tensors(&scene, c.clone(), 1)["log_std"]);
    for l in &after {
        let steps = (l - start) / c.lr;
        assert!(
            (4.5..=6.0).contains(&steps),
            "rose by {steps} steps, not about 6"
        );
    }
    c.entropy = 0.0;
    let plain = values(&tensors(&scene, c.clone(), 1)["log_std"]);
    assert!(
        plain.iter().any(|l| (l - start) / c.lr < 4.5),
        "without the bonus: {plain:?}"
    );
}

/// The reward's scale changes the update (through the value targets the
/// critic learns) but not the reported returns: the first iteration, whose
/// rollout precedes every update, reports the same mean return.
#[test]
fn the_reward_scale_acts_on_the_update_and_not_on_the_reported_return() {
    let scene = scene();
    let run = |scale: f64| {
        let mut c = config();
        (c.reward_scale, c.episode) = (scale, c.horizon);
        let mut tr = Trainer::new(&scene, c).expect("trainer");
        let first = tr.iterate().expect("iteration").reward;
        tr.iterate().expect("iteration");
        let (t, _) = read_safetensors(&tr.checkpoint().unwrap()).expect("safetensors");
        let critic: Vec<f64> = t
            .iter()
            .filter(|(n, _)| n.starts_with("critic."))
            .flat_map(|(_, t)| values(t))
            .collect();
        (first, critic)
    };
    let (r1, k1) = run(1.0);
    let (r10, k10) = run(10.0);
    assert!(r1.is_finite(), "an episode ended in the first iteration");
    assert_eq!(r1, r10, "returns are reported unscaled");
    assert_ne!(k1, k10, "the value network learns the scaled returns");
}

/// `value_hidden` sizes the value network, not the policy.
#[test]
fn the_value_network_takes_its_own_widths() {
    let scene = scene();
    let mut c = config();
    c.value_hidden = Some(vec![7, 5]);
    let t = tensors(&scene, c, 1);
    let dims = |n: &str| t[n].dims().to_vec();
    // reach observes 6 numbers (miss, speed); its policy has one layer of 16.
    assert_eq!(dims("critic.0.weight"), [7, 6]);
    assert_eq!(dims("critic.1.weight"), [5, 7]);
    assert_eq!(dims("critic.2.weight"), [1, 5]);
    assert_eq!(dims("policy.0.weight"), [16, 6]);
}

/// An f32 value network (`value_f32`) computes the f64 network's values to
/// f32's rounding, from the same initial weights, and its gradients flow.
#[test]
fn an_f32_network_computes_the_f64_networks_values_to_f32_rounding() {
    use candle_core::Device;
    use joule_compiler::model::{Activation, Init};
    use joule_learn::net::Mlp;
    use rand::SeedableRng;
    let make = || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        Mlp::new(
            &[5, 64, 64, 1],
            Activation::Swish,
            Init::Small,
            1.0,
            &mut rng,
        )
        .unwrap()
    };
    let (wide, narrow) = (make(), make().in_f32().unwrap());
    let x: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let x = Tensor::from_vec(x, (8, 5), &Device::Cpu).unwrap();
    let (a, b) = (
        values(&wide.forward(&x).unwrap()),
        values(&narrow.forward(&x).unwrap()),
    );
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
        assert_ne!(a, b, "the f32 network rounds");
    }
    let loss = narrow
        .forward(&x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    for v in narrow.vars() {
        let g = grads
            .get(v.as_tensor())
            .expect("a gradient for every weight");
        assert_eq!(g.dtype(), candle_core::DType::F32);
    }
}

/// The reach scene's policy (two controls in -1..1) and a generator.
fn policy(scene: &Scene) -> (joule_learn::Policy, rand_chacha::ChaCha8Rng) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let spec = joule_learn::policy::spec(scene, None).expect("a policy");
    (
        joule_learn::Policy::new(scene, spec, &mut rng).unwrap(),
        rng,
    )
}

/// The squashed Gaussian's entropy estimate against independent numbers:
/// for a narrow Gaussian, `ln(1 - tanh(y)^2) = -y^2 + y^4/6 - ...` gives
/// `H = 1/2 ln(2 pi e s^2) - s^2 + s^4/2 + ...` per control (the range
/// -1..1: no `ln half`); wider noise past the range lowers it (the squash
/// saturates) where the Gaussian's alone would keep growing. (Its
/// gradient: ppo.rs's unit tests.)
#[test]
fn the_squashed_entropy_is_the_tanh_normals() {
    use joule_learn::ppo::squashed_entropy;
    use rand_distr::{Distribution, StandardNormal};
    let scene = scene();
    let (policy, mut rng) = policy(&scene);
    let rows = 20_000;
    let eps: Vec<f64> = (0..rows * 2)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let zeros = vec![0.0; rows * 2];
    let entropy = |log_std: f64| {
        squashed_entropy(policy.bounds(), &zeros, &vec![log_std; rows * 2], &eps).value
    };
    let s = 0.05f64;
    let per_control = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * s * s).ln() - s * s
        + s.powi(4) / 2.0;
    let got = entropy(s.ln());
    assert!(
        (got - 2.0 * per_control).abs() < 2e-4,
        "{got} vs {}",
        2.0 * per_control
    );
    let (h1, h5) = (entropy(0.0), entropy(5f64.ln()));
    assert!(h5 < h1, "wider noise saturates: {h5} >= {h1}");
}
