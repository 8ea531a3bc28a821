"""Identify a pendulum's length from its recorded swing, through JAX.

The recording is a Joule rollout at the true length (1.3 m); the fit
differentiates the mean squared difference of the rollout's `angle`
trajectory from it with `joule.jax.rollout` (Joule's adjoint as its
backward pass, under `jax.jit`) and steps with optax's Adam.

    python python/examples/fit_jax.py          # a few seconds: 1.30014 m
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import optax

import joule
import joule.jax

jax.config.update("jax_enable_x64", True)  # Joule computes in float64
SCENE = pathlib.Path(__file__).resolve().parents[2] / "scenes" / "pendulum.joule"


def fit(truth: float = 1.3, start: float = 1.0, steps: int = 200, iters: int = 150, lr: float = 0.02):
    """The fitted length and the final squared error, from `start`."""
    scene = joule.Scene.from_path(SCENE)
    angle = joule.jax.rollout(scene, "angle", batch=1, steps=steps)
    params, controls, x0, v0 = map(jnp.asarray, joule.jax.defaults(scene, batch=1, steps=steps))
    k = scene.params.index("length")
    recorded = angle(params.at[0, k].set(truth), controls, x0, v0)

    def error(length):
        p = params.at[0, k].set(length)
        return jnp.mean((angle(p, controls, x0, v0) - recorded) ** 2)

    step = jax.jit(jax.value_and_grad(error))
    opt = optax.adam(lr)
    length, state = jnp.asarray(start), opt.init(jnp.asarray(start))
    value = jnp.inf
    for _ in range(iters):
        value, g = step(length)
        update, state = opt.update(g, state)
        length = optax.apply_updates(length, update)
    return float(length), float(value)


if __name__ == "__main__":
    length, value = fit()
    print(f"fitted length {length:.6f} m (truth 1.3), squared error {value:.3e}")
