"""MuJoCo's own values for the MJCF import tests (tests/mjcf.rs).

Run with the `mujoco` Python package (tested with mujoco 4.0.0 and 4.0.1):

    python3 tests/mjcf/reference.py > tests/mjcf/reference.json

For every fixture: each body's mass, centre of mass (body frame) and full
inertia tensor about it (body frame: R(iquat) diag(inertia) R(iquat)^T), the
world pose in the reference configuration, and its inverse weights
(`body_invweight0`: translation, rotation). For the passive-dynamics
fixtures: MuJoCo's trajectory over 1 s, sampled every 0.1 s (positions
recomputed at each sampled state: after mj_step they are the step's start's).
For the driven fixtures (constant controls `CONTROLS`): the same, with every
sensor's reading at each sample, by name. For models on RK4, also the
trajectory of RK4's tableau composed from `mj_forward` (`tableau_step`).
"""
import json
import os
import tempfile

import mujoco
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["ant", "half_cheetah", "reacher", "humanoid", "pendulum",
          "pendulum_armature", "falling", "cartpole", "chain", "pusher",
          "inverted_double_pendulum", "planes", "ref_tendon_sensors", "fluid", "frictionloss", "tendon_forces", "tendon_equality", "spatial_tendon", "box_on_box", "capsule_cross", "capsule_slide", "ellipsoid_contact", "general_actuators", "flat_hfield", "mesh_inertia", "ellipsoid_box", "mujoco_contact", "mujoco_drop", "mujoco_limits", "mujoco_touch", "mujoco_rk4"]
# Driven fixtures: their constant controls.
CONTROLS = {"ref_tendon_sensors": [0.3, -0.5], "fluid": [0.8, -0.6], "tendon_forces": [0.4], "tendon_equality": [0.6], "spatial_tendon": [0.3], "box_on_box": [1.0], "capsule_cross": [], "capsule_slide": [3.0, 6.0, 1.5], "ellipsoid_contact": [], "general_actuators": [0.6, -0.8, 0.5], "flat_hfield": [], "ellipsoid_box": [], "mujoco_limits": [0.6], "mujoco_rk4": [0.3]}


def quat_mat(q):
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=float))
    return m.reshape(3, 3)


def bodies(m, d):
    out = []
    for b in range(m.nbody):
        r = quat_mat(m.body_iquat[b])
        tensor = r @ np.diag(m.body_inertia[b]) @ r.T
        out.append({
            "name": mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or "",
            "mass": float(m.body_mass[b]),
            "com": m.body_ipos[b].tolist(),
            "inertia": tensor.tolist(),
            "xpos": d.xpos[b].tolist(),
            "xquat": d.xquat[b].tolist(),
            "invweight0": m.body_invweight0[b].tolist(),
        })
    return out


def trajectory(m, d):
    samples = []
    steps = int(round(0.1 / m.opt.timestep))
    for k in range(11):
        # mj_step leaves positions (xpos, site_xpos) and sensors computed at
        # the start of its step: recompute them at the state it reached.
        mujoco.mj_forward(m, d)
        sample = {
            "t": float(d.time),
            "qpos": d.qpos.tolist(),
            "xpos": d.xpos.tolist(),
            "site_xpos": d.site_xpos.tolist(),
        }
        if m.na:
            sample["act"] = d.act.tolist()
        if m.nsensor:
            sample["sensors"] = {
                mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SENSOR, i):
                    d.sensordata[m.sensor_adr[i]:m.sensor_adr[i] + m.sensor_dim[i]].tolist()
                for i in range(m.nsensor)
            }
        samples.append(sample)
        if k < 10:
            for _ in range(steps):
                mujoco.mj_step(m, d)
    return samples


def tableau_step(m, d):
    """One step of the classic RK4 tableau on MuJoCo's forward dynamics
    (`mj_forward` at each stage's state, positions moved by
    `mj_integratePos`), from the state in `d` into it."""
    a = [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]]
    b = [1 / 6, 1 / 3, 1 / 3, 1 / 6]
    h = m.opt.timestep
    mujoco.mj_forward(m, d)
    q0, v0 = d.qpos.copy(), d.qvel.copy()
    x, f = [(q0, v0)], [d.qacc.copy()]
    for i in range(1, 4):
        dq = sum(a[i - 1][j] * x[j][1] for j in range(i))
        dv = sum(a[i - 1][j] * f[j] for j in range(i))
        q = q0.copy()
        mujoco.mj_integratePos(m, q, dq, h)
        x.append((q, v0 + h * dv))
        d.qpos[:], d.qvel[:] = x[-1]
        mujoco.mj_forward(m, d)
        f.append(d.qacc.copy())
    q = q0.copy()
    mujoco.mj_integratePos(m, q, sum(b[j] * x[j][1] for j in range(4)), h)
    d.qpos[:], d.qvel[:] = q, v0 + h * sum(b[j] * f[j] for j in range(4))
    d.time += h


def tableau_trajectory(m, d):
    """[`trajectory`] stepped by `tableau_step`: the RK4 of MuJoCo's
    documentation, which `mj_step`'s own RK4 departs from where contacts
    act (tests/mjcf.rs)."""
    samples = []
    steps = int(round(0.1 / m.opt.timestep))
    for k in range(11):
        mujoco.mj_forward(m, d)
        samples.append({"t": float(d.time), "qpos": d.qpos.tolist(), "xpos": d.xpos.tolist()})
        if k < 10:
            for _ in range(steps):
                tableau_step(m, d)
    return samples


def main():
    ref = {"mujoco": mujoco.__version__, "models": {}}
    for name in MODELS:
        m = mujoco.MjModel.from_xml_path(os.path.join(HERE, name + ".xml"))
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        entry = {"total_mass": float(m.body_mass.sum()), "bodies": bodies(m, d)}
        if name in CONTROLS:
            d.ctrl[:] = CONTROLS[name]
            entry["controls"] = CONTROLS[name]
        if name in ("pendulum", "pendulum_armature", "falling", "chain", "ant", "frictionloss", "mesh_inertia", "mujoco_contact", "mujoco_drop", "mujoco_limits", "mujoco_touch") or name in CONTROLS:
            entry["trajectory"] = trajectory(m, d)
        if m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4:
            d = mujoco.MjData(m)
            d.ctrl[:] = CONTROLS.get(name, [])
            entry["tableau_trajectory"] = tableau_trajectory(m, d)
        ref["models"][name] = entry
    print(json.dumps(ref, indent=1))


# MuJoCo writes MUJOCO_LOG.TXT into the working directory: use a temporary one
# (every path above is absolute).
with tempfile.TemporaryDirectory(prefix="joule-mjcf-reference-") as work:
    os.chdir(work)
    main()
