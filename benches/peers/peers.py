"""Joule against MuJoCo, Brax and Warp on this machine, in one run.

Run through `benches/peers/run.sh` (it makes the venv). Each peer is measured
in-process here; Joule through `joule bench --json` (release build). Prints one
table of ratios, one line per target of issue 6, and writes every raw figure to
`benches/peers/last_run.json`. Runs in a temporary working directory, so
MuJoCo's log file (MUJOCO_LOG.TXT) never lands in the tree. A peer that is not installed, or fails, is
reported as such and its lines read "n/a"; the rest still run.

Figures are medians of REPEATS timed runs after a warm-up. Throughput is
physics steps per second (one environment advanced by one physics step) and
simulated seconds per wall second (that times the physics dt); both are summed
over the batch.

The ant runs at rest (zero controls) and in motion (`random`: every control
uniform in its range, fresh every step and environment, seeded by --seed,
generated before the timer starts), in MuJoCo (Brax's ant.xml) and in Joule
(scenes/ant.joule, penalty hinges; scenes/ant_joints.joule, a joint tree;
scenes/ant_brax.joule, the same ant.xml loaded in joint coordinates;
benches/scenes/ant_mujoco.joule, that ant.xml under MuJoCo's own laws).
With --rounds N the engines take turns N times (MuJoCo, Brax, Warp, Joule,
then again) and the table shows the median of each figure over the rounds.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPEATS = 3
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))


def median_time(fn, repeats=REPEATS):
    """Median wall seconds of `fn()` over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ant_xml():
    """Brax's ant.xml, found without importing brax (so without JAX)."""
    spec = importlib.util.find_spec("brax")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("brax (its envs/assets/ant.xml is the ant MuJoCo steps)")
    return os.path.join(spec.submodule_search_locations[0], "envs", "assets", "ant.xml")


# --------------------------------------------------------------------------- MuJoCo


def mujoco_figures(batches, threads, seed):
    import mujoco
    import numpy as np
    from mujoco import rollout

    m = mujoco.MjModel.from_xml_path(ant_xml())
    dt = m.opt.timestep
    out = {"version": mujoco.__version__, "dt": dt, "rollout": []}
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state0 = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, state0, spec)
    # Each actuator's control range ([-1, 1] where it has none), as `joule bench --controls random`.
    limited = m.actuator_ctrllimited.astype(bool)
    lo = np.where(limited, m.actuator_ctrlrange[:, 0], -1.0)
    hi = np.where(limited, m.actuator_ctrlrange[:, 1], 1.0)
    for controls in ["zero", "random"]:
        for t in threads:
            datas = [mujoco.MjData(m) for _ in range(t)]
            for b in batches:
                nstep = max(50, int(20000 / b))
                init = np.tile(state0, (b, 1))
                if controls == "zero":
                    ctrl = np.zeros((b, nstep, m.nu))
                else:
                    # Drawn before the timer starts, like Joule's.
                    ctrl = np.random.default_rng(seed).uniform(lo, hi, size=(b, nstep, m.nu))
                with rollout.Rollout(nthread=t) as r:
                    sec = median_time(lambda: r.rollout([m] * b, datas, init, ctrl, nstep=nstep))
                steps = b * nstep / sec
                out["rollout"].append(
                    {"controls": controls, "batch": b, "threads": t, "steps": nstep,
                     "steps_per_s": steps, "sim_s_per_s": steps * dt}
                )
                print(f"  mujoco rollout {controls} B={b} T={t}: {steps:,.0f} steps/s", flush=True)
    # One env, mj_step from Python (includes the binding's call overhead).
    mujoco.mj_resetData(m, d)
    n = 2000
    sec = median_time(lambda: [mujoco.mj_step(m, d) for _ in range(n)])
    out["mj_step_steps_per_s"] = n / sec
    # Finite-difference transition derivatives against a step.
    A = np.zeros((2 * m.nv + m.na, 2 * m.nv + m.na))
    B = np.zeros((2 * m.nv + m.na, m.nu))
    n = 50
    mujoco.mj_resetData(m, d)
    mujoco.mj_forward(m, d)
    fwd = median_time(lambda: [mujoco.mjd_transitionFD(m, d, 1e-6, 0, A, B, None, None) for _ in range(n)]) / n
    cen = median_time(lambda: [mujoco.mjd_transitionFD(m, d, 1e-6, 1, A, B, None, None) for _ in range(n)]) / n
    step = 1.0 / out["mj_step_steps_per_s"]
    out["fd_forward_over_step"] = fwd / step
    out["fd_centred_over_step"] = cen / step
    out["fd_centred_s"] = cen
    print(f"  mujoco FD derivatives: {fwd / step:.1f}x / {cen / step:.1f}x a step", flush=True)
    return out


