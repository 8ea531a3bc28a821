//! The divergence guard: a NaN state planted in one environment in the middle
//! of a window (`Fault`, the learn crate's hook, which sets the state through
//! `Sim::set_state`) is masked and counted as a reset, and nothing of it
//! reaches the weights, the optimisers, the normalisation or the value
//! networks, for apg, shac, ppo and imitation (whole episodes and windows),
//! on the reach scene of the CLI tests (`tests/learn/reach.joule`).
//!
//! Each NaN run is compared with the run in which the same environment is
//! masked at the same step by the same path (`FaultKind::Mask`, its state
//! left finite): every tensor must be bitwise equal. So that the comparison
//! cannot pass trivially, the masked run must differ from the run without a
//! fault (the environment mattered) and its weights from the initial ones,
//! and the NaN run's simulator must have reported the divergence (the
//! non-finite state was really there). `raw_observations_of_a_nan_state_would_poison_the_normaliser`
//! shows what the guard prevents.

use candle_core::Tensor;
use joule_learn::envs::{healthy_observations, Envs, Fault, FaultKind};
use joule_learn::imitate::{Demo, Imitation, Imitator};
use joule_learn::norm::Normalizer;
use joule_learn::policy::{self, read_safetensors};
use joule_learn::{window, Algo, Config, Point, Policy, Trainer};
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

fn scene() -> Scene {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/learn/reach.joule");
    Scene::from_path(path.as_ref(), Default::default()).expect("the reach scene compiles")
}

/// The environment hit, and the step after which: the fourth step of the
/// second window (windows of 10 steps).
const ENV: usize = 2;
const STEP: usize = 13;

/// Every tensor of a safetensors file, as bit patterns by name.
fn tensors(bytes: &[u8]) -> BTreeMap<String, Vec<u64>> {
    let (t, _) = read_safetensors(bytes).expect("safetensors");
    t.into_iter()
        .map(|(name, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            (name, v.into_iter().map(f64::to_bits).collect())
        })
        .collect()
}

fn all_finite(t: &BTreeMap<String, Vec<u64>>) -> bool {
    t.values().flatten().all(|b| f64::from_bits(*b).is_finite())
}

/// The policy's weights only (`policy.*`), as bit patterns.
fn weights(t: &BTreeMap<String, Vec<u64>>) -> Vec<u64> {
    t.iter()
        .filter(|(n, _)| n.starts_with("policy."))
        .flat_map(|(_, v)| v.clone())
        .collect()
}

fn sum(curve: &[Point], f: impl Fn(&Point) -> usize) -> usize {
    curve.iter().map(f).sum()
}

/// Three iterations of `algo` with `kind` planted (or nothing): the whole
/// checkpoint's tensors (networks, Adam's moments, normalisation,
/// environments), the initial ones, and the curve.
fn train(
    scene: &Scene,
    algo: Algo,
    kind: Option<FaultKind>,
) -> (
    BTreeMap<String, Vec<u64>>,
    BTreeMap<String, Vec<u64>>,
    Vec<Point>,
) {
    let mut c = Config::new(algo, "closeness");
    (c.batch, c.horizon, c.episode, c.seed) = (4, 10, 20, 3);
    if algo == Algo::Ppo {
        c.lr = 3e-3;
    }
    let mut tr = Trainer::new(scene, c).expect("trainer");
    let initial = tensors(&tr.checkpoint().unwrap());
    if let Some(kind) = kind {
        tr.plant(Fault {
            env: ENV,
            step: STEP,
            kind,
        });
    }
    for _ in 0..3 {
        tr.iterate().expect("iteration");
    }
    (tensors(&tr.checkpoint().unwrap()), initial, tr.curve)
}

/// The curve's numbers that do not depend on the wall clock or the events.
fn numbers(curve: &[Point]) -> Vec<(u64, u64, u64, usize, usize)> {
    curve
        .iter()
        .map(|p| {
            let bits = |x: f64| x.to_bits();
            (bits(p.reward), bits(p.loss), bits(p.grad_norm), p.dropped, p.resets)
        })
        .collect()
}

#[test]
fn a_nan_state_is_masked_and_reset_in_apg_shac_and_ppo() {
    let scene = scene();
    for algo in [Algo::Apg, Algo::Shac, Algo::Ppo] {
        let (nan, initial, nan_curve) = train(&scene, algo, Some(FaultKind::Nan));
        let (masked, _, masked_curve) = train(&scene, algo, Some(FaultKind::Mask));
        let (clean, _, clean_curve) = train(&scene, algo, None);
        assert!(all_finite(&nan), "{algo:?}: non-finite tensors");
        assert_eq!(
            nan_curve.iter().map(|p| p.resets).collect::<Vec<_>>(),
            [0, 1, 0],
            "{algo:?}: one reset, in the second iteration"
        );
        assert_eq!(sum(&clean_curve, |p| p.resets), 0, "{algo:?}");
        // The simulator saw the NaN state (its divergence event).
        assert_eq!(
            sum(&nan_curve, |p| p.events),
            sum(&masked_curve, |p| p.events) + 1,
            "{algo:?}"
        );
        // The dropped adjoint and the masked controls are not NaN guard drops.
        assert_eq!(sum(&nan_curve, |p| p.dropped), 0, "{algo:?}");
        // Bitwise the masked run: weights, critics, Adam's moments, the
        // normalisation, every environment's state; the same curve.
        assert_eq!(nan, masked, "{algo:?}: differs from the masked run");
        assert_eq!(numbers(&nan_curve), numbers(&masked_curve), "{algo:?}");
        // Not trivially: the weights moved, and masking the environment
        // changed them.
        assert_ne!(weights(&masked), weights(&initial), "{algo:?}: no update");
        assert_ne!(
            weights(&masked),
            weights(&clean),
            "{algo:?}: masking changed nothing"
        );
    }
}
