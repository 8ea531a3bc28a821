//! Policies and training checkpoints (safetensors) read in process, damaged
//! by truncation, byte flips and insertions (the CLI's side, one process a
//! case, is `tests/fuzz_files.rs`): each is refused with an error or read,
//! and a checkpoint that is read resumes and runs an iteration; never a
//! panic, a hang or an allocation its settings did not bound.
//! `PROPTEST_CASES` sets the cases per test (64 by default: the test
//! suite's budget; 20,000 for a long run).

use joule_learn::{Algo, Config, Policy, Trainer};
use joule_runtime::Scene;
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

#[derive(Debug, Clone)]
enum Damage {
    Truncate(f64),
    Flip(Vec<(f64, u8)>),
    Insert(f64, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..8).prop_map(Damage::Flip),
        // Digits make numbers in the metadata larger; any bytes, anything.
        (0.0..1.0f64, prop::collection::vec(b'0'..=b'9', 1..12))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

fn apply(bytes: &[u8], d: &Damage) -> Vec<u8> {
    let at = |f: f64| ((f * bytes.len() as f64) as usize).min(bytes.len());
    match d {
        Damage::Truncate(f) => bytes[..at(*f)].to_vec(),
        Damage::Flip(flips) => {
            let mut b = bytes.to_vec();
            for (f, v) in flips {
                let i = at(*f).min(b.len().saturating_sub(1));
                if let Some(x) = b.get_mut(i) {
                    *x = *v;
                }
            }
            b
        }
        Damage::Insert(f, extra) => {
            let mut b = bytes.to_vec();
            let i = at(*f);
            b.splice(i..i, extra.iter().copied());
            b
        }
    }
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
            let _ = tr.iterate();
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
