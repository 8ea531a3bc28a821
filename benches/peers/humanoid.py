"""MuJoCo's rollout of a humanoid MJCF (scenes/humanoid.xml, Brax's) with zero
and seeded uniform random controls, B = 1 and 64, 1 thread (and B = 64 on
each further thread count given): simulated seconds per wall second (median
of 3 timed runs after a warm-up), the peer of `joule bench
scenes/humanoid.joule --batch 1,64 --threads 1 --controls zero|random
--seed 0` (and of benches/scenes/humanoid_mujoco.joule, the same model on
MuJoCo's laws; docs/performance.md). Run with a Python that has `mujoco`
(benches/peers/run.sh makes one):

    benches/peers/.venv/bin/python benches/peers/humanoid.py scenes/humanoid.xml [THREADS,...]
"""
import time, sys
import mujoco, numpy as np
from mujoco import rollout
m = mujoco.MjModel.from_xml_path(sys.argv[1])
d = mujoco.MjData(m)
mujoco.mj_resetData(m, d)
spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
s0 = np.empty(mujoco.mj_stateSize(m, spec)); mujoco.mj_getState(m, d, s0, spec)
lim = m.actuator_ctrllimited.astype(bool)
lo = np.where(lim, m.actuator_ctrlrange[:, 0], -1.0); hi = np.where(lim, m.actuator_ctrlrange[:, 1], 1.0)
threads = [int(t) for t in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1]
runs = [(b, t) for t in threads for b in [1, 64] if b > 1 or t == 1]
for controls in ["zero", "random"]:
    for b, nthread in runs:
        n = max(50, int(20000 / b))
        init = np.tile(s0, (b, 1))
        ctrl = np.zeros((b, n, m.nu)) if controls == "zero" else np.random.default_rng(0).uniform(lo, hi, size=(b, n, m.nu))
        datas = [mujoco.MjData(m) for _ in range(nthread)]
        ts = []
        with rollout.Rollout(nthread=nthread) as r:
            r.rollout([m] * b, datas, init, ctrl, nstep=n)
            for _ in range(3):
                t = time.perf_counter(); r.rollout([m] * b, datas, init, ctrl, nstep=n); ts.append(time.perf_counter() - t)
        sec = sorted(ts)[1]
        print(f"mujoco humanoid {controls} B={b} T={nthread}: {b * n / sec * m.opt.timestep:.1f} sim-s/s (dt {m.opt.timestep})")
