"""Joule rollouts as differentiable JAX functions.

Both functions below build a function of ``(params, controls, x0, v0)``:
the parameters per environment ``(batch, params)``, the control of every
step ``(steps, batch, controls)`` and the initial positions and velocities
of the free DOFs ``(batch, dofs)``. Its forward pass is a Joule rollout, its
backward pass Joule's adjoint through time (``Sim.gradient``), both run on
the host through ``jax.pure_callback``; it can be ``jax.jit``-ed, and
``jax.grad``/``jax.vjp`` go through it (not ``jax.jvp``: reverse mode only).

- :func:`rollout`: one output's trajectory, ``(steps, batch, size)``, the
  output after each step. Its vector-Jacobian product is one adjoint pass
  of the tracking objective ``sum_t |y_t - target_t|^2`` with
  ``target_t = y_t - s * cotangent_t / 2``, whose gradient is exactly
  ``s`` times the product (``s`` scales the cotangent to the output's size).
- :func:`objective`: a scene's ``loss`` (after the last step) and/or
  ``reward`` (summed over the steps) per environment, ``(batch,)``.

Joule computes in float64: enable ``jax.config.update("jax_enable_x64",
True)`` to keep it; otherwise results are rounded to float32. Controls are
clamped to their declared ranges when applied.

>>> import jax, jax.numpy as jnp, joule, joule.jax
>>> scene = joule.Scene.from_path("scenes/pendulum.joule")
>>> miss = joule.jax.objective(scene, batch=1, steps=300, loss="miss")
>>> params, controls, x0, v0 = joule.jax.defaults(scene, batch=1, steps=300)
>>> jax.grad(lambda p: miss(p, controls, x0, v0).sum())(params)  # d miss / d (g, stiffness)
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._joule import Scene

__all__ = ["rollout", "objective", "defaults"]

Fn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def defaults(scene: Scene, batch: int, steps: int):
    """The scene's declared parameters, zero controls and initial state, as
    the four float64 numpy arrays the functions take."""
    params = np.tile(scene.param_defaults, (batch, 1))
    controls = np.zeros((steps, batch, len(scene.controls)))
    x, v = scene.initial_state()
    return params, controls, np.tile(x, (batch, 1)), np.tile(v, (batch, 1))


def _sim(scene: Scene, params, x0, v0, threads):
    sim = scene.batch(params.shape[0], threads=threads)
    sim.params = np.asarray(params, dtype=np.float64)
    sim.set_state(np.asarray(x0, dtype=np.float64), np.asarray(v0, dtype=np.float64))
    return sim


def _shapes(scene: Scene, batch: int, steps: int):
    return (
        (batch, len(scene.params)),
        (steps, batch, len(scene.controls)),
        (batch, scene.dofs),
        (batch, scene.dofs),
    )


def _check(args, shapes):
    names = ("params", "controls", "x0", "v0")
    for name, a, want in zip(names, args, shapes):
        if tuple(a.shape) != want:
            raise ValueError(f"`{name}` must have shape {want}, got {tuple(a.shape)}")


def _result_specs(args):
    return tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args)


def rollout(scene: Scene, output: str, *, batch: int, steps: int, threads: Optional[int] = None) -> Fn:
    """``f(params, controls, x0, v0) -> (steps, batch, size)``: the output
    named ``output`` after every step, differentiable by Joule's adjoint."""
    info = {o.name: o for o in scene.outputs}.get(output)
    if info is None:
        raise ValueError(f"no output named `{output}` (the scene has: {', '.join(o.name for o in scene.outputs)})")
    if scene.gradients_unavailable:
        raise ValueError(scene.gradients_unavailable)
    shapes = _shapes(scene, batch, steps)
    cols = slice(info.offset, info.offset + info.size)

    def forward(params, controls, x0, v0):
        sim = _sim(scene, params, x0, v0, threads)
        return sim.rollout(controls=np.asarray(controls, dtype=np.float64))[:, :, cols]

    def host_forward(params, controls, x0, v0):
        return forward(params, controls, x0, v0).astype(params.dtype)

    def host_vjp(params, controls, x0, v0, y, ct):
        ct = np.asarray(ct, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        peak = np.abs(ct).max()
        if peak == 0 or not np.isfinite(peak):
            zero = tuple(np.zeros(a.shape, a.dtype) for a in (params, controls, x0, v0))
            if not np.isfinite(peak):
                return tuple(np.full_like(z, np.nan) for z in zero)
            return zero
        scale = max(np.abs(y).max(), 1.0) / peak
        sim = _sim(scene, params, x0, v0, threads)
        g = sim.gradient(track=(output, y - scale * ct / 2), controls=np.asarray(controls, dtype=np.float64))
        args = (params, controls, x0, v0)
        return tuple(np.asarray(x / scale, dtype=a.dtype) for x, a in zip((g.params, g.controls, g.x0, g.v0), args))

    @jax.custom_vjp
    def f(params, controls, x0, v0):
        _check((params, controls, x0, v0), shapes)
        out = jax.ShapeDtypeStruct((steps, batch, info.size), jnp.result_type(params))
        return jax.pure_callback(host_forward, out, params, controls, x0, v0)

    def f_fwd(params, controls, x0, v0):
        y = f(params, controls, x0, v0)
        return y, (params, controls, x0, v0, y)

    def f_bwd(res, ct):
        params, controls, x0, v0, y = res
        return jax.pure_callback(host_vjp, _result_specs(res[:4]), params, controls, x0, v0, y, ct)

    f.defvjp(f_fwd, f_bwd)
    return f


def objective(
    scene: Scene,
    *,
    batch: int,
    steps: int,
    loss: Optional[str] = None,
    reward: Optional[str] = None,
    threads: Optional[int] = None,
) -> Fn:
    """``f(params, controls, x0, v0) -> (batch,)``: the scene's ``loss``
    after the last step plus its ``reward`` summed over the steps, per
    environment, with Joule's exact gradient as its vector-Jacobian product."""
    if loss is None and reward is None:
        raise ValueError("name a `loss` or a `reward`")
    for name, names in ((loss, scene.losses), (reward, scene.rewards)):
        if name is not None and name not in names:
            raise ValueError(f"no such objective `{name}` (the scene has: {', '.join(names)})")
    if scene.gradients_unavailable:
        raise ValueError(scene.gradients_unavailable)
    shapes = _shapes(scene, batch, steps)
    rows = [o for o in scene.outputs if o.name in (loss, reward)]

    def host_forward(params, controls, x0, v0):
        sim = _sim(scene, params, x0, v0, threads)
        traj = sim.rollout(controls=np.asarray(controls, dtype=np.float64))
        total = np.zeros(batch)
        for o in rows:
            total += traj[:, :, o.offset].sum(axis=0) if o.kind == "reward" else traj[-1, :, o.offset]
        return total.astype(params.dtype)

    def host_vjp(params, controls, x0, v0, ct):
        sim = _sim(scene, params, x0, v0, threads)
        g = sim.gradient(loss=loss, reward=reward, controls=np.asarray(controls, dtype=np.float64))
        ct = np.asarray(ct, dtype=np.float64)
        args = (params, controls, x0, v0)
        scaled = (g.params * ct[:, None], g.controls * ct[None, :, None], g.x0 * ct[:, None], g.v0 * ct[:, None])
        return tuple(np.asarray(x, dtype=a.dtype) for x, a in zip(scaled, args))

    @jax.custom_vjp
    def f(params, controls, x0, v0):
        _check((params, controls, x0, v0), shapes)
        out = jax.ShapeDtypeStruct((batch,), jnp.result_type(params))
        return jax.pure_callback(host_forward, out, params, controls, x0, v0)

    def f_fwd(params, controls, x0, v0):
        return f(params, controls, x0, v0), (params, controls, x0, v0)

    def f_bwd(res, ct):
        return jax.pure_callback(host_vjp, _result_specs(res), *res, ct)

    f.defvjp(f_fwd, f_bwd)
    return f
