"""Brax's PPO and Joule's on the same env, with the same settings and budget, on this machine.

For an env of Brax's suite (scenes/envs/: Brax's XML and reward, docs/learning.md),
trains Brax's PPO (brax.training.agents.ppo, CPU JAX, all cores) and
`joule train --algo ppo` with Brax's published hyperparameters for that env
(CONFIGS below), one engine after the other (never both at once), and writes
one learning curve per engine and seed: CSV files with Joule's curve columns
(`iteration, env_steps, wall_s, reward`), so `joule plot` draws them side by
side. `--shac` adds Joule's SHAC on the same env and budget.

How the settings map (Brax -> Joule):
  num_envs -> --batch; unroll_length -> --horizon; discounting -> --gamma;
  gae_lambda -> --lambda; learning_rate -> --lr; entropy_cost -> --entropy;
  reward_scaling -> --reward-scale; clipping_epsilon -> --ratio-clip;
  num_updates_per_batch -> --epochs; the value network's 5 x 256 ->
  --value-hidden (in f32 as Brax's, --value-f32); max_grad_norm None ->
  --clip 1e9 (no clipping); the tanh-normal's state-dependent scale
  (the policy network's second output per control, softplus + 0.001) ->
  --std state; the advantages of every minibatch from the value network
  as it is then, over minibatches of whole trajectories, after the
  observation statistics took in the update's data -> --advantages
  minibatch.
  Brax collects batch_size x num_minibatches trajectories of unroll_length
  steps per update (batch_size x num_minibatches / num_envs rollouts of
  all its envs with the same policy) and splits them into num_minibatches
  minibatches of batch_size trajectories: --unrolls batch_size x
  num_minibatches / num_envs --minibatches num_minibatches is the same
  update (`--batching rollout` instead updates after every rollout, with
  --minibatches num_envs / batch_size: the same minibatch, passes over each
  sample and optimiser steps per environment step, 16 times as many
  updates for the ant).
  `--num-envs N` scales num_envs down for this machine and batch_size with
  it (keeping num_envs / batch_size and num_minibatches).

Returns are the deterministic policy's (the Gaussian's mean, squashed) over
whole episodes, the mean of 32 environments from the env's reset
distribution: Brax's evaluator's (`deterministic_eval=True`), and for Joule
`joule run --policy --batch 32` (the scene's `reset` items: Brax's reset distribution) after each leg of training (the run resumed from its
checkpoint, bitwise one run). Training returns would be the noisy policy's
and are not comparable with a deterministic SHAC policy's. Time spent
evaluating is left out of both clocks; the clocks include Brax's import of
JAX and its JIT, and Joule's whole processes.

  benches/peers/train.sh --env ant --steps 1310720 --num-envs 256 --seeds 0,1,2
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Brax's published PPO settings (the Brax paper's training notebook).
CONFIGS = {
    "ant": dict(
        scene="scenes/envs/ant.joule", reward="total", episode_length=1000,
        num_envs=4096, batch_size=2048, unroll_length=5, num_minibatches=32,
        num_updates_per_batch=4, discounting=0.97, learning_rate=3e-4,
        entropy_cost=1e-2, reward_scaling=10.0,
    ),
    "half_cheetah": dict(
        brax_env="halfcheetah", scene="scenes/envs/half_cheetah.joule", reward="total", episode_length=1000,
        num_envs=2048, batch_size=512, unroll_length=20, num_minibatches=32,
        num_updates_per_batch=8, discounting=0.95, learning_rate=3e-4,
        entropy_cost=1e-3, reward_scaling=1.0,
    ),
    # Brax publishes SAC, not PPO, for the hopper: its PPO settings here are
    # those Brax publishes for the ant and the inverted pendulums (stated in
    # docs/learning.md), at inverted_pendulum's 2048 / 1024 environments.
    "hopper": dict(
        scene="scenes/envs/hopper.joule", reward="total", episode_length=1000,
        num_envs=2048, batch_size=1024, unroll_length=5, num_minibatches=32,
        num_updates_per_batch=4, discounting=0.97, learning_rate=3e-4,
        entropy_cost=1e-2, reward_scaling=10.0,
    ),
}
GAE_LAMBDA = 0.95
CLIPPING_EPSILON = 0.3
VALUE_HIDDEN = [256] * 5
EVAL_ENVS = 32


def scaled(cfg, num_envs):
    """The config at `num_envs` environments, batch_size scaled with it."""
    c = dict(cfg)
    if num_envs:
        ratio = cfg["num_envs"] // cfg["batch_size"]
        if num_envs % ratio:
            sys.exit(f"error: --num-envs must be a multiple of {ratio} for this env")
        c["num_envs"], c["batch_size"] = num_envs, num_envs // ratio
    return c


def brax_run(env_name, c, steps, seed, evals, backend=None):
    """Brax's PPO; returns curve rows (iteration, env_steps, wall_s, reward)."""
    start = time.time()
    import functools  # noqa: F401  (timed with the rest of the imports)

    from brax import envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    kwargs = {"backend": backend} if backend else {}
    env = envs.get_environment(c.get("brax_env", env_name), **kwargs)
    rows, eval_s = [], [0.0]

    def progress(step, metrics):
        eval_s[0] += float(metrics.get("eval/epoch_eval_time", 0.0))
        wall = time.time() - start - eval_s[0]
        rows.append((len(rows), int(step), wall, float(metrics["eval/episode_reward"])))
        print(f"  brax {env_name} seed {seed}: {step:>9,} steps {wall:7.1f} s return {rows[-1][3]:9.2f}",
              flush=True)

    ppo.train(
        environment=env,
        num_timesteps=steps,
        num_evals=evals,
        episode_length=c["episode_length"],
        num_envs=c["num_envs"],
        batch_size=c["batch_size"],
        unroll_length=c["unroll_length"],
        num_minibatches=c["num_minibatches"],
        num_updates_per_batch=c["num_updates_per_batch"],
        discounting=c["discounting"],
        gae_lambda=GAE_LAMBDA,
        learning_rate=c["learning_rate"],
        entropy_cost=c["entropy_cost"],
        reward_scaling=c["reward_scaling"],
        clipping_epsilon=CLIPPING_EPSILON,
        normalize_observations=True,
        network_factory=functools.partial(
            ppo_networks.make_ppo_networks, value_hidden_layer_sizes=tuple(VALUE_HIDDEN)
        ),
        seed=seed,
        num_eval_envs=EVAL_ENVS,
        deterministic_eval=True,
        progress_fn=progress,
    )
    return rows


