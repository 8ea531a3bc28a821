"""The JAX layers: jit-able, gradients (Joule's adjoint) against central
differences, against each other, and against the `joule grad` CLI."""

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import joule
import joule.jax as jj
from conftest import SCENES

jax.config.update("jax_enable_x64", True)


def test_objective_gradient_matches_the_cli(pendulum, joule_cli):
    steps = 300
    cli = json.loads(
        subprocess.run(
            [str(joule_cli), "grad", str(SCENES / "pendulum.joule"), "--loss", "miss",
             "--steps", str(steps), "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    miss = jj.objective(pendulum, batch=2, steps=steps, loss="miss")
    params, controls, x0, v0 = jj.defaults(pendulum, batch=2, steps=steps)
    value, grad = jax.jit(jax.value_and_grad(lambda p: miss(p, controls, x0, v0).sum()))(params)
    assert value == pytest.approx(2 * cli["loss"], rel=1e-12)
    for i, name in enumerate(pendulum.params):
        np.testing.assert_allclose(grad[:, i], cli["gradients"][name], rtol=1e-10)


def test_rollout_layer_against_central_differences(cartpole):
    steps, batch = 30, 2
    f = jj.rollout(cartpole, "pole_tip", batch=batch, steps=steps)
    params, controls, x0, v0 = jj.defaults(cartpole, batch, steps)
    rng = np.random.default_rng(0)
    controls = rng.uniform(-0.7, 0.7, controls.shape)
    w = rng.normal(size=(steps, batch, 3))

    def loss(p, u, x, v):
        return jnp.sum(w * f(p, u, x, v)) + 0.1 * jnp.sum(f(p, u, x, v)[-1] ** 2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(params, controls, x0, v0)
    assert [g.shape for g in grads] == [params.shape, controls.shape, x0.shape, v0.shape]

    def fd(arg, index, h):
        def at(delta):
            a = [params, controls, x0, v0]
            a[arg] = a[arg].copy()
            a[arg][index] += delta
            return float(loss(*a))
        return (at(h) - at(-h)) / (2 * h)

    # Steps that keep Newton's tolerance out of the difference (see test_core).
    for arg, index, h in [
        (0, (1, 0), 1e-2),   # force_gain, env 1
        (1, (3, 0, 0), 1e-4),  # the control of step 3, env 0
        (1, (20, 1, 0), 1e-4),
        (3, (0, 0), 1e-4),   # the cart's initial velocity, env 0
    ]:
        want = fd(arg, index, h)
        assert grads[arg][index] == pytest.approx(want, rel=1e-4, abs=1e-6), (arg, index)


def test_the_two_layers_agree(cartpole):
    # The summed reward through the trajectory layer (a tracking adjoint)
    # and through the objective layer (the reward's own adjoint).
    steps, batch = 25, 3
    params, controls, x0, v0 = jj.defaults(cartpole, batch, steps)
    controls = np.random.default_rng(1).uniform(-1, 1, controls.shape)
    traj = jj.rollout(cartpole, "height", batch=batch, steps=steps)
    obj = jj.objective(cartpole, batch=batch, steps=steps, reward="height")
    a = jax.grad(lambda u: traj(params, u, x0, v0).sum())(controls)
    b = jax.grad(lambda u: obj(params, u, x0, v0).sum())(controls)
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(traj(params, controls, x0, v0)[..., 0].sum(0), obj(params, controls, x0, v0), rtol=1e-12)


def test_bad_arguments_are_value_errors(cartpole):
    with pytest.raises(ValueError, match="no output named `nope`"):
        jj.rollout(cartpole, "nope", batch=1, steps=1)
    with pytest.raises(ValueError, match="no such objective"):
        jj.objective(cartpole, batch=1, steps=1, loss="height")
    f = jj.objective(cartpole, batch=2, steps=4, reward="height")
    params, controls, x0, v0 = jj.defaults(cartpole, 2, 4)
    with pytest.raises(ValueError, match=r"`controls` must have shape \(4, 2, 1\)"):
        f(params, controls[:3], x0, v0)
