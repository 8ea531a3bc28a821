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

use joule_learn::envs::{healthy_observations, Envs, Fault, FaultKind};
use joule_learn::imitate::{Demo, Imitation, Imitator};
use joule_learn::norm::Normalizer;
use joule_learn::policy::{self, read_safetensors};
use joule_learn::{window, Algo, Config, Point, Policy, Trainer};
use joule_runtime::Scene;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A scene file of the workspace (`tests/learn/reach.joule`, `scenes/...`).
fn load(path: &str) -> Scene {
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    Scene::from_path(path.as_ref(), Default::default()).expect("the scene compiles")
}

fn scene() -> Scene {
    load("tests/learn/reach.joule")
}

/// The environment hit, and the step after which: the fourth step of the
/// second window (windows of 10 steps).
const ENV: usize = 2;
const STEP: usize = 13;

/// Tensors as bit patterns by name.
type Bits = BTreeMap<String, Vec<u64>>;

/// A run's tensors at the end, at the start, and its curve.
type Run = (Bits, Bits, Vec<Point>);

/// Every tensor of a safetensors file, as bit patterns by name.
fn tensors(bytes: &[u8]) -> Bits {
    let (t, _) = read_safetensors(bytes).expect("safetensors");
    t.into_iter()
        .map(|(name, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            (name, v.into_iter().map(f64::to_bits).collect())
        })
        .collect()
}

fn all_finite(t: &Bits) -> bool {
    t.values().flatten().all(|b| f64::from_bits(*b).is_finite())
}

/// The policy's weights only (`policy.*`), as bit patterns.
fn weights(t: &Bits) -> Vec<u64> {
    t.iter()
        .filter(|(n, _)| n.starts_with("policy."))
        .flat_map(|(_, v)| v.clone())
        .collect()
}

/// Observations the normaliser has counted.
fn counted(t: &Bits) -> f64 {
    f64::from_bits(t["norm.count"][0])
}

fn sum(curve: &[Point], f: impl Fn(&Point) -> usize) -> usize {
    curve.iter().map(f).sum()
}

/// Three iterations of `algo` with `kind` planted (or nothing): the whole
/// checkpoint's tensors (networks, Adam's moments, normalisation,
/// environments), the initial ones, and the curve.
fn train(scene: &Scene, reward: &str, algo: Algo, kind: Option<FaultKind>) -> Run {
    let mut c = Config::new(algo, reward);
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
            (
                bits(p.reward),
                bits(p.loss),
                bits(p.grad_norm),
                p.dropped,
                p.resets,
            )
        })
        .collect()
}

#[test]
fn a_nan_state_is_masked_and_reset_in_apg_shac_and_ppo() {
    let scene = scene();
    for algo in [Algo::Apg, Algo::Shac, Algo::Ppo] {
        check_training(&scene, "closeness", algo);
    }
}

/// Issue 25's setting: SHAC on the implicit soft walker, where the NaN
/// environment goes through Newton's iterations and the adjoint solves.
#[test]
fn a_nan_state_is_masked_and_reset_on_an_implicit_soft_scene() {
    check_training(&load("scenes/soft_walker.joule"), "forward", Algo::Shac);
}

/// The NaN run against the masked run and the run without a fault.
fn check_training(scene: &Scene, reward: &str, algo: Algo) {
    // The masked environment's observations after step 3 of its window
    // (6 of the 10) are left out of the normalisation.
    compare(
        &format!("{algo:?}"),
        train(scene, reward, algo, Some(FaultKind::Nan)),
        train(scene, reward, algo, Some(FaultKind::Mask)),
        train(scene, reward, algo, None),
        6.0,
    );
}

/// The run with a NaN planted against the run masking the same environment
/// at the same step and the run without a fault (`what` names the case):
/// `missing` observations fewer in the masked run's normalisation.
fn compare(what: &str, nan: Run, masked: Run, clean: Run, missing: f64) {
    let ((nan, initial, nan_curve), (masked, _, masked_curve)) = (nan, masked);
    let (clean, _, clean_curve) = clean;
    assert!(all_finite(&nan), "{what}: non-finite tensors");
    assert_eq!(
        nan_curve.iter().map(|p| p.resets).collect::<Vec<_>>(),
        [0, 1, 0],
        "{what}: one reset, in the second iteration"
    );
    assert_eq!(sum(&clean_curve, |p| p.resets), 0, "{what}");
    // The simulator saw the NaN state (its divergence event).
    assert_eq!(
        sum(&nan_curve, |p| p.events),
        sum(&masked_curve, |p| p.events) + 1,
        "{what}"
    );
    // The dropped adjoint and the masked controls are not NaN guard drops.
    assert_eq!(sum(&nan_curve, |p| p.dropped), 0, "{what}");
    // Bitwise the masked run: weights, critics, Adam's moments, the
    // normalisation, every environment's state; the same curve.
    assert_eq!(nan, masked, "{what}: differs from the masked run");
    assert_eq!(numbers(&nan_curve), numbers(&masked_curve), "{what}");
    // Not trivially: the weights moved, and masking the environment
    // changed them.
    assert_ne!(weights(&masked), weights(&initial), "{what}: no update");
    assert_ne!(
        weights(&masked),
        weights(&clean),
        "{what}: masking changed nothing"
    );
    assert_eq!(counted(&masked), counted(&clean) - missing, "{what}");
}