def joule_command(joule, c, steps, seed, algo, out_dir, tag):
    if c["batching"] == "brax":
        unrolls = c["batch_size"] * c["num_minibatches"] // c["num_envs"]
        minibatches = c["num_minibatches"]
    else:
        unrolls, minibatches = 1, c["num_envs"] // c["batch_size"]
    per_iter = c["num_envs"] * c["unroll_length"] * unrolls
    common = [
        joule, "train", os.path.join(ROOT, c["scene"]), "--reward", c["reward"],
        "--batch", str(c["num_envs"]), "--episode", str(c["episode_length"]),
        "--seed", str(seed), "--threads", str(os.cpu_count()),
        "--out", os.path.join(out_dir, f"{tag}.safetensors"),
        "--curve", os.path.join(out_dir, f"{tag}-joule.csv"), "--json", "--quiet",
    ]
    if algo == "ppo":
        return common + [
            "--algo", "ppo", "--iters", str(math.ceil(steps / per_iter)),
            "--horizon", str(c["unroll_length"]), "--gamma", str(c["discounting"]),
            "--lambda", str(GAE_LAMBDA), "--lr", str(c["learning_rate"]),
            "--entropy", str(c["entropy_cost"]), "--reward-scale", str(c["reward_scaling"]),
            "--ratio-clip", str(CLIPPING_EPSILON), "--epochs", str(c["num_updates_per_batch"]),
            "--minibatches", str(minibatches), "--unrolls", str(unrolls),
            "--value-hidden", ",".join(map(str, VALUE_HIDDEN)), "--value-f32", "--clip", "1e9",
            "--std", "state", "--advantages", c["advantages"],
        ]
    # SHAC: the recipe of docs/learning.md (windows of 32, lr 1e-3 decaying).
    return common + [
        "--algo", "shac", "--iters", str(math.ceil(steps / (c["num_envs"] * 32))),
        "--horizon", "32", "--lr", "1e-3", "--lr-decay",
    ]