# --------------------------------------------------------------------------- Brax


def brax_figures(pipelines, batches, grad_batch, grad_steps):
    import jax
    import jax.numpy as jnp
    import brax
    from brax import envs

    out = {"version": brax.__version__, "jax": jax.__version__, "devices": str(jax.devices()), "runs": []}
    for backend in pipelines:
        for b in batches:
            env = envs.create("ant", backend=backend, batch_size=b)
            phys_dt = float(env.sys.opt.timestep)
            frames = int(round(float(env.dt) / phys_dt))
            reset = jax.jit(env.reset)
            step = jax.jit(env.step)
            t = time.perf_counter()
            state = reset(jax.random.PRNGKey(0))
            act = jnp.zeros((b, env.action_size))
            state = step(state, act)
            jax.block_until_ready(state)
            compile_s = time.perf_counter() - t
            n = max(5, int(20000 / (b * frames)))

            def run():
                s = state
                for _ in range(n):
                    s = step(s, act)
                jax.block_until_ready(s)

            sec = median_time(run)
            steps = b * n * frames / sec
            out["runs"].append(
                {
                    "pipeline": backend,
                    "batch": b,
                    "physics_dt": phys_dt,
                    "frames": frames,
                    "compile_s": compile_s,
                    "steps_per_s": steps,
                    "sim_s_per_s": steps * phys_dt,
                }
            )
            print(f"  brax {backend} B={b}: {steps:,.0f} physics steps/s, compile {compile_s:.1f} s", flush=True)
    if grad_steps > 0:
        # Gradient of the summed reward of a rollout with respect to the actions.
        env = envs.create("ant", backend=pipelines[0], batch_size=grad_batch)
        state0 = jax.jit(env.reset)(jax.random.PRNGKey(0))
        acts = jnp.zeros((grad_steps, grad_batch, env.action_size))

        def total(acts):
            def body(s, a):
                s = env.step(s, a)
                return s, s.reward

            _, r = jax.lax.scan(body, state0, acts)
            return jnp.sum(r)

        fwd = jax.jit(total)
        grad = jax.jit(jax.grad(total))
        t = time.perf_counter()
        jax.block_until_ready(fwd(acts))
        fwd_compile = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(grad(acts))
        grad_compile = time.perf_counter() - t
        f = median_time(lambda: jax.block_until_ready(fwd(acts)))
        g = median_time(lambda: jax.block_until_ready(grad(acts)))
        out["gradient"] = {
            "pipeline": pipelines[0],
            "batch": grad_batch,
            "env_steps": grad_steps,
            "forward_s": f,
            "gradient_s": g,
            "ratio": g / f,
            "compile_forward_s": fwd_compile,
            "compile_gradient_s": grad_compile,
        }
        print(f"  brax gradient ({grad_steps} env steps, B={grad_batch}): {g / f:.2f}x forward, compile {grad_compile:.1f} s", flush=True)
    return out


# --------------------------------------------------------------------------- Warp


