//! The learning-rate schedule (`Config::lr_decay`, `joule train --lr-decay`):
//! the rate falls linearly from `lr` to zero over `lr_decay` iterations, so
//! on the reach scene of the CLI tests the policy's weights move in the
//! first iterations and stop once the rate has reached zero, while the
//! same run at a constant rate keeps moving them.

use joule_learn::policy::read_safetensors;
use joule_learn::{Algo, Config, Trainer};
use joule_runtime::Scene;

fn scene() -> Scene {
    let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
    Scene::from_path(path.as_ref(), Default::default()).expect("the scene compiles")
}

/// The policy's weights after each of `iters` iterations.
fn weights(scene: &Scene, algo: Algo, lr_decay: usize, iters: usize) -> Vec<Vec<f64>> {
    let mut c = Config::new(algo, "closeness");
    (c.batch, c.horizon, c.episode, c.seed, c.lr_decay) = (4, 10, 20, 3, lr_decay);
    let mut tr = Trainer::new(scene, c).expect("trainer");
    (0..iters)
        .map(|_| {
            tr.iterate().expect("iteration");
            let (t, _) = read_safetensors(&tr.checkpoint().unwrap()).expect("safetensors");
            let t: std::collections::BTreeMap<_, _> = t.into_iter().collect();
            t.into_iter()
                .filter(|(n, _)| n.starts_with("policy."))
                .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f64>().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn the_rate_falls_linearly_to_zero() {
    let mut c = Config::new(Algo::Shac, "r");
    (c.lr, c.lr_decay) = (0.01, 4);
    let rates: Vec<f64> = (0..6).map(|i| c.lr_at(i)).collect();
    assert_eq!(rates, [0.01, 0.0075, 0.005, 0.0025, 0.0, 0.0]);
    c.lr_decay = 0;
    assert_eq!(c.lr_at(5), 0.01);
}

#[test]
fn weights_stop_moving_when_the_rate_reaches_zero() {
    let scene = scene();
    for algo in [Algo::Apg, Algo::Shac, Algo::Ppo] {
        // Rates lr, lr / 2, then 0 in the third and fourth iterations.
        let decayed = weights(&scene, algo, 2, 4);
        assert_ne!(decayed[0], decayed[1], "{algo:?}: the second iteration");
        assert_eq!(decayed[1], decayed[2], "{algo:?}: the third iteration");
        assert_eq!(decayed[2], decayed[3], "{algo:?}: the fourth iteration");
        let constant = weights(&scene, algo, 0, 4);
        assert_eq!(decayed[0], constant[0], "{algo:?}: the first iteration");
        assert_ne!(constant[2], constant[3], "{algo:?}: at a constant rate");
    }
}
