"""Gymnasium environments for any Joule scene with a policy interface.

A scene with ``observe`` items, ``control`` declarations and a ``reward``
(optionally ``done`` items) is an RL environment:

- observations: the chosen ``observe`` items side by side (default: the
  inputs of the scene's ``policy``, else every ``observe`` item);
- actions: the chosen controls (default: the outputs of the scene's
  ``policy``, else every control), bounded by their declared ranges;
- reward: the scene's ``reward`` item (name it when there are several);
- terminated: a ``done`` item fired, or the environment diverged (its state
  stopped being finite; the observation is then zeros and the reward 0);
- truncated: the episode reached ``max_episode_steps``.

:class:`VectorEnv` steps all environments as one Joule batch on all cores
(a Gymnasium ``VectorEnv``, next-step autoreset by default, as Gymnasium's
own vector envs); :class:`Env` is one environment (a ``gymnasium.Env``).
Resets put an environment at the scene's initial state with Gaussian noise
of standard deviation ``reset_noise`` on every velocity component, then draw
the scene's ``reset`` items (joint coordinates, rates, params), all from the
environment's seeded generator (``reset(seed=...)``), so that a seed gives
the same episodes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from ._joule import Scene, Sim

__all__ = ["Env", "VectorEnv", "AutoresetMode"]


def _scene(scene: Scene | str) -> Scene:
    return scene if isinstance(scene, Scene) else Scene.from_path(scene)


class _Interface:
    """The columns of a scene's output table and controls an env uses."""

    def __init__(
        self,
        scene: Scene,
        observations: Optional[Sequence[str]],
        actions: Optional[Sequence[str]],
        reward: Optional[str],
    ):
        policy = scene.policy
        outputs = {o.name: o for o in scene.outputs}
        if observations is None:
            observations = policy["inputs"] if policy else scene.observations
        if actions is None:
            actions = policy["outputs"] if policy else scene.controls
        if not observations:
            raise ValueError("the scene has no `observe` item to observe")
        if not actions:
            raise ValueError("the scene has no `control` to act on")
        for name in observations:
            if name not in outputs or outputs[name].kind != "observe":
                raise ValueError(
                    f"no observe item named `{name}` (the scene has: {', '.join(scene.observations)})"
                )
        self.obs_cols = np.concatenate(
            [np.arange(outputs[n].offset, outputs[n].offset + outputs[n].size) for n in observations]
        )
        if reward is None:
            if len(scene.rewards) != 1:
                raise ValueError(
                    "name the reward: the scene has "
                    + (f"several ({', '.join(scene.rewards)})" if scene.rewards else "no `reward` item")
                )
            reward = scene.rewards[0]
        if reward not in scene.rewards:
            raise ValueError(f"no reward named `{reward}` (the scene has: {', '.join(scene.rewards)})")
        self.reward_col = outputs[reward].offset
        self.done_cols = np.array([outputs[d].offset for d in scene.dones], dtype=np.intp)
        index = {c: i for i, c in enumerate(scene.controls)}
        missing = [a for a in actions if a not in index]
        if missing:
            raise ValueError(
                f"no control named `{missing[0]}` (the scene has: {', '.join(scene.controls)})"
            )
        self.act_cols = np.array([index[a] for a in actions], dtype=np.intp)
        bounds = [scene.control_bounds[i] for i in self.act_cols]
        self.low = np.array([b[0] if b else -np.inf for b in bounds])
        self.high = np.array([b[1] if b else np.inf for b in bounds])
        self.observations = list(observations)
        self.actions = list(actions)
        self.reward = reward


