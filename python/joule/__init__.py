"""Joule from Python: compile a physics scene, simulate batches of
environments with numpy arrays, and differentiate through time.

>>> import joule
>>> scene = joule.Scene.from_path("scenes/pendulum.joule")
>>> sim = scene.batch(64)
>>> sim.set_param("g", 3.71)
>>> g = sim.gradient(loss="miss", steps=1000)
>>> g.params.shape
(64, 2)

Submodules (imported on demand): ``joule.gym`` (a Gymnasium vector env),
``joule.jax`` (a differentiable rollout for JAX).
"""

from ._joule import (
    CompileError,
    Event,
    Gradient,
    Output,
    Scene,
    Sim,
    Tape,
    TapeGradient,
    __version__,
)

__all__ = [
    "CompileError",
    "Event",
    "Gradient",
    "Output",
    "Scene",
    "Sim",
    "Tape",
    "TapeGradient",
    "__version__",
]
