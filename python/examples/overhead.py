"""The cost of driving Joule from Python: env-steps/s of the Rust API (the
`joule bench` command, plain `Sim::step` calls) against the same scene and
batch from Python, three ways:

- ``step(n)``: one call steps n times (the GIL released throughout);
- loop: per step, write the control buffer, ``step()``, and read every
  output into a preallocated array (``outputs(out=...)``), what an RL loop
  does;
- gym: ``joule.gym.VectorEnv.step`` (observations, reward, done and
  autoreset handled in numpy), for scenes with a reward.

Build both sides in release first (``cargo build --release`` and
``pip install ./python``), then, from the repository root:

    python python/examples/overhead.py --joule target/release/joule

It prints a Markdown table. Both sides follow `joule bench`'s protocol on
the same trajectory: from the initial state, 2 warm-up steps, then the
median of 3 timed runs of the number of steps `joule bench` chose (about
0.3 s of Rust), on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import time

import numpy as np

import joule

REPO = pathlib.Path(__file__).resolve().parents[2]


def rate(run, batch: int, steps: int, repeats: int = 3) -> float:
    """`joule bench`'s protocol: 2 warm-up steps, then ``repeats`` timed runs
    of ``steps`` steps each, one after the other; the median env-steps/s."""
    run(2)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(steps)
        rates.append(batch * steps / (time.perf_counter() - t))
    return statistics.median(rates)


def python_rates(scene: joule.Scene, batch: int, threads: int, steps: int) -> dict[str, float]:
    out = {"step(n)": rate(scene.batch(batch, threads=threads).step, batch, steps)}
    sim = scene.batch(batch, threads=threads)
    table = np.empty((batch, scene.output_size))
    u = np.zeros((batch, len(scene.controls)))

    def loop(steps):
        for _ in range(steps):
            sim.controls[:] = u
            sim.step()
            sim.outputs(out=table)

    out["loop"] = rate(loop, batch, steps)
    if scene.rewards:
        from joule.gym import VectorEnv

        env = VectorEnv(scene, batch, threads=threads, max_episode_steps=None, reset_noise=0.0)
        env.reset(seed=0)
        actions = np.zeros(env.action_space.shape, env.action_space.dtype)

        def gym(steps):
            for _ in range(steps):
                env.step(actions)

        out["gym"] = rate(gym, batch, steps)
    return out


def rust_rates(cli: str, path: pathlib.Path, batches, threads: int) -> dict[int, float]:
    result = subprocess.run(
        [cli, "bench", str(path), "--batch", ",".join(map(str, batches)), "--threads", str(threads),
         "--horizon", "0", "--json"],
        capture_output=True, text=True, check=True,
    )
    return {r["batch"]: (r["env_steps_per_s"], r["steps"]) for r in json.loads(result.stdout)["runs"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joule", default=str(REPO / "target" / "release" / "joule"))
    parser.add_argument("--scenes", default="ant,pendulum")
    parser.add_argument("--batch", default="1,64,1024")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    print("| scene | B | Rust `joule bench` | Python `step(n)` | Python loop | Python gym |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.scenes.split(","):
        path = REPO / "scenes" / f"{name}.joule"
        rust = rust_rates(args.joule, path, batches, args.threads)
        scene = joule.Scene.from_path(path)
        for b in batches:
            rust_rate, steps = rust[b]
            py = python_rates(scene, b, args.threads, steps)

            def cell(k):
                if k not in py:
                    return "n/a (no reward)"
                return f"{py[k]:,.0f} ({py[k] / rust_rate:.2f}x)"

            print(
                f"| {name} | {b} | {rust_rate:,.0f} | {cell('step(n)')} | {cell('loop')} | {cell('gym')} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
