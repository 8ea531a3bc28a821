#!/usr/bin/env python3
"""A policy trained by `joule train` on one of Brax's envs (scenes/envs/), run
in MuJoCo on the same XML: a check that what the policy learned is not an
artefact of Joule's simulator. A behaviour that earns its return in Joule by
exploiting the simulator earns much less where the same model is stepped by
another engine; a real gait earns about as much (the two engines' episodes
are chaotic, so their returns are compared as distributions over episodes
from the env's reset distribution, not trajectory by trajectory).

    benches/peers/policy_mujoco.py --env half_cheetah POLICY.st [--joule target/release/joule] [--scene S]

prints, for each engine, the deterministic policy's mean / min / max return
over `--episodes` episodes of `--steps` env steps (Brax's evaluator: an
episode's rewards summed to its end or its termination), the mean distance
the torso travelled along x, and for the planar runners the mean number of
whole turns of the torso about y (a cheetah that rolls like a wheel). With
`--json` a JSON object instead.

The policy file is Joule's (safetensors: the observation normaliser's
statistics, the MLP's layers, `joule.activation`); the env definitions below
are Brax's (brax/envs/{ant,half_cheetah,hopper}.py, default arguments) and
must stay in step with scenes/envs/*.joule, whose observation order they
follow (tests/envs.rs checks the scenes against Brax's formulas).
"""

