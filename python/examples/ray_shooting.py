"""Random shooting over Ray: evaluate many control plans for the cart-pole
on sharded actors, keep the best, and check it against one process.

Each of `num_envs` environments runs its own random plan (the same start);
`joule.ray.ShardedRollouts` spreads the environments over `shards` actors
(on one machine, or a cluster after `ray.init(address="auto")`) and gathers
the outputs in environment order, bitwise those of one process.

    python python/examples/ray_shooting.py     # a local Ray of 2 CPUs
"""

from __future__ import annotations

import pathlib

import numpy as np
import ray

import joule
import joule.ray as jr

SCENE = pathlib.Path(__file__).resolve().parents[2] / "scenes" / "cartpole.joule"


def shoot(num_envs: int = 64, steps: int = 100, shards: int = 2, seed: int = 0):
    """The best plan's index, its summed tip height, and whether the
    sharded outputs equal the single-process ones."""
    scene = joule.Scene.from_path(SCENE)
    rng = np.random.default_rng(seed)
    plans = rng.uniform(-1, 1, (steps, num_envs, len(scene.controls)))
    sharded = jr.ShardedRollouts(SCENE, num_envs, shards=shards)
    try:
        outputs = sharded.rollout(controls=plans, timeout=600)
    finally:
        sharded.close()
    tip = next(o for o in scene.outputs if o.name == "pole_tip")
    height = outputs[:, :, tip.offset + 2].sum(axis=0)  # the tip's z, summed over the steps
    best = int(np.argmax(height))
    same = outputs.tobytes() == jr.rollout(scene, num_envs, controls=plans).tobytes()
    return best, float(height[best]), same


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    best, height, same = shoot()
    print(f"best plan {best}: summed tip height {height:.3f}; sharded = one process: {same}")
    ray.shutdown()
