"""Type stubs of the native module (re-exported by ``joule``)."""

from os import PathLike
from typing import Any, Literal, Optional, Sequence, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str

F64 = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

class CompileError(Exception):
    """A scene that does not compile."""

    report: str
    """The rendered diagnostics (also ``str(e)``)."""
    message: str
    """The first error's one-line message."""
    line: Optional[int]
    """1-based line of the first error, or None when it has no place in the source."""
    column: Optional[int]
    """1-based column of the first error, or None."""
    diagnostics: list[dict[str, Any]]
    """Every diagnostic: severity, code, message, line, column, help."""

class Output:
    """A named output and its columns in the output table."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Literal["observe", "reward", "loss", "done"]: ...
    @property
    def offset(self) -> int: ...
    @property
    def size(self) -> int: ...

class Event:
    """Something a simulation reports."""

    @property
    def kind(self) -> Literal["diverged", "not_converged", "solve_stopped", "inadmissible"]: ...
    @property
    def env(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def message(self) -> str: ...

class PolicyDecl(TypedDict):
    name: str
    inputs: list[str]
    outputs: list[str]
    hidden: list[int]
    activation: str

class Gradient:
    """The objective and its exact gradients per environment."""

    @property
    def value(self) -> F64:
        """Shape ``(batch,)``."""
    @property
    def params(self) -> F64:
        """Shape ``(batch, params)``."""
    @property
    def controls(self) -> F64:
        """Shape ``(steps, batch, controls)``."""
    @property
    def x0(self) -> F64:
        """d objective / d initial positions, shape ``(batch, dofs)``."""
    @property
    def v0(self) -> F64:
        """d objective / d initial velocities, shape ``(batch, dofs)``."""
    @property
    def events(self) -> list[Event]: ...
    @property
    def checkpoint_every(self) -> int: ...

class Tape:
    """Recorded steps of a closed-loop rollout (``Sim.tape()``)."""

    def __len__(self) -> int: ...

class TapeGradient:
    """Gradients from a fully reversed tape."""

    @property
    def params(self) -> F64:
        """Shape ``(batch, params)``."""
    @property
    def x0(self) -> F64:
        """Shape ``(batch, dofs)``."""
    @property
    def v0(self) -> F64:
        """Shape ``(batch, dofs)``."""

class Scene:
    """A compiled scene."""

    @staticmethod
    def compile(source: str, name: str = "scene.joule") -> Scene:
        """Compiles scene text; raises CompileError."""
    @staticmethod
    def from_path(path: str | PathLike[str]) -> Scene:
        """Compiles a scene file; raises CompileError or OSError."""
    @property
    def title(self) -> Optional[str]: ...
    @property
    def dt(self) -> float: ...
    @property
    def dofs(self) -> int: ...
    @property
    def dof_names(self) -> list[str]: ...
    @property
    def params(self) -> list[str]: ...
    @property
    def param_defaults(self) -> F64: ...
    @property
    def param_bounds(self) -> list[Optional[tuple[float, float]]]: ...
    @property
    def controls(self) -> list[str]: ...
    @property
    def control_bounds(self) -> list[Optional[tuple[float, float]]]: ...
    @property
    def outputs(self) -> list[Output]: ...
    @property
    def output_size(self) -> int: ...
    @property
    def observations(self) -> list[str]: ...
    @property
    def rewards(self) -> list[str]: ...
    @property
    def losses(self) -> list[str]: ...
    @property
    def dones(self) -> list[str]: ...
    @property
    def policy(self) -> Optional[PolicyDecl]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def gradients_unavailable(self) -> Optional[str]: ...
    def initial_state(self) -> tuple[F64, F64]:
        """Declared initial positions and velocities, shape ``(dofs,)`` each."""
    def batch(self, size: int, threads: Optional[int] = None) -> Sim:
        """``size`` environments at the initial state."""

class Sim:
    """A batch of environments; every array is environment-major float64."""

    @property
    def batch(self) -> int: ...
    @property
    def scene(self) -> Scene: ...
    @property
    def steps(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def partitions(self) -> int: ...
    @property
    def params(self) -> F64:
        """A new ``(batch, params)`` array."""
    @params.setter
    def params(self, values: ArrayLike) -> None: ...
    def param(self, name: str) -> F64: ...
    def set_param(self, name: str, value: float | ArrayLike) -> None: ...
    @property
    def controls(self) -> F64:
        """The persistent ``(batch, controls)`` buffer that ``step`` applies."""
    @controls.setter
    def controls(self, values: ArrayLike) -> None: ...
    def state(self) -> tuple[F64, F64]:
        """Positions and velocities, ``(batch, dofs)`` each."""
    def set_state(self, x: ArrayLike, v: ArrayLike) -> None: ...
    def reset(
        self, envs: Optional[Sequence[int]] = None, noise: float = 0.0, seed: int = 0
    ) -> None: ...
    def step(self, n: int = 1) -> None: ...
    def render(self, envs: Optional[Sequence[int]] = None) -> npt.NDArray[np.uint8]:
        """A picture of environments ``envs`` (default: the first) as they are
        now, as ``joule run --gif`` draws a frame: RGB, ``(400, 640, 3)``."""
    def rollout(
        self,
        steps: Optional[int] = None,
        controls: Optional[ArrayLike] = None,
        record: bool = True,
    ) -> Optional[F64]:
        """Output table after every step, ``(steps, batch, output_size)``."""
    def outputs(self, out: Optional[F64] = None) -> F64:
        """``(batch, output_size)``; written into ``out`` when given."""
    def output(self, name: str) -> F64:
        """``(batch, size)``."""
    def gradient(
        self,
        loss: Optional[str] = None,
        reward: Optional[str] = None,
        steps: Optional[int] = None,
        controls: Optional[ArrayLike] = None,
        track: Optional[tuple[str, ArrayLike]] = None,
    ) -> Gradient: ...
    def tape(self) -> Tape:
        """An empty tape starting at the current state."""
    def step_taped(self, tape: Tape) -> None:
        """One step at the control buffer's values, recorded on ``tape``."""
    def seed_outputs(self, tape: Tape, seed: ArrayLike) -> None:
        """Adds ``seed . outputs`` (``(batch, output_size)``) at the tape's head."""
    def reverse_step(self, tape: Tape) -> F64:
        """Reverses one step; dL/d(its controls), ``(batch, controls)``."""
    def tape_gradient(self, tape: Tape) -> TapeGradient: ...
    def set_gradient_memory(self, bytes: int) -> None: ...
    @property
    def events(self) -> list[Event]: ...
    def clear_events(self) -> None: ...
