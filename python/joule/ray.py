"""Rollouts of one scene sharded over Ray actors.

Each actor holds its own Joule batch (a contiguous slice of the
environments) and steps it on its own cores; :class:`ShardedRollouts`
scatters parameters and control plans, and gathers the output trajectories
in environment order. Environment ``e`` is reset from its own seed (derived
from the call's seed and ``e``), and Joule's arithmetic for an environment
does not depend on the batch around it, so the gathered result is bitwise
the one :func:`rollout` computes in one process for the same seed.

On a cluster, connect first (``ray.init(address="auto")`` on a node of a
running cluster, see Ray's documentation) and give each shard the CPUs of
its share (``threads``): Ray places the actors over the nodes, and each
node's actors use all their cores. The scene travels as text (its file is
read on the driver), so the workers need the ``joule`` package installed,
not the scene file.
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Optional

import numpy as np
import ray

from ._joule import Scene, Sim

__all__ = ["ShardedRollouts", "rollout", "reset_envs"]


def env_seed(seed: int, env: int) -> int:
    """The reset seed of environment ``env`` (its global index) for a call's ``seed``."""
    return int(np.random.SeedSequence([seed, env]).generate_state(1, np.uint64)[0])


def reset_envs(sim: Sim, noise: float, seed: int, first: int = 0) -> None:
    """Resets every environment of ``sim``, environment ``e`` from
    ``env_seed(seed, first + e)``: the same state whatever batch holds it."""
    for e in range(sim.batch):
        sim.reset(envs=[e], noise=noise, seed=env_seed(seed, first + e))


def _run(sim: Sim, first: int, steps, controls, params, noise, seed):
    if params is not None:
        sim.params = params
    reset_envs(sim, noise, seed, first)
    return sim.rollout(steps=steps, controls=controls)


def rollout(
    scene: Scene,
    num_envs: int,
    steps: Optional[int] = None,
    controls=None,
    params=None,
    reset_noise: float = 0.0,
    seed: int = 0,
    threads: Optional[int] = None,
):
    """In one process, what :meth:`ShardedRollouts.rollout` computes:
    ``(steps, num_envs, output_size)``."""
    return _run(scene.batch(num_envs, threads=threads), 0, steps, controls, params, reset_noise, seed)


@ray.remote
class _Shard:
    """One actor's batch: environments ``first .. first + size``."""

    def __init__(self, source: str, size: int, first: int, threads: Optional[int]):
        self.scene = Scene.compile(source)
        self.sim = self.scene.batch(size, threads=threads)
        self.first = first

    def rollout(self, steps, controls, params, noise, seed):
        return _run(self.sim, self.first, steps, controls, params, noise, seed)


class ShardedRollouts:
    """``num_envs`` environments of a scene split over ``shards`` Ray actors.

    Args:
        scene: the path of a scene file, or scene text.
        num_envs: environments in all.
        shards: actors (each gets a contiguous slice, the first ones one larger).
        threads: threads (and Ray CPUs) per actor; default 1.
    """

    def __init__(self, scene: str | pathlib.Path, num_envs: int, shards: int, threads: Optional[int] = None):
        if not 1 <= shards <= num_envs:
            raise ValueError(f"shards must be between 1 and num_envs={num_envs}, got {shards}")
        path = pathlib.Path(scene) if not isinstance(scene, str) or "\n" not in scene else None
        source = path.read_text() if path is not None else str(scene)
        self.scene = Scene.compile(source)  # checked here, before any actor starts
        self.num_envs = num_envs
        sizes = [num_envs // shards + (k < num_envs % shards) for k in range(shards)]
        self.slices = []
        first = 0
        for n in sizes:
            self.slices.append(slice(first, first + n))
            first += n
        cpus = threads or 1
        available = ray.cluster_resources().get("CPU", 0)
        if shards * cpus > available:
            warnings.warn(
                f"{shards} shards of {cpus} CPU need {shards * cpus} CPUs and the Ray cluster has "
                f"{available:g}: the shards beyond wait for CPUs (rollouts wait for them)",
                stacklevel=2,
            )
        self.actors = [
            _Shard.options(num_cpus=cpus).remote(source, s.stop - s.start, s.start, threads)
            for s in self.slices
        ]

    def rollout(
        self,
        steps: Optional[int] = None,
        controls=None,
        params=None,
        reset_noise: float = 0.0,
        seed: int = 0,
        timeout: Optional[float] = None,
    ):
        """Resets every environment (from ``seed``), runs ``steps`` steps (or
        one per row of ``controls``, ``(steps, num_envs, controls)``) with
        ``params`` (``(num_envs, params)``, default the declared values) and
        returns the output table after every step, ``(steps, num_envs,
        output_size)``, gathered in environment order; raises Ray's
        ``GetTimeoutError`` after ``timeout`` seconds (default: waits)."""
        if steps is None and controls is None:
            raise ValueError("rollout needs `steps` or a `controls` plan")
        if controls is not None:
            controls = np.asarray(controls, dtype=np.float64)
            if controls.ndim != 3 or controls.shape[1] != self.num_envs:
                raise ValueError(
                    f"`controls` must have shape (steps, num_envs={self.num_envs}, controls={len(self.scene.controls)})"
                )
        if params is not None:
            params = np.asarray(params, dtype=np.float64)
            if params.shape != (self.num_envs, len(self.scene.params)):
                raise ValueError(
                    f"`params` must have shape (num_envs={self.num_envs}, params={len(self.scene.params)})"
                )
        futures = [
            actor.rollout.remote(
                steps,
                None if controls is None else controls[:, s],
                None if params is None else params[s],
                reset_noise,
                seed,
            )
            for actor, s in zip(self.actors, self.slices)
        ]
        return np.concatenate(ray.get(futures, timeout=timeout), axis=1)

    def close(self) -> None:
        """Ends the actors."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