import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_policy(path):
    """The tensors and metadata of a Joule policy file (safetensors)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    kinds = {"F64": np.float64, "F32": np.float32}
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=kinds[t["dtype"]]).reshape(t["shape"]).astype(np.float64)
    return tensors, meta


ACTIVATIONS = {
    "Tanh": np.tanh,
    "Relu": lambda x: np.maximum(x, 0.0),
    "Elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "Swish": lambda x: x / (1.0 + np.exp(-x)),
}


class Policy:
    """The deterministic policy `joule run --policy` acts with: the
    observation normalised by the training run's statistics (clipped to
    +-10), the MLP, the first `nu` outputs squashed by tanh into [-1, 1]
    (every control of these envs has that range)."""

    def __init__(self, path, nu):
        t, meta = load_policy(path)
        self.act_fn = ACTIVATIONS[meta.get("joule.activation", "Tanh")]
        self.layers = []
        k = 0
        while f"policy.{k}.weight" in t:
            self.layers.append((t[f"policy.{k}.weight"], t[f"policy.{k}.bias"]))
            k += 1
        if not self.layers:
            sys.exit(f"error: {path} holds no policy layers (policy.0.weight ...)")
        self.nu = nu
        count = t["norm.count"][0] if "norm.count" in t else 0.0
        if count >= 2.0:
            self.mean = t["norm.mean"]
            self.std = np.maximum(np.sqrt(t["norm.m2"] / count), 1e-4)
        else:
            self.mean, self.std = None, None

    def __call__(self, obs):
        x = obs
        if self.mean is not None:
            x = np.clip((x - self.mean) / self.std, -10.0, 10.0)
        for i, (w, b) in enumerate(self.layers):
            x = w @ x + b
            if i + 1 < len(self.layers):
                x = self.act_fn(x)
        return np.tanh(x[: self.nu])


# Brax's envs: XML, frames per env step, observation, reward, termination, reset.
ENVS = {
    "ant": {
        "xml": "scenes/ant.xml",
        "scene": "scenes/envs/ant.joule",
        "frames": 5,
        # The torso's quaternion with w >= 0, as Joule's `orientation` reads
        # it off the rotation (MuJoCo's keeps the sign it integrated).
        "obs": lambda d: np.concatenate(
            [d.qpos[2:3], np.sign(d.qpos[3] + (d.qpos[3] == 0)) * d.qpos[3:7], d.qpos[7:], d.qvel]
        ),
        "reward": lambda x0, x1, u, dt: (x1 - x0) / dt + 1.0 - 0.5 * float(u @ u),
        "done": lambda d: not (0.2 <= d.qpos[2] <= 1.0),
        "reset": ("uniform", 0.1, "normal", 0.1),
        "pitch": None,
    },
    "half_cheetah": {
        "xml": "scenes/envs/half_cheetah.xml",
        "scene": "scenes/envs/half_cheetah.joule",
        "frames": 5,
        "obs": lambda d: np.concatenate([d.qpos[1:], d.qvel]),
        "reward": lambda x0, x1, u, dt: (x1 - x0) / dt - 0.1 * float(u @ u),
        "done": lambda d: False,
        "reset": ("uniform", 0.1, "normal", 0.1),
        "pitch": 2,
    },
    "hopper": {
        "xml": "scenes/hopper.xml",
        "scene": "scenes/envs/hopper.joule",
        "frames": 4,
        # qpos[1] replaced by the torso's height (body 1's z).
        "obs": lambda d: np.concatenate([d.xpos[1, 2:3], d.qpos[2:], np.clip(d.qvel, -10.0, 10.0)]),
        "reward": lambda x0, x1, u, dt: (x1 - x0) / dt + 1.0 - 1e-3 * float(u @ u),
        "done": lambda d: not (
            np.all(np.abs(d.qpos[2:]) < 100.0)
            and np.all(np.abs(d.qvel) < 100.0)
            and d.xpos[1, 2] > 0.7
            and abs(d.qpos[2]) < 0.2
        ),
        "reset": ("uniform", 5e-3, "uniform", 5e-3),
        "pitch": 2,
    },
}


def mujoco_episodes(env, policy_path, episodes, steps, seed):
    """Returns, distances and turns of `episodes` MuJoCo episodes."""
    import mujoco

    c = ENVS[env]
    m = mujoco.MjModel.from_xml_path(os.path.join(ROOT, c["xml"]))
    d = mujoco.MjData(m)
    policy = Policy(policy_path, m.nu)
    rng = np.random.default_rng(seed)
    dt = m.opt.timestep * c["frames"]
    qkind, qs, vkind, vs = c["reset"]
    out = []
    for _ in range(episodes):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = m.qpos0 + rng.uniform(-qs, qs, m.nq)
        d.qvel[:] = rng.normal(0.0, vs, m.nv) if vkind == "normal" else rng.uniform(-vs, vs, m.nv)
        mujoco.mj_forward(m, d)
        x_start = d.qpos[0]
        pitch_start = d.qpos[c["pitch"]] if c["pitch"] is not None else float("nan")
        total = 0.0
        for _ in range(steps):
            u = policy(c["obs"](d))
            d.ctrl[:] = u
            x0 = d.qpos[0]
            for _ in range(c["frames"]):
                mujoco.mj_step(m, d)
            total += c["reward"](x0, d.qpos[0], u, dt)
            if not np.all(np.isfinite(d.qpos)) or c["done"](d):
                break
        turns = abs(d.qpos[c["pitch"]] - pitch_start) / (2 * np.pi) if c["pitch"] is not None else float("nan")
        out.append((total, d.qpos[0] - x_start, turns))
    return out


def joule_episodes(env, policy_path, episodes, steps, seed, joule, scene=None):
    """Returns, distances and turns of `joule run --policy` over a batch of
    `episodes` environments from the scene's reset distribution (`scene`,
    else the env's default-import scene)."""
    c = ENVS[env]
    cmd = [joule, "run", scene or os.path.join(ROOT, c["scene"]), "--policy", policy_path, "--steps", str(steps),
           "--batch", str(episodes), "--seed", str(seed), "--json", "--quiet", "--gait"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: joule run failed:\n{done.stderr}")
    summary = json.loads(done.stdout)
    returns = summary["reward"]["total"]
    gaits = summary.get("gait", [])
    dist = [g["root"]["forward"] for g in gaits] if gaits else [float("nan")] * len(returns)
    # `joule run` reports the root's heading, not its pitch: turns are MuJoCo's column only.
    return [(r, x, float("nan")) for r, x in zip(returns, dist)]


def stats(rows):
    r = np.array([row[0] for row in rows])
    x = np.array([row[1] for row in rows])
    t = np.array([row[2] for row in rows])
    out = {"mean": float(r.mean()), "min": float(r.min()), "max": float(r.max()), "forward_m": float(np.mean(x))}
    if np.all(np.isfinite(t)):
        out["turns"] = float(np.mean(t))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policy")
    p.add_argument("--env", required=True, choices=sorted(ENVS))
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--joule", default=os.environ.get("JOULE", os.path.join(ROOT, "target", "release", "joule")))
    p.add_argument("--json", action="store_true")
    p.add_argument("--scene", help="the Joule scene to run the policy on (default: the env's, "
                   "scenes/envs/ENV.joule; e.g. scenes/envs/half_cheetah_mujoco_cone.joule)")
    a = p.parse_args()
    res = {
        "mujoco": stats(mujoco_episodes(a.env, a.policy, a.episodes, a.steps, a.seed)),
        "joule": stats(joule_episodes(a.env, a.policy, a.episodes, a.steps, a.seed, a.joule, a.scene)),
    }
    if a.json:
        print(json.dumps(res))
        return
    for engine, s in res.items():
        turns = f"  turns {s['turns']:.2f}" if "turns" in s else ""
        print(f"{engine:7s} return mean {s['mean']:8.1f}  min {s['min']:8.1f}  max {s['max']:8.1f}  "
              f"forward {s['forward_m']:7.2f} m{turns}")


if __name__ == "__main__":
    main()