class _Episodes:
    """Episodes over a Joule batch: actions in, observations, rewards and ends out."""

    def _setup(
        self,
        scene: Scene | str,
        num_envs: int,
        observations,
        actions,
        reward,
        max_episode_steps: Optional[int],
        reset_noise: float,
        threads: Optional[int],
        dtype,
    ) -> None:
        scene = _scene(scene)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError("max_episode_steps must be at least 1")
        if not reset_noise >= 0:
            raise ValueError("reset_noise must be >= 0")
        self.scene = scene
        self.io = _Interface(scene, observations, actions, reward)
        self.sim: Sim = scene.batch(num_envs, threads=threads)
        self.max_episode_steps = max_episode_steps
        self.reset_noise = float(reset_noise)
        self.dtype = np.dtype(dtype)
        self._table = np.empty((num_envs, scene.output_size))
        self._age = np.zeros(num_envs, dtype=np.int64)
        self._obs_space = spaces.Box(-np.inf, np.inf, (len(self.io.obs_cols),), self.dtype)
        self._act_space = spaces.Box(
            self.io.low.astype(self.dtype), self.io.high.astype(self.dtype), dtype=self.dtype
        )

    def _restart(self, envs: np.ndarray, rng: np.random.Generator) -> None:
        """Puts `envs` (indices) at the initial state, with seeded noise."""
        if len(envs):
            seed = int(rng.integers(0, 2**63 - 1))
            self.sim.reset(envs=envs.tolist(), noise=self.reset_noise, seed=seed)
            self._age[envs] = 0

    def _apply(self, actions) -> None:
        a = np.asarray(actions, dtype=np.float64)
        n, k = self.sim.batch, len(self.io.act_cols)
        if a.shape == (n,) and k == 1:
            a = a.reshape(n, 1)
        if a.shape != (n, k):
            raise ValueError(f"actions must have shape (num_envs={n}, actions={k}), got {np.shape(actions)}")
        self.sim.controls[:, self.io.act_cols] = a

    def _read(self):
        """Observations, rewards, terminated and the diverged mask after a step."""
        t = self.sim.outputs(out=self._table)
        obs = t[:, self.io.obs_cols]
        reward = t[:, self.io.reward_col].copy()
        diverged = ~(np.isfinite(obs).all(axis=1) & np.isfinite(reward))
        terminated = diverged.copy()
        if len(self.io.done_cols):
            terminated |= (t[:, self.io.done_cols] > 0.5).any(axis=1)
        obs[diverged] = 0.0
        reward[diverged] = 0.0
        return obs.astype(self.dtype), reward, terminated, diverged

    def _fps(self) -> int:
        """Steps per second of simulated time (the rate of rendered frames)."""
        return max(1, round(1.0 / self.scene.dt))

    def _truncated(self, terminated: np.ndarray) -> np.ndarray:
        if self.max_episode_steps is None:
            return np.zeros_like(terminated)
        return (self._age >= self.max_episode_steps) & ~terminated


