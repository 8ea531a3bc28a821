"""MJCF models in MuJoCo 4 and in Joule, side by side: for each model, whether
`joule import` takes it strictly (else its first diagnostic), then, from the
same initial state (MuJoCo's `qpos0`; every Joule coordinate starts at 0),
the largest distance between a body origin in MuJoCo (`data.xpos`) and the
same body's origin in Joule (`BODY.x`, the MJCF body frame) at 0.1, 0.5 and
1 s, with zero controls and with one fixed sequence of random controls
(uniform in each actuator's `ctrlrange`, seed 0), and the speed of a 1 s
rollout (Joule / MuJoCo, B = 1, one thread, wall clock of the whole loop in
each engine's Python API; a rough figure: `benches/peers/peers.py` has the
careful ones). Bodies that Joule merges into their parent (no joint) are
compared through the bodies that remain.

Needs a Python with `mujoco` and the `joule` package (python/test.sh builds
it into target/python-venv):

    target/python-venv/bin/python -m pip install mujoco
    target/python-venv/bin/python benches/peers/mjcf_compare.py [--friction cone|coulomb|mujoco] [--timestep DT] DIR_OR_XML...

`--friction` is `joule import`'s contact law (default: `use`'s, the cone).
`--timestep` runs both engines on a copy of each model with `<option
timestep>` set to DT (written next to the model, so that its includes and
assets resolve, and removed after): how far apart the two integrators'
discretisations are, against how far apart the models are.

Prints a Markdown table (docs/performance.md, "MJCF models against MuJoCo").
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import mujoco
import numpy as np

import joule

TIMES = [0.1, 0.5, 1.0]
JOULE = os.environ.get("JOULE", os.path.join(os.path.dirname(__file__), "../../target/release/joule"))


def strict_import(path, friction):
    """(True, '') when `joule import` takes the model without --lenient,
    else (False, its first error line)."""
    r = subprocess.run([JOULE, "import", path, "--friction", friction], capture_output=True, text=True)
    if r.returncode == 0:
        return True, ""
    lines = [l.strip() for l in r.stderr.splitlines() if l.strip()]
    first = next((l for l in lines if "×" in l or "error" in l), lines[0] if lines else "")
    return False, first.replace("×", "").strip()


def controls(m, steps, random):
    lim = m.actuator_ctrllimited.astype(bool)
    lo = np.where(lim, m.actuator_ctrlrange[:, 0], -1.0)
    hi = np.where(lim, m.actuator_ctrlrange[:, 1], 1.0)
    if not random:
        return np.zeros((steps, m.nu))
    return np.random.default_rng(0).uniform(lo, hi, size=(steps, m.nu))


def mujoco_run(m, u):
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    marks = {round(t / m.opt.timestep): t for t in TIMES}
    out = {}
    start = time.perf_counter()
    for k in range(len(u)):
        d.ctrl[:] = u[k]
        mujoco.mj_step(m, d)
        if k + 1 in marks:
            # After mj_step, xpos still holds the kinematics of the step's
            # start: recompute it for the new qpos.
            mujoco.mj_kinematics(m, d)
            out[marks[k + 1]] = d.xpos.copy()
    return out, time.perf_counter() - start


def joule_run(scene, u, rows, dt):
    sim = scene.batch(1, 1)
    marks = {round(t / dt): t for t in TIMES}
    out = {}
    start = time.perf_counter()
    for k in range(len(u)):
        if u.shape[1]:
            sim.controls = u[k][None, :]
        sim.step()
        if k + 1 in marks:
            x, _ = sim.state()
            out[marks[k + 1]] = {b: x[0, r : r + 3].copy() for b, r in rows.items()}
    return out, time.perf_counter() - start


def with_timestep(path, dt):
    """A copy of the model at `path`, next to it, whose `<option>` sets the
    timestep `dt`."""
    text = open(path).read()
    if re.search(r"<option\b[^>]*\btimestep=", text):
        text = re.sub(r'(<option\b[^>]*\btimestep=)"[^"]*"', rf'\g<1>"{dt}"', text, count=1)
    elif re.search(r"<option\b", text):
        text = re.sub(r"<option\b", f'<option timestep="{dt}"', text, count=1)
    else:
        text = re.sub(r"(<mujoco\b[^>]*>)", rf'\g<1><option timestep="{dt}"/>', text, count=1)
    fd, copy = tempfile.mkstemp(suffix=".xml", prefix=".timestep-", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return copy


def models(args):
    for a in args:
        if os.path.isdir(a):
            for f in sorted(os.listdir(a)):
                if f.endswith(".xml"):
                    yield os.path.join(a, f)
        else:
            yield a


def main():
    args = sys.argv[1:]
    friction, timestep = "cone", None
    while args[:1] in (["--friction"], ["--timestep"]):
        if args[0] == "--friction":
            friction = args[1]
        else:
            timestep = float(args[1])
        args = args[2:]
    print("| model | strict import | zero u: 0.1 / 0.5 / 1 s (m) | random u: 0.1 / 0.5 / 1 s (m) | Joule / MuJoCo speed |")
    print("| --- | --- | --- | --- | --- |")
    for path in models(args):
        name = os.path.splitext(os.path.basename(path))[0]
        if timestep is None:
            compare(path, name, friction)
            continue
        copy = with_timestep(path, timestep)
        try:
            compare(copy, name, friction)
        finally:
            os.unlink(copy)


def compare(path, name, friction):
    """One model's row of the table."""
    ok, why = strict_import(path, friction)
    try:
        m = mujoco.MjModel.from_xml_path(path)
    except Exception as e:  # MuJoCo itself refuses the file
        print(f"| {name} | {'yes' if ok else 'no: ' + why} | MuJoCo: {e} | | |")
        return
    if not ok:
        print(f"| {name} | no: {why} | | | |")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".joule", delete=False) as f:
        scene_path = f.name
        if friction == "cone":
            f.write(f'use "{os.path.abspath(path)}"\n')
    if friction != "cone":
        subprocess.run([JOULE, "import", path, "--friction", friction, "-o", scene_path], check=True, capture_output=True)
    try:
        scene = joule.Scene.from_path(scene_path)
    finally:
        os.unlink(scene_path)
    dt = scene.dt
    names = scene.dof_names
    rows = {}
    for b in range(m.nbody):
        bname = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)
        if bname and f"{bname}.x[0]" in names:
            rows[b] = names.index(f"{bname}.x[0]")
    if not rows:
        print(f"| {name} | yes | no moving body origin to compare | | |")
        return
    steps = round(max(TIMES) / m.opt.timestep)
    cells = []
    speed = []
    for random in [False, True]:
        u = controls(m, steps, random)
        want, t_mj = mujoco_run(m, u)
        got, t_j = joule_run(scene, u, rows, dt)
        speed.append(t_mj / t_j)
        cells.append(
            " / ".join(
                f"{max(np.linalg.norm(got[t][b] - want[t][b]) for b in rows):.3g}" for t in TIMES
            )
        )
    print(f"| {name} | yes | {cells[0]} | {cells[1]} | {min(speed):.2f}-{max(speed):.2f}x |")


if __name__ == "__main__":
    main()