/// A demonstration of `miss` and `speed` (with states) by constant thrust,
/// `steps` steps of environment 0.
fn demo(scene: &Scene, steps: usize) -> Demo {
    let mut sim = scene.batch(1);
    let layout = scene.compiled.layout();
    let rows: Vec<usize> = ["miss", "speed"]
        .iter()
        .flat_map(|n| {
            let o = layout.output(n).expect("output");
            o.offset..o.offset + o.len
        })
        .collect();
    sim.set_controls(&[vec![0.6], vec![0.3]]).unwrap();
    let mut d = Demo {
        outputs: vec![],
        states: vec![(sim.positions(0), sim.velocities(0))],
    };
    for _ in 0..steps {
        sim.step();
        let out = sim.outputs();
        d.outputs.push(rows.iter().map(|&r| out[r][0]).collect());
        d.states.push((sim.positions(0), sim.velocities(0)));
    }
    d
}

/// Three imitation iterations (whole episodes of 20 steps, or windows of
/// 10) with `kind` planted: the policy's tensors, the initial ones, the curve.
fn imitate(scene: &Scene, window: Option<usize>, kind: Option<FaultKind>) -> Run {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let spec = policy::spec(scene, None).expect("one policy");
    let mut policy = Policy::new(scene, spec, &mut rng).expect("policy");
    let initial = tensors(&policy.to_bytes().unwrap());
    let settings = Imitation {
        outputs: vec!["miss".into(), "speed".into()],
        reward: Some("closeness".into()),
        steps: 20,
        window,
        eval_every: 1,
        batch: 4,
        threads: 1,
        lr: 0.03,
        lr_decay: 0,
        clip: 1.0,
        noise: 0.1,
        seed: 1,
    };
    let mut im = Imitator::new(scene, &policy, demo(scene, 20), settings).expect("imitator");
    if let Some(kind) = kind {
        // Whole episodes: the fourth step of the second episode.
        let step = if window.is_some() { STEP } else { 23 };
        im.plant(Fault {
            env: ENV,
            step,
            kind,
        });
    }
    for _ in 0..3 {
        im.iterate(&mut policy).expect("iteration");
    }
    (tensors(&policy.to_bytes().unwrap()), initial, im.curve)
}

#[test]
fn a_nan_state_is_masked_and_reset_in_imitation() {
    let scene = scene();
    for window in [None, Some(10)] {
        // 6 of a window's 10 observations, 16 of an episode's 20.
        compare(
            &format!("{window:?}"),
            imitate(&scene, window, Some(FaultKind::Nan)),
            imitate(&scene, window, Some(FaultKind::Mask)),
            imitate(&scene, window, None),
            if window.is_some() { 6.0 } else { 16.0 },
        );
    }
}

/// What the guard keeps out: the NaN environment's raw observations (what
/// the trainers fed the normaliser before) would make every mean NaN, and
/// with it every normalised input of every environment; the guard's
/// observations, masked and cut at the divergence, keep it finite. (The
/// reverse pass through the NaN state would likewise have made that
/// environment's control adjoints NaN at every earlier step, all dropped
/// by the old guard, 33 of them in issue 25's run; here none is, and the
/// gradient is finite.)
#[test]
fn raw_observations_of_a_nan_state_would_poison_the_normaliser() {
    let scene = scene();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let spec = policy::spec(&scene, None).expect("one policy");
    let policy = Policy::new(&scene, spec, &mut rng).expect("policy");
    let mut envs = Envs::new(&scene, 4, 1, Some("closeness"), 100, 0.1, &mut rng).unwrap();
    envs.fault = Some(Fault {
        env: ENV,
        step: 3,
        kind: FaultKind::Nan,
    });
    let mut r = window::forward(&mut envs, &policy, 10, None).expect("window");
    assert_eq!(envs.resets, 1);
    assert!(envs.diverged[ENV] && !envs.alive[ENV]);
    assert_eq!(r.diverged.iter().filter(|d| d[ENV]).count(), 1);
    let raw: Vec<Vec<f64>> = r.outputs.iter().flat_map(|o| policy.observe(o)).collect();
    assert!(raw.iter().flatten().any(|x| x.is_nan()));
    let mut poisoned = Normalizer::new(policy.inputs());
    poisoned.update(&raw);
    assert!(
        poisoned.mean.iter().all(|m| m.is_nan()),
        "{:?}",
        poisoned.mean
    );
    assert!(r.obs.iter().flatten().flatten().all(|x| x.is_finite()));
    let mut guarded = Normalizer::new(policy.inputs());
    guarded.update(&healthy_observations(&r.obs, &r.diverged));
    assert!(guarded
        .mean
        .iter()
        .chain(&guarded.m2)
        .all(|m| m.is_finite()));
    // Steps 0..=3 of the diverged environment and all 10 of the others.
    assert_eq!(guarded.count, (4 + 3 * 10) as f64);
    let (weight, row, rows) = (r.weight.clone(), envs.reward_row.unwrap(), envs.rows);
    let seeds = |t: usize| {
        let mut s = vec![vec![0.0; 4]; rows];
        s[row].clone_from(&weight[t]);
        s
    };
    let (grads, dropped) = window::backward(&mut envs, &policy, &mut r, seeds, None, 0.0).unwrap();
    assert_eq!(dropped, 0);
    let g: Vec<f64> = grads
        .iter()
        .flat_map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect();
    assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| *x != 0.0));
}