class VectorEnv(_Episodes, gymnasium.vector.VectorEnv):
    """``num_envs`` environments of a scene as one Joule batch.

    Args:
        scene: a compiled :class:`joule.Scene` or the path of a scene file.
        num_envs: environments.
        observations: ``observe`` items to concatenate (default: the
            policy's inputs, else all).
        actions: controls to act on (default: the policy's outputs, else all).
        reward: the ``reward`` item (default: the scene's only one).
        max_episode_steps: truncation length (None: episodes end only by
            ``done`` items or divergence).
        reset_noise: standard deviation of the velocity noise at reset.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default: an ended
            environment is reset by the next ``step``, which ignores its
            action and returns its first observation with reward 0) or
            ``AutoresetMode.SAME_STEP`` (reset in the step that ended it; the
            last observation is ``info["final_obs"]``).
        threads: threads stepping the batch (default: all cores).
        dtype: dtype of observations and actions (default float32).
    """

    def __init__(
        self,
        scene: Scene | str,
        num_envs: int,
        *,
        observations: Optional[Sequence[str]] = None,
        actions: Optional[Sequence[str]] = None,
        reward: Optional[str] = None,
        max_episode_steps: Optional[int] = 1000,
        reset_noise: float = 0.1,
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        threads: Optional[int] = None,
        dtype=np.float32,
        render_mode: Optional[str] = None,
    ):
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError("autoreset_mode must be AutoresetMode.NEXT_STEP or SAME_STEP")
        self._setup(
            scene, num_envs, observations, actions, reward, max_episode_steps, reset_noise, threads, dtype
        )
        self.num_envs = num_envs
        self.render_mode = _render_mode(render_mode)
        self.metadata = {
            "autoreset_mode": autoreset_mode,
            "render_modes": ["rgb_array"],
            "render_fps": self._fps(),
        }
        self.single_observation_space = self._obs_space
        self.single_action_space = self._act_space
        self.observation_space = gymnasium.vector.utils.batch_space(self._obs_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self._act_space, num_envs)
        self._pending = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        """Resets every environment (seeding the generator when ``seed`` is given)."""
        super().reset(seed=seed)
        self._restart(np.arange(self.num_envs), self.np_random)
        self._pending[:] = False
        obs, _, _, _ = self._read()
        return obs, {}

    def step(self, actions):
        """One step of every environment (see the class for autoreset)."""
        self._apply(actions)
        self.sim.step()
        self._age += 1
        restarted = np.flatnonzero(self._pending)
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._restart(restarted, self.np_random)
        obs, reward, terminated, diverged = self._read()
        truncated = self._truncated(terminated)
        info: dict[str, Any] = {}
        if diverged.any():
            info["diverged"], info["_diverged"] = diverged.copy(), diverged.copy()
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            reward[restarted] = 0.0
            terminated[restarted] = False
            truncated[restarted] = False
            self._pending = terminated | truncated
        else:
            ended = np.flatnonzero(terminated | truncated)
            if len(ended):
                final = np.full(self.num_envs, None, dtype=object)
                for e in ended:
                    final[e] = obs[e].copy()
                info["final_obs"], info["_final_obs"] = final, terminated | truncated
                self._restart(ended, self.np_random)
                fresh, _, _, _ = self._read()
                obs[ended] = fresh[ended]
        return obs, reward, terminated, truncated, info

    def render(self):
        """With ``render_mode="rgb_array"``, a picture of each environment as
        it is now (a tuple of ``(400, 640, 3)`` uint8 arrays, as ``joule run
        --gif`` draws a frame); None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.sim.render([e]) for e in range(self.num_envs))


class Env(_Episodes, gymnasium.Env):
    """One environment of a scene (a ``gymnasium.Env``); arguments as
    :class:`VectorEnv`'s, without autoreset."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        scene: Scene | str,
        *,
        observations: Optional[Sequence[str]] = None,
        actions: Optional[Sequence[str]] = None,
        reward: Optional[str] = None,
        max_episode_steps: Optional[int] = 1000,
        reset_noise: float = 0.1,
        threads: Optional[int] = 1,
        dtype=np.float32,
        render_mode: Optional[str] = None,
    ):
        self._setup(scene, 1, observations, actions, reward, max_episode_steps, reset_noise, threads, dtype)
        self.render_mode = _render_mode(render_mode)
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": self._fps()}
        self.observation_space = self._obs_space
        self.action_space = self._act_space

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        """Starts an episode (seeding the generator when ``seed`` is given)."""
        super().reset(seed=seed)
        self._restart(np.array([0]), self.np_random)
        obs, _, _, _ = self._read()
        return obs[0], {}

    def step(self, action):
        """One step."""
        self._apply(np.reshape(action, (1, -1)))
        self.sim.step()
        self._age += 1
        obs, reward, terminated, diverged = self._read()
        truncated = self._truncated(terminated)
        info = {"diverged": True} if diverged[0] else {}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        """With ``render_mode="rgb_array"``, a picture of the environment as it
        is now (``(400, 640, 3)`` uint8, as ``joule run --gif`` draws a
        frame); None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render([0])


def _render_mode(mode: Optional[str]) -> Optional[str]:
    """A render mode these environments draw (``rgb_array``), or None."""
    if mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode {mode!r}: these environments draw 'rgb_array' (or None)")
    return mode
