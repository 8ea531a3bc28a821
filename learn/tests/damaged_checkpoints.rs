//! Policies and training checkpoints (safetensors) read in process, damaged
//! by truncation, byte flips and insertions (the CLI's side, one process a
//! case, is `tests/fuzz_files.rs`): each is refused with an error or read,
//! and a checkpoint that is read resumes and (when its settings ask for
//! little work) runs an iteration; never a panic, a hang or an allocation
//! its settings did not bound.
//! `PROPTEST_CASES` sets the cases per test (64 by default: the test
//! suite's budget; 20,000 for a long run).

use joule_learn::{Algo, Config, Policy, Trainer};
use joule_runtime::Scene;
#[path = "../../tests/common/damage.rs"]
mod damage;

use damage::{apply, damage};
use proptest::prelude::*;
use std::sync::OnceLock;

fn scene() -> &'static Scene {
    static SCENE: OnceLock<Scene> = OnceLock::new();
    SCENE.get_or_init(|| {
        let path = format!("{}/../tests/learn/reach.joule", env!("CARGO_MANIFEST_DIR"));
        Scene::from_path(path.as_ref(), Default::default()).expect("the scene compiles")
    })
}

/// A PPO and a SHAC checkpoint after one iteration each, and a policy.
fn seeds() -> &'static [Vec<u8>; 3] {
    static SEEDS: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let checkpoint = |algo| {
            let mut c = Config::new(algo, "closeness");
            (c.batch, c.horizon, c.episode, c.seed, c.threads) = (4, 5, 10, 1, 1);
            let mut tr = Trainer::new(scene(), c).expect("trainer");
            tr.iterate().expect("iteration");
            (
                tr.checkpoint().expect("checkpoint"),
                tr.policy.to_bytes().expect("policy"),
            )
        };
        let (ppo, policy) = checkpoint(Algo::Ppo);
        let (shac, _) = checkpoint(Algo::Shac);
        [ppo, shac, policy]
    })
}

/// The checkpoint with the `i`-th number (counting modulo their count) of
/// its training state (the `joule.trainer` metadata, settings and counters)
/// replaced by `value`, the file otherwise intact: the damage byte flips
/// cannot make (they break the header's JSON or its length first).
fn edit_state(bytes: &[u8], i: usize, value: serde_json::Value) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("a length")) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("the header");
    let meta = &mut header["__metadata__"]["joule.trainer"];
    let mut state: serde_json::Value =
        serde_json::from_str(meta.as_str().expect("a string")).expect("the state");
    /// Replaces the `k`-th number of `v` (counting down `k`) by `value`.
    fn replace(v: &mut serde_json::Value, k: &mut usize, value: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(_) if *k == 0 => {
                *v = value.clone();
                true
            }
            serde_json::Value::Number(_) => {
                *k -= 1;
                false
            }
            serde_json::Value::Array(a) => a.iter_mut().any(|x| replace(x, k, value)),
            serde_json::Value::Object(o) => o.values_mut().any(|x| replace(x, k, value)),
            _ => false,
        }
    }
    let count = {
        let mut k = usize::MAX;
        replace(&mut state.clone(), &mut k, &value);
        usize::MAX - k
    };
    replace(&mut state, &mut (i % count), &value);
    *meta = serde_json::Value::String(state.to_string());
    let mut text = header.to_string().into_bytes();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    out
}

fn number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(u64::MAX)),
        (1u64..40).prop_map(|k| serde_json::json!(1u64 << k)),
        any::<u64>().prop_map(|k| serde_json::json!(k)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(|x| serde_json::json!(x)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_policy_is_refused_or_read(d in damage()) {
        let bytes = apply(&seeds()[2], &d);
        if let Ok(p) = Policy::from_bytes(scene(), &bytes) {
            // What was read writes again.
            prop_assert!(p.to_bytes().is_ok());
        }
    }

    #[test]
    fn a_checkpoint_with_a_wrong_setting_is_refused_or_resumes(i in 0..1000usize, v in number(), shac in any::<bool>()) {
        let bytes = edit_state(&seeds()[shac as usize], i, v);
        if let Ok(mut tr) = Trainer::resume(scene(), &bytes) {
            // Within the bounds a setting may still ask for hours of work
            // (2^20 rollouts an update): a run that small iterates here.
            let c = &tr.config;
            let work = [c.batch, c.horizon, c.unrolls, c.epochs]
                .iter()
                .fold(1u64, |p, &n| p.saturating_mul(n as u64));
            if work <= 1_000_000 {
                let _ = tr.iterate();
            }
        }
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_or_resumes(d in damage(), shac in any::<bool>()) {
        let bytes = apply(&seeds()[shac as usize], &d);
        if let Ok(mut tr) = Trainer::resume(scene(), &bytes) {
            // Its settings were checked: an iteration ends (well or with an error).
            let _ = tr.iterate();
        }
    }
}

/// The policy's first weight set to NaN.
fn poison(policy: &Policy) {
    let w = &policy.net.vars()[0];
    let mut values = w
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    values[0] = f64::NAN;
    let t = candle_core::Tensor::from_vec(values, w.as_tensor().dims(), &candle_core::Device::Cpu)
        .unwrap();
    w.set(&t).unwrap();
}

#[test]
fn weights_that_are_not_finite_are_neither_written_nor_read() {
    let policy = Policy::from_bytes(scene(), &seeds()[2]).expect("the policy");
    poison(&policy);
    let e = policy.to_bytes().expect_err("NaN weights written");
    assert!(
        e.to_string()
            .contains("`policy.0.weight` holds a non-finite value (NaN) at index 0"),
        "{e}"
    );
    // Written around the check, they are refused on reading.
    let bytes = safetensors::serialize(policy.named().unwrap(), Some(policy.metadata())).unwrap();
    match Policy::from_bytes(scene(), &bytes) {
        Ok(_) => panic!("NaN weights read"),
        Err(e) => assert!(e.to_string().contains("non-finite"), "{e}"),
    }
    // A checkpoint of a policy gone NaN is not written either.
    let mut c = Config::new(Algo::Apg, "closeness");
    (c.batch, c.horizon, c.episode, c.seed, c.threads) = (2, 5, 10, 1, 1);
    let tr = Trainer::new(scene(), c).expect("trainer");
    poison(&tr.policy);
    assert!(tr.checkpoint().is_err());
}

#[test]
fn a_learning_rate_or_clip_that_is_not_finite_and_positive_is_refused() {
    // The library's own check (the CLI checks its flags before): a trainer
    // is not made with such settings, whatever called it.
    for (lr, clip) in [
        (f64::NAN, 1.0),
        (-1e-3, 1.0),
        (0.0, 1.0),
        (1e-3, f64::INFINITY),
        (1e-3, -1.0),
    ] {
        let mut c = Config::new(Algo::Apg, "closeness");
        (c.batch, c.horizon, c.episode, c.seed, c.threads) = (2, 5, 10, 1, 1);
        (c.lr, c.clip) = (lr, clip);
        match Trainer::new(scene(), c) {
            Ok(_) => panic!("lr {lr}, clip {clip} accepted"),
            Err(e) => assert!(e.to_string().contains("must be finite and positive"), "{e}"),
        }
    }
}