def warp_figures(n=64, steps=200):
    """Hand-written Warp CPU kernels of the cloth in benches/scenes/cloth64.joule (f32)."""
    import numpy as np
    import warp as wp

    cache = tempfile.mkdtemp(prefix="warp-cache-")
    wp.config.kernel_cache_dir = cache  # an empty cache: the first launch compiles
    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def springs(
        x: wp.array(dtype=wp.vec3),
        ij: wp.array(dtype=wp.int32),
        rest: wp.array(dtype=float),
        k: wp.array(dtype=float),
        f: wp.array(dtype=wp.vec3),
    ):
        s = wp.tid()
        i = ij[2 * s]
        j = ij[2 * s + 1]
        d = x[i] - x[j]
        l = wp.length(d)
        fs = -k[s] * (l - rest[s]) / l * d
        wp.atomic_add(f, i, fs)
        wp.atomic_sub(f, j, fs)

    @wp.kernel
    def integrate(
        x: wp.array(dtype=wp.vec3),
        v: wp.array(dtype=wp.vec3),
        f: wp.array(dtype=wp.vec3),
        inv_m: wp.array(dtype=float),
        g: wp.vec3,
        dt: float,
    ):
        p = wp.tid()
        w = inv_m[p]
        if w > 0.0:
            v1 = v[p] + (f[p] * w + g) * dt
            v[p] = v1
            x[p] = x[p] + v1 * dt

    h = 1.0 / (n - 1)
    idx = lambda i, j: i * n + j
    pos = np.array([[i * h, j * h, 1.0] for i in range(n) for j in range(n)], dtype=np.float32)
    pairs, ks = [], []
    for i in range(n):
        for j in range(n):
            if i + 1 < n:
                pairs.append((idx(i, j), idx(i + 1, j))); ks.append(1000.0)
            if j + 1 < n:
                pairs.append((idx(i, j), idx(i, j + 1))); ks.append(1000.0)
            if i + 1 < n and j + 1 < n:
                pairs.append((idx(i, j), idx(i + 1, j + 1))); ks.append(1000.0)
                pairs.append((idx(i + 1, j), idx(i, j + 1))); ks.append(1000.0)
    pairs = np.array(pairs, dtype=np.int32)
    rest = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1).astype(np.float32)
    inv = np.full(n * n, (n * n) / 0.2, dtype=np.float32)
    inv[idx(0, 0)] = 0.0
    inv[idx(n - 1, 0)] = 0.0
    dev = "cpu"
    x = wp.array(pos, dtype=wp.vec3, device=dev)
    v = wp.zeros(n * n, dtype=wp.vec3, device=dev)
    f = wp.zeros(n * n, dtype=wp.vec3, device=dev)
    ij = wp.array(pairs.reshape(-1), dtype=wp.int32, device=dev)
    rest_a = wp.array(rest, dtype=float, device=dev)
    k_a = wp.array(np.array(ks, dtype=np.float32), dtype=float, device=dev)
    inv_a = wp.array(inv, dtype=float, device=dev)
    g = wp.vec3(0.0, 0.0, -9.81)
    dt = 1e-4
    ns = len(ks)

    def step():
        f.zero_()
        wp.launch(springs, dim=ns, inputs=[x, ij, rest_a, k_a, f], device=dev)
        wp.launch(integrate, dim=n * n, inputs=[x, v, f, inv_a, g, dt], device=dev)

    t = time.perf_counter()
    step()
    wp.synchronize()
    compile_s = time.perf_counter() - t

    def run():
        for _ in range(steps):
            step()
        wp.synchronize()

    sec = median_time(run)
    sps = steps / sec
    z = x.numpy()[:, 2]
    stable = bool(np.all(np.isfinite(z)))
    print(f"  warp cloth {n}x{n} ({ns} springs): {sps:,.0f} steps/s, first launch {compile_s:.2f} s, finite {stable}", flush=True)
    return {
        "version": wp.config.version,
        "springs": ns,
        "dt": dt,
        "steps_per_s": sps,
        "sim_s_per_s": sps * dt,
        "first_launch_s": compile_s,
        "finite": stable,
        "precision": "f32",
    }


# --------------------------------------------------------------------------- Joule


def joule_bench(scene, batches, threads, horizon, extra=()):
    exe = os.path.join(ROOT, "target", "release", "joule")
    cmd = [exe, "bench", os.path.join(ROOT, scene), "--batch", ",".join(map(str, batches)),
           "--threads", ",".join(map(str, threads)), "--horizon", str(horizon), "--json", *extra]
    print("  $ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


# Steps per timed repeat of Joule's ant rows, from the scene's start (the
# default, 0.3 s worth, would time 2-10 steps of the landing at B = 64 in motion).
ANT_STEPS = 100


def joule_figures(quick, seed):
    out = {}
    ant_batches = [1, 64] if quick else [1, 64, 1024]
    for name, scene in [("ant", "scenes/ant.joule"), ("ant_joints", "scenes/ant_joints.joule"),
                        ("ant_brax", "scenes/ant_brax.joule"), ("ant_mujoco", "benches/scenes/ant_mujoco.joule")]:
        for controls in ["zero", "random"]:
            key = name if controls == "zero" else f"{name}_random"
            out[key] = joule_bench(scene, ant_batches, [1, 2], 100,
                                   ["--steps", str(ANT_STEPS), "--controls", controls, "--seed", str(seed)])
    if quick:
        return joule_report(out)
    out["cloth64"] = joule_bench("benches/scenes/cloth64.joule", [1], [1], 100)
    # In f32 like Warp's kernels: one cloth, and four (one per f32x4 lane).
    out["cloth64_f32"] = joule_bench("benches/scenes/cloth64.joule", [1, 4], [1], 0, ["--precision", "f32"])
    out["cloth64_implicit"] = joule_bench("benches/scenes/cloth64_implicit.joule", [1], [1], 0, ["--steps", "2", "--repeats", "2"])
    return joule_report(out)


def joule_report(out):
    for name, r in out.items():
        for run in r["runs"]:
            newton = run.get("newton_iterations_per_step")
            newton = "" if newton is None else f", Newton {newton:.2f}/step"
            print(f"  joule {name} B={run['batch']} T={run['threads']}: {run['env_steps_per_s']:,.0f} steps/s, "
                  f"{run['sim_s_per_s']:.3g} sim-s/s, events {run['events']}{newton}", flush=True)
    return out


# --------------------------------------------------------------------------- table


def median_tree(trees):
    """The median of every number over trees of the same shape (dicts, lists); other values from the first."""
    first = trees[0]
    if all(t == first for t in trees):
        return first
    if isinstance(first, dict):
        return {k: median_tree([t[k] for t in trees if isinstance(t, dict) and k in t]) for k in first}
    if isinstance(first, list) and all(isinstance(t, list) and len(t) == len(first) for t in trees):
        return [median_tree([t[i] for t in trees]) for i in range(len(first))]
    if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in trees):
        return statistics.median(trees)
    return first


