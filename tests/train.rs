//! `joule train`, `joule imitate` and `joule run --policy` end to end on the
//! small reach scene: learning improves the return over the untrained
//! policy, a resumed run is bitwise the uninterrupted one, imitation of one
//! demonstration (through the simulator, and by cloning its controls)
//! approaches the expert, and bad input is a diagnostic.

#[allow(dead_code)] // each test crate uses a different part of the shared helpers
mod common;
use common::{fails_with_hint, joule, rewrite_npz, temp};

const SCENE: &str = "tests/learn/reach.joule";

fn ok(args: &[&str]) -> String {
    let out = joule(args);
    assert!(
        out.status.success(),
        "joule {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("one JSON object")
}

/// The summed reward of 100 steps driven by `policy` (the file), environment 0.
fn episode_return(policy: &str) -> f64 {
    let v = json(&["run", SCENE, "--steps", "100", "--policy", policy, "--json"]);
    v["reward"]["closeness"][0].as_f64().expect("a reward")
}

/// The curve without its wall-clock column.
fn curve(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("curve")
        .lines()
        .map(|l| {
            // Without the clocks (wall_s, sim_s).
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.drain(2..4);
            cells.join(",")
        })
        .collect()
}

/// Every tensor of a weights file, by name, as bit patterns.
fn weights(path: &std::path::Path) -> Vec<(String, Vec<u64>)> {
    let mut t: Vec<(String, Vec<u64>)> =
        candle_core::safetensors::load(path, &candle_core::Device::Cpu)
            .expect("a safetensors file")
            .into_iter()
            .map(|(name, t)| {
                let bits = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                (name, bits.into_iter().map(f64::to_bits).collect())
            })
            .collect();
    t.sort();
    assert!(t.len() >= 4, "{t:?}");
    t
}

fn train(algo: &str, iters: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        SCENE,
        "--reward",
        "closeness",
        "--algo",
        algo,
        "--iters",
        iters,
        "--batch",
        "8",
        "--horizon",
        "25",
        "--episode",
        "100",
        "--seed",
        "3",
        "--json",
    ];
    args.extend(extra);
    json(&args)
}

#[test]
fn analytic_policy_gradients_learn_to_reach_and_drive_joule_run() {
    let (first, out) = (temp("apg0.safetensors"), temp("apg.safetensors"));
    train("apg", "1", &["--out", first.to_str().unwrap()]);
    let v = train("apg", "40", &["--out", out.to_str().unwrap()]);
    assert_eq!(v["scene"], SCENE, "every command's JSON names its scene");
    assert_eq!(v["env_steps"], 40 * 8 * 25);
    assert_eq!(v["dropped_gradients"], 0);
    let (before, after) = (
        episode_return(first.to_str().unwrap()),
        episode_return(out.to_str().unwrap()),
    );
    // Standing still earns -1.25 per step; the trained policy closes most of the distance.
    assert!(before < -100.0, "untrained return {before}");
    assert!(
        after > 0.5 * before,
        "trained {after} vs untrained {before}"
    );
}

/// The soft walker's centre-of-mass travel over 64 steps driven by `policy`.
fn soft_walker_travel(policy: &std::path::Path) -> f64 {
    let v = json(&[
        "run",
        "scenes/soft_walker.joule",
        "--steps",
        "64",
        "--policy",
        policy.to_str().unwrap(),
        "--gait",
        "--json",
    ]);
    v["gait"][0]["root"]["forward"]
        .as_f64()
        .expect("a distance")
}

