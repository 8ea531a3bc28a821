"""Analytic policy gradients (APG): an MLP policy in JAX trained on the
cart-pole swing-up by backpropagating through Joule.

Every iteration runs the policy in closed loop for ``--horizon`` steps from
jittered starts, recorded on a tape (``Sim.step_taped``), then walks back one
step at a time: the reward's seed and the policy's observation adjoint go
into the simulator (``Sim.seed_outputs``), Joule's adjoint of the step hands
back d loss / d controls (``Sim.reverse_step``), and JAX carries that through
the policy (``jax.vjp``) to its weights and to the observation it read. The
tape is dropped after each iteration, so memory stays bounded by one horizon.
Run from the repository root:

    python python/examples/apg_cartpole.py --iterations 100
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import joule
from joule.gym import VectorEnv

# Joule computes in float64; so does the policy (and the results do not
# depend on whether another module enabled it first).
jax.config.update("jax_enable_x64", True)

SCENE = pathlib.Path(__file__).resolve().parents[2] / "scenes" / "cartpole.joule"


@dataclasses.dataclass
class Args:
    seed: int = 0
    batch: int = 32
    horizon: int = 32
    iterations: int = 30
    learning_rate: float = 3e-3
    max_grad_norm: float = 1.0
    reset_noise: float = 0.1
    eval_steps: int = 200
    eval_envs: int = 16


def init_policy(key, n_obs, n_act, hidden=(32, 32)):
    sizes = (n_obs, *hidden, n_act)
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (a, b)) * np.sqrt(1.0 / a), "b": jnp.zeros(b)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def policy(theta, obs):
    """Observations to controls in (-1, 1) (the control's range)."""
    x = obs
    for i, l in enumerate(theta):
        x = x @ l["w"] + l["b"]
        x = jnp.tanh(x)  # hidden layers, and the squashed output
    return x


act = jax.jit(policy)


@jax.jit
def policy_vjp(theta, obs, cotangent):
    """d(cotangent . policy) / d(theta, obs)."""
    return jax.vjp(policy, theta, obs)[1](cotangent)


def evaluate(theta, scene, args: Args, seed: int = 1234) -> float:
    env = VectorEnv(scene, args.eval_envs, max_episode_steps=None, dtype=np.float64)
    obs, _ = env.reset(seed=seed)
    total = np.zeros(args.eval_envs)
    for _ in range(args.eval_steps):
        obs, reward, *_ = env.step(np.asarray(act(theta, obs)))
        total += reward
    return float(total.mean())


def train(args: Args, scene=None, log=print):
    """Returns (untrained return, trained return, env steps, seconds)."""
    scene = scene or joule.Scene.from_path(SCENE)
    outputs = {o.name: o for o in scene.outputs}
    inputs = scene.policy["inputs"]
    obs_cols = np.concatenate([np.arange(outputs[n].offset, outputs[n].offset + outputs[n].size) for n in inputs])
    reward_col = outputs["height"].offset
    ctrl = [scene.controls.index(c) for c in scene.policy["outputs"]]
    theta = init_policy(jax.random.PRNGKey(args.seed), len(obs_cols), len(ctrl))
    before = evaluate(theta, scene, args)
    optimizer = optax.chain(optax.clip_by_global_norm(args.max_grad_norm), optax.adam(args.learning_rate))
    opt_state = optimizer.init(theta)
    sim = scene.batch(args.batch)
    table = np.empty((args.batch, scene.output_size))
    start = time.perf_counter()
    for it in range(args.iterations):
        sim.reset(noise=args.reset_noise, seed=args.seed * 100_003 + it)
        tape = sim.tape()
        observations = []
        rewards = 0.0
        for _ in range(args.horizon):
            obs = sim.outputs(out=table)[:, obs_cols].copy()
            observations.append(obs)
            sim.controls[:, ctrl] = np.asarray(act(theta, obs))
            sim.step_taped(tape)
            rewards += sim.outputs(out=table)[:, reward_col].mean()
        # Loss: minus the mean reward per environment and step.
        grad = jax.tree.map(jnp.zeros_like, theta)
        d_obs_next = None
        for t in reversed(range(args.horizon)):
            seed = np.zeros((args.batch, scene.output_size))
            seed[:, reward_col] = -1.0 / (args.batch * args.horizon)
            if d_obs_next is not None:
                seed[:, obs_cols] += d_obs_next
            sim.seed_outputs(tape, seed)  # at the state after step t
            du = np.zeros((args.batch, len(ctrl)))
            du[:] = sim.reverse_step(tape)[:, ctrl]
            d_theta, d_obs = policy_vjp(theta, observations[t], du)
            grad = jax.tree.map(jnp.add, grad, d_theta)
            d_obs_next = np.asarray(d_obs)
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        theta = optax.apply_updates(theta, updates)
        if it % 10 == 0 or it == args.iterations - 1:
            log(f"iteration {it}: mean reward {rewards / args.horizon:+.3f}")
    seconds = time.perf_counter() - start
    after = evaluate(theta, scene, args)
    return before, after, args.iterations * args.batch * args.horizon, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(Args):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = Args(**vars(parser.parse_args()))
    before, after, steps, seconds = train(args)
    print(f"return {before:.1f} untrained -> {after:.1f} after {steps} env steps ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