def joule_eval(joule, c, policy):
    """The deterministic policy's mean return over EVAL_ENVS episodes from the reset distribution
    training uses (the scene's `reset` items, Brax's; `joule run` sums each environment's reward
    to its episode's end), as Brax's evaluator."""
    cmd = [joule, "run", os.path.join(ROOT, c["scene"]), "--policy", policy,
           "--steps", str(c["episode_length"]), "--batch", str(EVAL_ENVS),
           "--seed", "1", "--threads", str(os.cpu_count()), "--json", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: joule run failed:\n{done.stderr}")
    returns = json.loads(done.stdout)["reward"][c["reward"]]
    return sum(returns) / len(returns)


def joule_run(joule, c, steps, seed, algo, out_dir, tag, evals):
    """`joule train` in `evals - 1` legs (each resuming the last one's checkpoint: bitwise one
    run), the deterministic policy evaluated after each; returns curve rows (wall: the training
    processes' time, evaluations left out, as Brax's)."""
    cmd = joule_command(joule, c, steps, seed, algo, out_dir, tag)
    iters = int(cmd[cmd.index("--iters") + 1])
    ck = os.path.join(out_dir, f"{tag}-ck.safetensors")
    policy = os.path.join(out_dir, f"{tag}.safetensors")
    print("  " + " ".join(cmd), flush=True)
    rows, wall = [], 0.0
    legs = max(evals - 1, 1)
    for leg in range(1, legs + 1):
        upto = max(1, round(iters * leg / legs))
        run = list(cmd)
        run[run.index("--iters") + 1] = str(upto)
        run += ["--checkpoint", ck, "--every", str(iters)]
        if leg > 1:
            run += ["--resume", ck]
        start = time.time()
        done = subprocess.run(run, capture_output=True, text=True)
        wall += time.time() - start
        if done.returncode != 0:
            sys.exit(f"error: joule train failed:\n{done.stderr}")
        summary = json.loads(done.stdout)
        ret = joule_eval(joule, c, policy)
        rows.append((leg, summary["env_steps"], wall, ret))
        print(f"  joule {algo} seed {seed}: {summary['env_steps']:>9,} steps {wall:7.1f} s "
              f"return {ret:9.2f} (training episodes: {summary['return']}; "
              f"{summary['simulator_seconds']:.1f} of the last leg's {summary['seconds']:.1f} s "
              f"in the simulator)", flush=True)
    return rows


def write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iteration", "env_steps", "wall_s", "reward"])
        for r in rows:
            w.writerow(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", choices=sorted(CONFIGS), default="ant")
    ap.add_argument("--steps", type=int, default=2_000_000, help="environment steps per run")
    ap.add_argument("--num-envs", type=int, default=0, help="environments (default: Brax's, scaled batch_size)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--evals", type=int, default=11, help="Brax's evaluations (its curve's points)")
    ap.add_argument("--engines", default="brax,joule", help="comma-separated: brax, joule")
    ap.add_argument("--shac", action="store_true", help="also train Joule's SHAC")
    ap.add_argument("--batching", choices=["brax", "rollout"], default="brax",
                    help="Joule's PPO updates as Brax's (after batch_size x num_minibatches / num_envs "
                         "rollouts) or after every rollout")
    ap.add_argument("--advantages", choices=["minibatch", "rollout"], default="minibatch",
                    help="Joule's PPO advantages per minibatch of trajectories with the current value "
                         "network (Brax's) or once per update from the rollouts' values")
    ap.add_argument("--brax-backend", default=None,
                    help="Brax's physics backend (default: the env's, `generalized` for the locomotion envs; "
                         "`mjx` steps MuJoCo's model with MuJoCo's algorithms, as Joule's import does)")
    ap.add_argument("--joule", default=os.path.join(ROOT, "target", "release", "joule"))
    ap.add_argument("--out", default=None, help="directory of the curves (default: a new temporary one)")
    args = ap.parse_args()
    c = scaled(CONFIGS[args.env], args.num_envs)
    c["batching"] = args.batching
    c["advantages"] = args.advantages
    out = args.out or tempfile.mkdtemp(prefix=f"train-{args.env}-")
    os.makedirs(out, exist_ok=True)
    engines = args.engines.split(",")
    print(f"{args.env}: {json.dumps(c)}; {args.steps:,} steps per run; curves in {out}", flush=True)
    summary = {"env": args.env, "config": c, "steps": args.steps, "nproc": os.cpu_count(), "runs": []}
    for seed in map(int, args.seeds.split(",")):
        runs = []
        if "brax" in engines:
            runs.append(("brax-ppo", lambda: brax_run(args.env, c, args.steps, seed, args.evals, args.brax_backend)))
        if "joule" in engines:
            runs.append(("joule-ppo", lambda: joule_run(args.joule, c, args.steps, seed, "ppo", out, f"ppo-{seed}", args.evals)))
            if args.shac:
                runs.append(("joule-shac",
                             lambda: joule_run(args.joule, c, args.steps, seed, "shac", out, f"shac-{seed}", args.evals)))
        for name, run in runs:
            rows = run()
            write(os.path.join(out, f"{args.env}-{name}-{seed}.csv"), rows)
            finite = [r for r in rows if math.isfinite(r[3])]
            summary["runs"].append({
                "engine": name, "seed": seed,
                "env_steps": rows[-1][1] if rows else 0,
                "wall_s": rows[-1][2] if rows else 0.0,
                "final_return": rows[-1][3] if rows else None,
                "best_return": max((r[3] for r in finite), default=None),
            })
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary["runs"], indent=1))


if __name__ == "__main__":
    main()