/// A soft creature learns to move within a CI-sized budget: analytic
/// policy gradients through the implicit neo-Hookean walker on its
/// friction cone, 30 iterations of 4 environments x 32 steps (3840 steps),
/// carry it centimetres forward in 0.64 s where the untrained policy
/// (one step of a vanishing learning rate) stays within a millimetre.
#[test]
fn a_soft_creature_learns_to_crawl_within_a_small_budget() {
    let run = |iters: &str, lr: &str, out: &std::path::Path| {
        ok(&[
            "train",
            "scenes/soft_walker.joule",
            "--reward",
            "forward",
            "--algo",
            "apg",
            "--iters",
            iters,
            "--batch",
            "4",
            "--horizon",
            "32",
            "--episode",
            "64",
            "--threads",
            "1",
            "--lr",
            lr,
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
    };
    let (untrained, trained) = (temp("crawl0.safetensors"), temp("crawl.safetensors"));
    run("1", "1e-12", &untrained);
    run("30", "3e-3", &trained);
    let (before, after) = (soft_walker_travel(&untrained), soft_walker_travel(&trained));
    assert!(before.abs() < 1e-3, "untrained travel {before} m");
    assert!(
        after > 0.01,
        "trained travel {after} m (untrained {before} m)"
    );
}

/// PPO balances Brax's inverted pendulum (`scenes/envs/`, reward 1 per
/// step until the pole passes 0.2 rad, 1000-step episodes) within a
/// CI-sized budget: with Brax's discount, reward scale and entropy cost, a
/// mean training-episode return of 200 (a random policy's episodes last
/// a few dozen steps) within 300 iterations of 64 environments x 16 steps
/// (307k steps; from Brax's reset distribution, seeds 0-5 reach it at
/// 135k-224k). The step it is reached is
/// reported (`--target`).
#[test]
fn ppo_balances_braxs_inverted_pendulum_within_a_small_budget() {
    let out = temp("pendulum-ppo.safetensors");
    let v = json(&[
        "train",
        "scenes/envs/inverted_pendulum.joule",
        "--reward",
        "alive",
        "--algo",
        "ppo",
        "--batch",
        "64",
        "--horizon",
        "16",
        "--episode",
        "1000",
        "--iters",
        "300",
        "--seed",
        "0",
        "--threads",
        "1",
        "--gamma",
        "0.97",
        "--reward-scale",
        "10",
        "--entropy",
        "0.01",
        "--epochs",
        "4",
        "--minibatches",
        "4",
        "--target",
        "200",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    let reached = &v["reached"];
    assert!(
        reached["env_steps"].as_u64().is_some(),
        "never reached a mean return of 200 (best {}, final {})",
        v["best_return"],
        v["return"]
    );
    assert!(v["return"].as_f64().expect("a return") >= 200.0, "{v}");
}

#[test]
fn a_resumed_run_is_bitwise_the_uninterrupted_run() {
    // SHAC acting deterministically and exploring (its learned noise level
    // and random stream are in the checkpoint), PPO, PPO with Brax's kind
    // of settings and an f32 value network (kept in the checkpoint, its
    // optimiser's moments in f32: the resumed run is given no settings),
    // and with Brax's state-dependent standard deviations (the policy file
    // then drives `joule run` by its means), and with Brax's advantages
    // (per minibatch of trajectories, the statistics updated first).
    let brax: &[&str] = &[
        "--gamma",
        "0.97",
        "--reward-scale",
        "10",
        "--entropy",
        "0.01",
        "--epochs",
        "2",
        "--minibatches",
        "3",
        "--ratio-clip",
        "0.3",
        "--value-hidden",
        "12,12",
        "--value-f32",
    ];
    for (name, algo, settings) in [
        ("shac", "shac", &["--explore", "0"][..]),
        ("shac-explore", "shac", &["--explore", "0.5"][..]),
        ("ppo", "ppo", &[][..]),
        ("ppo-brax", "ppo", brax),
        (
            "ppo-state-std",
            "ppo",
            &[brax, &["--std", "state"]].concat(),
        ),
        ("ppo-unrolls", "ppo", &["--unrolls", "3"][..]),
        (
            "ppo-minibatch-advantages",
            "ppo",
            &[brax, &["--std", "state", "--advantages", "minibatch"]].concat(),
        ),
    ] {
        let (a, b) = (
            temp(&format!("{name}-a.safetensors")),
            temp(&format!("{name}-b.safetensors")),
        );
        let (ca, cb) = (
            temp(&format!("{name}-a.csv")),
            temp(&format!("{name}-b.csv")),
        );
        let ck = temp(&format!("{name}-ck.safetensors"));
        fn with<'a>(settings: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
            [settings, more].concat()
        }
        train(
            algo,
            "6",
            &with(
                settings,
                &[
                    "--out",
                    a.to_str().unwrap(),
                    "--curve",
                    ca.to_str().unwrap(),
                ],
            ),
        );
        train(
            algo,
            "3",
            &with(
                settings,
                &[
                    "--out",
                    b.to_str().unwrap(),
                    "--checkpoint",
                    ck.to_str().unwrap(),
                ],
            ),
        );
        train(
            algo,
            "6",
            &[
                "--resume",
                ck.to_str().unwrap(),
                "--out",
                b.to_str().unwrap(),
                "--curve",
                cb.to_str().unwrap(),
            ],
        );
        assert_eq!(weights(&a), weights(&b), "{name}: weights differ");
        assert_eq!(curve(&ca), curve(&cb), "{name}: learning curves differ");
        assert_eq!(curve(&ca).len(), 7);
        // The acting Gaussian's standard deviation, the curve's last column:
        // none for deterministic SHAC, learned (moved off its start) otherwise.
        let rows = curve(&ca);
        assert!(rows[0].ends_with(",action_std"), "{}", rows[0]);
        let std: f64 = rows[6].rsplit(',').next().unwrap().parse().unwrap();
        match name {
            "shac" => assert_eq!(std, 0.0),
            "shac-explore" => assert!(std > 0.0 && (std - 0.5).abs() > 1e-6, "{std}"),
            _ => assert!(std > 0.0 && (std - (-0.5f64).exp()).abs() > 1e-6, "{std}"),
        }
        assert!(ca.with_extension("png").exists());
        assert!(episode_return(a.to_str().unwrap()).is_finite());
        // Environment steps: 6 iterations of 8 environments x 25 steps, times
        // the rollouts per update.
        let steps: u64 = rows[6].split(',').nth(1).unwrap().parse().unwrap();
        let unrolls = if name == "ppo-unrolls" { 3 } else { 1 };
        assert_eq!(steps, 6 * 8 * 25 * unrolls, "{name}");
    }
}

/// The same for a robot in joint coordinates (Brax's ant, PPO): the
/// checkpoint's link rows are put back as they were, not recomputed by
/// forward kinematics, whose rounding differs from the step's (before, the
/// first observations after a resume differed in the last bit and the run
/// drifted from the uninterrupted one).
#[test]
fn a_resumed_joint_coordinate_run_is_bitwise_the_uninterrupted_run() {
    let run = |iters: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "scenes/envs/ant.joule",
            "--reward",
            "total",
            "--algo",
            "ppo",
            "--batch",
            "8",
            "--horizon",
            "5",
            "--episode",
            "1000",
            "--threads",
            "1",
            "--seed",
            "4",
            "--value-hidden",
            "16",
            "--iters",
            iters,
            "--quiet",
        ];
        args.extend(extra);
        ok(&args);
    };
    let path = |name: &str| temp(name).to_str().unwrap().to_string();
    let (a, b, ck) = (
        path("joints-a.safetensors"),
        path("joints-b.safetensors"),
        path("joints-ck.safetensors"),
    );
    let (ca, cb) = (path("joints-a.csv"), path("joints-b.csv"));
    run("6", &["--out", &a, "--curve", &ca]);
    run("3", &["--out", &b, "--checkpoint", &ck]);
    run("6", &["--resume", &ck, "--out", &b, "--curve", &cb]);
    assert_eq!(curve(ca.as_ref()), curve(cb.as_ref()));
    assert_eq!(weights(a.as_ref()), weights(b.as_ref()));
}

/// Both ways of imitating: whole episodes by the Chamfer distance, and
/// windows started from the demonstration's recorded states.
#[test]
fn imitation_from_one_demonstration_approaches_the_expert() {
    let (expert, demo, bare, student) = (
        temp("expert.safetensors"),
        temp("demo.npz"),
        temp("demo-outputs-only.npz"),
        temp("student.safetensors"),
    );
    train("apg", "40", &["--out", expert.to_str().unwrap()]);
    let record = |out: &std::path::Path, state: &[&str]| {
        let mut args = vec![
            "run",
            SCENE,
            "--steps",
            "100",
            "--policy",
            expert.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(state);
        ok(&args);
    };
    record(&demo, &["--state"]);
    record(&bare, &[]);
    let imitate = |demo: &std::path::Path, mode: &[&str]| {
        let mut args = vec![
            "imitate",
            SCENE,
            "--expert",
            demo.to_str().unwrap(),
            "--match",
            "miss,speed",
            "--reward",
            "closeness",
            "--iters",
            "100",
            "--batch",
            "2",
            "--lr",
            "0.03",
            "--out",
            student.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(mode);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (mode, distance, bound) in [
        (&[][..], "chamfer", 5e-2),
        (&["--window", "10"][..], "tracking", 5e-2),
    ] {
        let args = imitate(&demo, mode);
        let v = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(v["scene"], SCENE);
        let (got, want) = (
            v["return"].as_f64().unwrap(),
            v["expert_return"].as_f64().unwrap(),
        );
        assert!(
            (got - want).abs() < 0.1 * want.abs(),
            "{mode:?}: imitator {got} vs expert {want}"
        );
        let d = v[distance].as_f64().unwrap();
        assert!(d < bound, "{mode:?}: {distance} distance {d}");
    }
    // Windows need the recorded states.
    let args = imitate(&bare, &["--window", "10"]);
    let out = joule(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--state"), "{err}");
    // Behaviour cloning: the expert's controls regressed at its states. The
    // expert is a network of the same shape, so the fit can be close.
    let clone = |demo: &std::path::Path, iters: &str, extra: &[&str]| {
        let mut args = vec![
            "imitate",
            SCENE,
            "--expert",
            demo.to_str().unwrap(),
            "--algo",
            "bc",
            "--reward",
            "closeness",
            "--iters",
            iters,
            "--lr",
            "0.01",
            "--out",
            student.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        joule(&args)
    };
    let error = |o: std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        v["error"].as_f64().unwrap()
    };
    let first = error(clone(&demo, "1", &[]));
    // `--lr-decay` lowers the rate over the run: the third iteration's error
    // follows a smaller second step.
    let third = |extra: &[&str]| error(clone(&demo, "3", extra));
    let (constant, decayed) = (third(&[]), third(&["--lr-decay"]));
    assert!(
        constant.is_finite() && decayed.is_finite() && constant != decayed,
        "{constant} {decayed}"
    );
    let out = clone(&demo, "1500", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let (error, samples) = (v["error"].as_f64().unwrap(), v["samples"].as_u64().unwrap());
    assert_eq!(samples, 100);
    assert!(error < 1e-3 * first, "control error {error} from {first}");
    let got = v["return"].as_f64().unwrap();
    let want = episode_return(expert.to_str().unwrap());
    assert!(
        (got - want).abs() < 0.1 * want.abs(),
        "cloned {got} vs expert {want}"
    );
    assert_eq!(got, episode_return(student.to_str().unwrap()));
    // Cloning reads the expert's states.
    let out = clone(&bare, "10", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--state"), "{err}");
}

#[test]
fn bad_training_input_is_a_diagnostic() {
    let cases: [(&[&str], &str); 19] = [
        (
            &["train", SCENE, "--reward", "nope"],
            "no reward named `nope`",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--param", "nope=1"],
            "unknown parameter `nope`",
        ),
        (
            &["train", "scenes/pendulum.joule", "--reward", "x"],
            "no `policy` item",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--resume",
                "Cargo.toml",
            ],
            "cannot resume",
        ),
        (&["run", SCENE, "--policy", "Cargo.toml"], "cannot drive"),
        (
            &["train", SCENE, "--reward", "closeness", "--explore=-1"],
            "is not a standard deviation",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--algo",
                "ppo",
                "--explore",
                "0.3",
            ],
            "is for apg and shac",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--gamma", "1.5"],
            "`--gamma 1.5` is not in 0..1",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--reward-scale",
                "0",
            ],
            "must be finite and positive",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--minibatches",
                "0",
            ],
            "must each be at least 1",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--entropy=-1"],
            "`--entropy -1` must be finite and not negative",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--value-hidden",
                "8,0",
            ],
            "a value network layer of width 0",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--value-f32"],
            "`--value-f32` is for ppo",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--std", "state"],
            "`--std state` is for ppo",
        ),
        (
            &["train", SCENE, "--reward", "closeness", "--unrolls", "2"],
            "`--unrolls` is for ppo",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--advantages",
                "minibatch",
            ],
            "`--advantages` is for ppo",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--algo",
                "ppo",
                "--unrolls",
                "0",
            ],
            "`--unrolls 0` must each be at least 1",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--algo",
                "ppo",
                "--epochs",
                "5000",
            ],
            "5000 epochs: at most 1000 passes",
        ),
        (
            &[
                "train",
                SCENE,
                "--reward",
                "closeness",
                "--algo",
                "ppo",
                "--batch",
                "100000",
                "--horizon",
                "100000",
                "--episode",
                "100000",
            ],
            "more than 32 GiB: fewer environments",
        ),
    ];
    for (args, want) in cases {
        let out = joule(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn surrogate_gradients_change_the_gradient_and_not_the_physics() {
    let run = |surrogate: &str, params: &[&str]| {
        let tag = format!("{surrogate}{}", params.join("-"));
        let curve = temp(&format!("surrogate-{tag}.csv"));
        let out = temp(&format!("surrogate-{tag}.safetensors"));
        let mut args = vec![
            "train",
            "scenes/quadruped_surrogate.joule",
            "--reward",
            "forward",
            "--algo",
            "apg",
            "--iters",
            "1",
            "--batch",
            "2",
            "--horizon",
            "40",
            "--surrogate",
            surrogate,
            "--out",
            out.to_str().unwrap(),
            "--curve",
            curve.to_str().unwrap(),
            "--quiet",
        ];
        for p in params {
            args.extend(["--param", p]);
        }
        ok(&args);
        let text = std::fs::read_to_string(curve).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let row: Vec<f64> = text
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .map(|c| c.parse().unwrap())
            .collect();
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        (col("grad_norm"), col("loss"))
    };
    let off = run("off", &[]);
    // The feet touch the ground within 40 steps: the same forward rollout
    // (the loss) and a different gradient for each surrogate scheme and
    // each width of the surrogate (`--param` reaches the scene).
    let others = [
        run("energy", &[]),
        run("model", &[]),
        run("energy", &["smoothing=1e-3"]),
    ];
    for (i, g) in others.iter().enumerate() {
        assert_eq!(g.1, off.1, "{i}: the same simulation");
        assert!((g.0 - off.0).abs() > 1e-3 * off.0, "{i}: {g:?} {off:?}");
    }
    assert!(
        (others[0].0 - others[2].0).abs() > 1e-3 * others[0].0,
        "{others:?}"
    );
    assert!(
        (others[0].0 - others[1].0).abs() > 1e-3 * others[0].0,
        "{others:?}"
    );
}

#[test]
fn damaged_expert_data_is_refused_before_training() {
    let (demo, nan, fortran, student) = (
        temp("plain-demo.npz"),
        temp("nan-demo.npz"),
        temp("fortran-demo.npz"),
        temp("never.safetensors"),
    );
    ok(&[
        "run",
        SCENE,
        "--steps",
        "20",
        "--out",
        demo.to_str().unwrap(),
        "--quiet",
    ]);
    rewrite_npz(&demo, &nan, false, &|name, d| {
        if name == "speed" {
            d[5] = f64::NAN;
        }
    });
    rewrite_npz(&demo, &fortran, true, &|_, _| {});
    for (expert, want) in [
        (
            &nan,
            "array `speed` has a non-finite value (NaN) at flat index 5",
        ),
        (&fortran, "Fortran order"),
    ] {
        let out = joule(&[
            "imitate",
            SCENE,
            "--expert",
            expert.to_str().unwrap(),
            "--match",
            "miss,speed",
            "--iters",
            "2",
            "--out",
            student.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        fails_with_hint(&out, want);
        assert!(!student.exists(), "no policy written");
    }
}

#[test]
fn imitation_flags_that_do_not_fit_the_algorithm_are_refused() {
    let base = ["imitate", SCENE, "--expert", "no-such.npz"];
    for (more, want) in [
        (&[][..], "`--match` is missing"),
        (
            &["--algo", "bc", "--match", "miss"][..],
            "`--match` has no meaning",
        ),
        (
            &["--algo", "bc", "--window", "5"][..],
            "`--window` has no meaning",
        ),
        (
            &["--algo", "bc", "--noise", "0.1"][..],
            "`--noise` has no meaning",
        ),
        (
            &["--algo", "bc", "--planner-param", "w=1"][..],
            "sets a `trajopt` policy's model",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(more).copied().collect();
        let out = joule(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        fails_with_hint(&out, want);
    }
}

#[test]
fn number_flags_are_checked_before_any_work() {
    // Each was accepted: `--lr nan` trained a policy of NaN weights (exit 0).
    let out = temp("never-flags.safetensors");
    let out = out.to_str().unwrap();
    let train = ["train", SCENE, "--reward", "closeness", "--iters", "1"];
    let imitate = [
        "imitate",
        SCENE,
        "--expert",
        "no-such.npz",
        "--match",
        "miss",
    ];
    let optimize = [
        "optimize",
        "scenes/pendulum.joule",
        "--loss",
        "miss",
        "--wrt",
        "g",
        "--optimizer",
        "adam",
    ];
    let cases: Vec<(&[&str], [&str; 2], &str)> = vec![
        (
            &train,
            ["--lr", "nan"],
            "`--lr NaN` must be finite and positive",
        ),
        (
            &train,
            ["--lr", "-1"],
            "`--lr -1` must be finite and positive",
        ),
        (
            &train,
            ["--lr", "inf"],
            "`--lr inf` must be finite and positive",
        ),
        (
            &train,
            ["--lr", "0"],
            "`--lr 0` must be finite and positive",
        ),
        (
            &train,
            ["--clip", "-1"],
            "`--clip -1` must be finite and positive",
        ),
        (
            &train,
            ["--clip", "nan"],
            "`--clip NaN` must be finite and positive",
        ),
        (
            &train,
            ["--squash-penalty", "-1"],
            "`--squash-penalty -1` must be finite and not negative",
        ),
        (
            &train,
            ["--noise", "nan"],
            "`--noise NaN` must be finite and not negative",
        ),
        (
            &train,
            ["--target", "nan"],
            "`--target NaN` is not a finite return",
        ),
        (
            &train,
            ["--target", "inf"],
            "`--target inf` is not a finite return",
        ),
        (
            &train,
            ["--threads", "5000"],
            "`--threads 5000` is not a thread count",
        ),
        (
            &imitate,
            ["--lr", "nan"],
            "`--lr NaN` must be finite and positive",
        ),
        (
            &imitate,
            ["--lr", "-1"],
            "`--lr -1` must be finite and positive",
        ),
        (
            &imitate,
            ["--noise", "nan"],
            "`--noise NaN` must be finite and not negative",
        ),
        (
            &imitate,
            ["--noise", "-1"],
            "`--noise -1` must be finite and not negative",
        ),
        (
            &optimize,
            ["--lr", "-1"],
            "`--lr -1` must be finite and positive",
        ),
        (
            &optimize,
            ["--lr", "nan"],
            "`--lr NaN` must be finite and positive",
        ),
    ];
    for (command, flag, want) in cases {
        let mut args = command.to_vec();
        args.extend(flag);
        args.extend(["--out", out]);
        let o = joule(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        fails_with_hint(&o, want);
        assert!(
            !std::path::Path::new(out).exists(),
            "{args:?} wrote a policy"
        );
    }
}

/// `path`'s safetensors file with the first value of tensor `name` set to NaN.
fn with_a_nan(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let at = 8
        + n
        + header[name]["data_offsets"][0]
            .as_u64()
            .expect("the tensor") as usize;
    bytes[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    let damaged = path.with_extension("nan.safetensors");
    std::fs::write(&damaged, bytes).unwrap();
    damaged
}

#[test]
fn weights_that_are_not_finite_are_refused() {
    let (policy, ck) = (
        temp("finite-policy.safetensors"),
        temp("finite-ck.safetensors"),
    );
    train(
        "apg",
        "1",
        &[
            "--out",
            policy.to_str().unwrap(),
            "--checkpoint",
            ck.to_str().unwrap(),
        ],
    );
    for name in ["policy.0.weight", "norm.mean"] {
        let nan = with_a_nan(&policy, name);
        let o = joule(&[
            "run",
            SCENE,
            "--steps",
            "2",
            "--policy",
            nan.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = fails_with_hint(&o, "cannot drive");
        assert!(err.contains("non-finite"), "{err}");
    }
    let nan = with_a_nan(&ck, "policy.1.bias");
    let o = joule(&[
        "train",
        SCENE,
        "--reward",
        "closeness",
        "--iters",
        "2",
        "--resume",
        nan.to_str().unwrap(),
        "--out",
        temp("never-resumed.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = fails_with_hint(&o, "cannot resume");
    assert!(
        err.contains("`policy.1.bias` holds a non-finite value"),
        "{err}"
    );
    assert!(!temp("never-resumed.safetensors").exists());
}

/// A checkpoint's `joule.trainer` metadata with `from` replaced by `to`
/// (the safetensors header: its length, then JSON).
fn edit_checkpoint(path: &std::path::Path, from: &str, to: &str) -> std::path::PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.contains(from), "{header}");
    let header = header.replace(from, to);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(&bytes[8 + n..]);
    let edited = path.with_extension("edited.safetensors");
    std::fs::write(&edited, out).unwrap();
    edited
}

#[test]
fn a_resume_checks_the_checkpoint_and_the_batch_before_allocating() {
    let ck = temp("small-ck.safetensors");
    let out = temp("small-out.safetensors");
    train(
        "apg",
        "1",
        &[
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let resume = |ck: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            SCENE,
            "--reward",
            "closeness",
            "--iters",
            "2",
            "--resume",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        joule(&args)
    };
    // The checkpoint's batch wins; a different `--batch` is an error, the same one is fine.
    let o = resume(&ck, &["--batch", "16"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("keeps its batch") && err.contains("help:"),
        "{err}"
    );
    let o = resume(&ck, &["--batch", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Metadata that disagrees with the saved state: refused before allocating.
    for (from, to, want) in [
        (r#"\"batch\":8"#, r#"\"batch\":1000000"#, "not [1000000"),
        (r#"\"horizon\":25"#, r#"\"horizon\":0"#, "horizon 0"),
    ] {
        let edited = edit_checkpoint(&ck, from, to);
        let o = resume(&edited, &[]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want) && err.contains("help:"), "{err}");
    }
}