def find(runs, **kw):
    for r in runs or []:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def table(res):
    rows = []  # (target, joule, peer, ratio, goal)

    def line(target, j, p, goal, fmt="{:,.0f}", invert=False):
        if j is None or p is None:
            rows.append((target, "n/a" if j is None else fmt.format(j), "n/a" if p is None else fmt.format(p), "n/a", goal))
            return
        ratio = (p / j) if invert else (j / p)
        rows.append((target, fmt.format(j), fmt.format(p), f"{ratio:.3g}", goal))

    jo = res.get("joule", {})
    ja = jo.get("ant", {})
    jruns = ja.get("runs")
    mj = res.get("mujoco", {})
    scenes = [("ant", "penalty"), ("ant_joints", "joints"), ("ant_brax", "ant.xml"),
              ("ant_mujoco", "ant.xml on MuJoCo's laws")]
    for controls, label in [("zero", "at rest"), ("random", "random controls")]:
        for name, kind in scenes:
            key = name if controls == "zero" else f"{name}_random"
            for b, t in [(1, 1), (1, 2), (64, 1), (64, 2)]:
                j = find(jo.get(key, {}).get("runs"), batch=b, threads=t)
                m = find(mj.get("rollout"), controls=controls, batch=b, threads=t)
                line(f"ant {label} sim-s/s, B={b}, {t} thread(s): Joule {kind} / MuJoCo rollout",
                     j and j["sim_s_per_s"], m and m["sim_s_per_s"], ">= 1", "{:.3g}")
    br = res.get("brax", {})
    for pipe in ["generalized", "spring"]:
        for b in [64, 1024]:
            j = find(jruns, batch=b, threads=2)
            p = find(br.get("runs"), pipeline=pipe, batch=b)
            line(f"ant sim-s/s, B={b}: Joule (2 threads) / Brax {pipe} (jit, all cores)",
                 j and j["sim_s_per_s"], p and p["sim_s_per_s"], "> 10", "{:.3g}")
    jg = ja.get("gradient")
    bg = br.get("gradient")
    line("ant gradient / forward (100 steps): Brax ratio / Joule ratio",
         jg and jg["ratio"], bg and bg["ratio"], "Joule <= 3x", "{:.2f}", invert=True)
    for name, kind in scenes:
        for key, label in [(name, "at rest"), (f"{name}_random", "random controls")]:
            g = jo.get(key, {}).get("gradient")
            # Joule's forward + backward per env-step against one centred
            # finite-difference Jacobian of a MuJoCo step, both in seconds.
            per_step = g and g["gradient_s"] / (g["horizon"] * g["batch"])
            line(f"ant {label} gradient s/step: MuJoCo centred FD / Joule {kind} fwd+bwd",
                 per_step, mj.get("fd_centred_s"), "> 1", "{:.3g}", invert=True)
    jc = ja.get("compile_ms", {}).get("total")
    bc = find(br.get("runs"), pipeline="generalized", batch=64)
    line("ant compile (ms): Brax jit compile / Joule compile",
         jc, bc and bc["compile_s"] * 1e3, "Joule < 100 ms", "{:,.1f}", invert=True)
    jcl = res.get("joule", {}).get("cloth64", {})
    wc = res.get("warp", {})
    line("cloth compile (ms): Warp first launch / Joule compile",
         jcl.get("compile_ms", {}).get("total"), wc.get("first_launch_s") and wc["first_launch_s"] * 1e3,
         "Joule < 100 ms", "{:,.1f}", invert=True)
    j1 = find(jcl.get("runs"), batch=1, threads=1)
    line("cloth 64x64 explicit steps/s, 1 thread: Joule / Warp CPU",
         j1 and j1["env_steps_per_s"], wc.get("steps_per_s"), ">= 1")
    jf = res.get("joule", {}).get("cloth64_f32", {}).get("runs")
    for b in [1, 4]:
        j = find(jf, batch=b, threads=1)
        line(f"cloth 64x64 explicit f32 cloth-steps/s, B={b}, 1 thread: Joule / Warp CPU",
             j and j["env_steps_per_s"], wc.get("steps_per_s"), ">= 1")
    ji = find(res.get("joule", {}).get("cloth64_implicit", {}).get("runs"), batch=1, threads=1)
    line("cloth sim-s/s: Joule implicit (dt 1/60) / Joule explicit (dt 1e-4)",
         ji and ji["sim_s_per_s"], j1 and j1["sim_s_per_s"], "> 1", "{:.3g}")
    # Newton iterations per env-step, Joule's ant rows.
    newton = []
    for name, kind in scenes:
        for key, label in [(name, "at rest"), (f"{name}_random", "random controls")]:
            for r in jo.get(key, {}).get("runs") or []:
                n = r.get("newton_iterations_per_step")
                newton.append(f"{kind} {label} B={r['batch']} T={r['threads']}: "
                              f"{'n/a' if n is None else f'{n:.2f}'} (events {r['events']})")
    if newton:
        print("Joule Newton iterations per env-step: " + "; ".join(newton))
    w = [max(len(r[i]) for r in rows + [("target", "Joule", "peer", "ratio", "goal")]) for i in range(5)]
    head = ("target", "Joule", "peer", "ratio", "goal")
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
    print("| " + " | ".join("-" * w[i] for i in range(5)) + " |")
    for r in rows:
        print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller batches (no B=1024 for Joule's ant)")
    ap.add_argument("--skip", default="", help="comma-separated peers to skip: mujoco,brax,warp,joule")
    ap.add_argument("--brax-pipelines", default="generalized,spring")
    ap.add_argument("--brax-grad-steps", type=int, default=20,
                    help="env steps of the differentiated Brax rollout (5 physics steps each for generalized)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random controls (MuJoCo and Joule)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of all engines in turn; the table shows each figure's median over them")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    res = {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
            "load_before": os.getloadavg(),
            "python": sys.version.split()[0],
        }
    }
    jobs = [
        ("mujoco", lambda: mujoco_figures([1, 64], [1, 2], args.seed)),
        ("brax", lambda: brax_figures(args.brax_pipelines.split(","), [64, 1024], 64, args.brax_grad_steps)),
        ("warp", warp_figures),
        ("joule", lambda: joule_figures(args.quick, args.seed)),
    ]
    rounds = []
    for k in range(max(1, args.rounds)):
        one = {}
        for name, job in jobs:
            if name in skip:
                print(f"{name}: skipped", flush=True)
                continue
            print(f"{name} (round {k + 1} of {args.rounds}):", flush=True)
            try:
                one[name] = job()
            except ImportError as e:
                print(f"  {name} is not installed ({e}); its lines read n/a", flush=True)
            except Exception:
                traceback.print_exc()
                print(f"  {name} failed; its lines read n/a", flush=True)
        rounds.append(one)
    for name, _ in jobs:
        got = [r[name] for r in rounds if name in r]
        if got:
            res[name] = median_tree(got)
    res["rounds"] = rounds
    res["machine"]["load_after"] = os.getloadavg()
    with open(os.path.join(HERE, "last_run.json"), "w") as f:
        json.dump(res, f, indent=1)
    print()
    print(f"machine: {res['machine']['nproc']} cores, {res['machine']['cpu']}, load average before "
          f"{res['machine']['load_before'][0]:.2f}, after {res['machine']['load_after'][0]:.2f}; "
          f"medians over {len(rounds)} round(s), random controls seed {args.seed}")
    table(res)


if __name__ == "__main__":
    # MuJoCo writes MUJOCO_LOG.TXT into the working directory: run in a
    # temporary one outside the tree (every path above is absolute).
    with tempfile.TemporaryDirectory(prefix="joule-peers-") as work:
        os.chdir(work)
        main()
