"""The core API: compiling, arrays in and out (shapes, dtypes, no copies),
stepping with the GIL released, events, and gradients against central
differences and against the `joule grad` CLI."""

import json
import math
import subprocess
import threading
import time

import numpy as np
import pytest

import joule
from conftest import SCENES

BALL = """
scene "ball"
settings { dt = 1e-3, gravity = vec3(0, 0, 0), integrator = symplectic_euler }
param drag = 0.1
particle ball { x = vec3(0, 0, 1), v = vec3(2, 0, 0), mass = 1 }
dissipation air(p: particle, c: scalar) = 0.5 * c * dot(p.v, p.v)
air(ball, drag)
observe x = ball.x
loss distance = -ball.x.x
"""


def test_compile_text_and_declarations():
    scene = joule.Scene.compile(BALL)
    assert scene.title == "ball"
    assert scene.params == ["drag"]
    assert scene.param_defaults.tolist() == [0.1]
    assert scene.dofs == 3
    assert scene.dof_names == ["ball.x.x", "ball.x.y", "ball.x.z"]
    assert [(o.name, o.kind, o.offset, o.size) for o in scene.outputs] == [
        ("x", "observe", 0, 3),
        ("distance", "loss", 3, 1),
    ]
    assert scene.output_size == 4
    assert scene.losses == ["distance"] and scene.observations == ["x"]
    assert scene.policy is None
    x, v = scene.initial_state()
    assert x.tolist() == [0, 0, 1] and v.tolist() == [2, 0, 0]


def test_policy_declaration(cartpole):
    p = cartpole.policy
    assert p["inputs"] == ["cart_x", "cart_v", "pole_tip", "pole_spin"]
    assert p["outputs"] == ["u"] and p["hidden"] == [32, 32]
    assert cartpole.control_bounds == [(-1.0, 1.0)]


def test_compile_error_carries_the_location():
    source = BALL.replace("air(ball, drag)", "air(ball, dragg)")
    with pytest.raises(joule.CompileError) as info:
        joule.Scene.compile(source, name="typo.joule")
    e = info.value
    assert isinstance(e, Exception)
    at = source.index("dragg)")
    assert e.line == source[:at].count("\n") + 1
    assert e.column == at - source.rfind("\n", 0, at)
    assert "dragg" in e.message
    assert "typo.joule" in e.report and "did you mean `drag`?" in e.report
    assert str(e) == e.report
    assert e.diagnostics[0]["severity"] == "error"
    assert e.diagnostics[0]["line"] == e.line


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError, match="cannot read"):
        joule.Scene.from_path(tmp_path / "nope.joule")


def test_the_control_buffer_is_shared_not_copied(cartpole):
    sim = cartpole.batch(4)
    u = sim.controls
    assert u.shape == (4, 1) and u.dtype == np.float64
    assert sim.controls is u
    assert sim.controls.ctypes.data == u.ctypes.data
    u[:, 0] = [1.0, -1.0, 0.5, 0.0]  # written in place, applied by step()
    sim.step(20)
    cart_v = sim.output("cart_v")[:, 0]
    assert cart_v[0] > 0 > cart_v[1] and cart_v[2] > 0
    assert cart_v[0] > cart_v[2]
    sim.controls = np.full((4, 1), 7.0)  # assignment copies in, the buffer stays
    assert sim.controls is u and (u == 7.0).all()


def test_outputs_into_a_callers_buffer(pendulum):
    sim = pendulum.batch(8)
    sim.step(10)
    buf = np.empty((8, pendulum.output_size))
    got = sim.outputs(out=buf)
    assert got is buf and got.ctypes.data == buf.ctypes.data
    np.testing.assert_array_equal(buf, sim.outputs())
    with pytest.raises(ValueError, match=r"\(batch=8, outputs=8\)"):
        sim.outputs(out=np.empty((8, 3)))
    with pytest.raises(ValueError, match="float64"):
        sim.outputs(out=np.empty((8, 8), dtype=np.float32))


def test_arrays_out_are_environment_major(pendulum):
    sim = pendulum.batch(3)
    g = np.array([1.62, 9.81, 24.8])
    sim.set_param("g", g)
    np.testing.assert_array_equal(sim.param("g"), g)
    np.testing.assert_array_equal(sim.params[:, pendulum.params.index("g")], g)
    traj = sim.rollout(200)
    assert traj.shape == (200, 3, pendulum.output_size)
    angle = pendulum.outputs[0]
    assert angle.name == "angle"
    # Stronger gravity swings back faster: after 0.2 s the angle is smallest.
    last = traj[-1, :, angle.offset]
    assert last[0] > last[1] > last[2]
    np.testing.assert_array_equal(traj[-1], sim.outputs())


def test_wrong_shapes_and_dtypes_are_value_errors(pendulum, cartpole):
    sim = pendulum.batch(4)
    n = len(pendulum.params)
    with pytest.raises(ValueError, match=rf"\(batch=4, params={n}\)"):
        sim.params = np.zeros((4, n + 1))
    with pytest.raises(ValueError, match=r"\(batch=4,\)"):
        sim.set_param("g", np.ones(5))
    with pytest.raises(ValueError, match="complex"):
        sim.set_param("g", np.ones(4, dtype=complex))
    with pytest.raises(ValueError, match=r"\(batch=4, dofs=3\)"):
        sim.set_state(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="unknown parameter `h`"):
        sim.set_param("h", 1.0)
    with pytest.raises(ValueError, match="finite"):
        sim.set_state(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="out of range"):
        sim.reset(envs=[4])
    with pytest.raises(ValueError, match="at least 1"):
        pendulum.batch(0)
    c = cartpole.batch(2)
    with pytest.raises(ValueError, match=r"\(steps=5, batch=2, controls=1\)"):
        c.rollout(steps=5, controls=np.zeros((5, 3, 1)))
    with pytest.raises(ValueError, match=r"\(batch=2, controls=1\)"):
        c.controls = np.zeros((2, 2))
    with pytest.raises(ValueError, match="no output named"):
        c.output("nothing")
    with pytest.raises(ValueError, match="no loss named `height`"):
        c.gradient(loss="height", steps=3)
    # Integers and float32 are real numbers: converted once.
    sim.params = np.ones((4, n), dtype=np.float32)
    np.testing.assert_array_equal(sim.params, np.ones((4, n)))


def test_state_round_trip_and_reset(pendulum):
    sim = pendulum.batch(5)
    x0, v0 = sim.state()
    sim.step(50)
    x, v = sim.state()
    assert not np.allclose(x, x0)
    sim.set_state(x0, v0)
    np.testing.assert_array_equal(sim.state()[0], x0)
    sim.step(50)
    np.testing.assert_array_equal(sim.state()[0], x)  # deterministic
    sim.reset(noise=0.1, seed=3)
    a = sim.state()[1]
    sim.reset(noise=0.1, seed=3)
    np.testing.assert_array_equal(sim.state()[1], a)
    assert not np.allclose(a, v0)
    sim.reset(envs=[2])
    np.testing.assert_array_equal(sim.state()[1][2], v0[2])


def test_the_gil_is_released_while_stepping(pendulum):
    sim = pendulum.batch(64, threads=1)
    start = time.perf_counter()
    sim.step(2000)
    alone = time.perf_counter() - start
    ticks = 0
    t = threading.Thread(target=sim.step, args=(4000,))
    t.start()
    while t.is_alive():
        ticks += 1
    t.join()
    # With the GIL held for the whole call this thread could not have run.
    assert ticks > 1000, (ticks, alone)


def test_divergence_is_an_event():
    scene = joule.Scene.compile(
        "settings { dt = 1e-2, gravity = vec3(0, 0, 0), integrator = symplectic_euler }\n"
        "param k = 1e7\n"
        "particle p { x = vec3(1, 0, 0), mass = 1 }\n"
        "energy spring(p: particle, k: scalar) = 0.5 * k * dot(p.x, p.x)\n"
        "spring(p, k)\n"
    )
    sim = scene.batch(2)
    sim.set_param("k", np.array([1.0, 1e7]))
    sim.step(200)
    kinds = {(e.kind, e.env) for e in sim.events}
    assert ("diverged", 1) in kinds and all(e.env == 1 for e in sim.events)
    sim.clear_events()
    assert sim.events == []


def central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_gradient_against_central_differences(cartpole):
    steps, batch = 40, 2
    rng = np.random.default_rng(0)
    plan = rng.uniform(-0.8, 0.8, size=(steps, batch, 1))

    height = next(o for o in cartpole.outputs if o.name == "height")

    def total(**kw):
        sim = cartpole.batch(batch)
        if "params" in kw:
            sim.params = kw["params"]
        if "x" in kw:
            sim.set_state(kw["x"], kw["v"])
        traj = sim.rollout(controls=kw.get("plan", plan))
        return traj[:, :, height.offset].sum(axis=0)

    sim = cartpole.batch(batch)
    g = sim.gradient(reward="height", controls=plan)
    np.testing.assert_allclose(g.value, total(), rtol=1e-12)
    assert g.controls.shape == (steps, batch, 1) and g.params.shape == (batch, 1)
    # d / d force_gain
    p0 = sim.params * 0 + cartpole.param_defaults
    # Steps small enough for the truncation error, large enough that Newton's
    # tolerance (1e-9) does not show through the difference.
    fd = central(lambda p: total(params=np.full((batch, 1), p)), p0[0, 0], 1e-2)
    np.testing.assert_allclose(g.params[:, 0], fd, rtol=1e-5, atol=1e-8)
    # d / d the control at step 5 and step 30
    for t in (5, 30):
        def at(u, t=t):
            p = plan.copy()
            p[t, :, 0] = u
            return total(plan=p)
        fd = (at(plan[t, :, 0] + 1e-5) - at(plan[t, :, 0] - 1e-5)) / 2e-5
        np.testing.assert_allclose(g.controls[t, :, 0], fd, rtol=1e-4, atol=1e-7)
    # d / d the initial velocity of the cart's first DOF
    x0, v0 = cartpole.batch(batch).state()
    h = 1e-4
    vp, vm = v0.copy(), v0.copy()
    vp[:, 0] += h
    vm[:, 0] -= h
    fd = (total(x=x0, v=vp) - total(x=x0, v=vm)) / (2 * h)
    np.testing.assert_allclose(g.v0[:, 0], fd, rtol=1e-4, atol=1e-6)


LAUNCH = """
scene "launch"
settings { dt = 1e-3, integrator = symplectic_euler }
param vx = 2
param m = 0.5
particle anchor { x = vec3(0, 0, 2), mass = 1 }
particle ball { x = vec3(0, 0, 1), v = vec3(vx, 0, 3), mass = m }
fix anchor
energy spring(a: particle, b: particle, k: scalar) = 0.5 * k * (norm(a.x - b.x) - rest(norm(a.x - b.x)))^2
spring(anchor, ball, 20)
loss miss = (ball.x.x - 0.3)^2 + ball.x.z
"""


def test_params_in_the_start_and_the_mass_are_differentiated():
    # A launch velocity and a mass as params (identification): set from
    # Python at the start, they move the initial state and the dynamics, and
    # the gradient carries both, against central differences per environment.
    scene = joule.Scene.compile(LAUNCH)
    steps, batch = 300, 2
    params = np.array([[2.0, 0.5], [-1.0, 0.8]])

    def loss(p):
        sim = scene.batch(batch)
        sim.params = p
        return sim.gradient(loss="miss", steps=steps).value

    sim = scene.batch(batch)
    sim.params = params
    x, v = sim.state()
    np.testing.assert_allclose(v[:, 0], params[:, 0])
    g = sim.gradient(loss="miss", steps=steps)
    for i in range(2):
        h = 1e-6
        up, down = params.copy(), params.copy()
        up[:, i] += h
        down[:, i] -= h
        fd = (loss(up) - loss(down)) / (2 * h)
        np.testing.assert_allclose(g.params[:, i], fd, rtol=1e-5, atol=1e-8)
        assert np.all(g.params[:, i] != 0)


def test_params_that_would_break_the_start_are_a_value_error():
    scene = joule.Scene.compile(
        "param p = 1\nparticle ball { x = vec3(0, 0, 1), v = vec3(1 / p, 0, 0), mass = 1 }"
    )
    sim = scene.batch(1)
    with pytest.raises(ValueError, match="non-finite"):
        sim.params = np.zeros((1, 1))
    with pytest.raises(ValueError, match="ball.x.x"):
        sim.set_param("p", 0.0)
    assert sim.params[0, 0] == 1.0


def test_gradient_matches_the_cli(pendulum, joule_cli):
    steps = 300
    out = subprocess.run(
        [str(joule_cli), "grad", str(SCENES / "pendulum.joule"), "--loss", "miss",
         "--steps", str(steps), "--json"],
        capture_output=True, text=True, check=True,
    )
    cli = json.loads(out.stdout)
    sim = pendulum.batch(3)
    g = sim.gradient(loss="miss", steps=steps)
    for env in range(3):
        assert math.isclose(g.value[env], cli["loss"], rel_tol=1e-12)
        for i, name in enumerate(pendulum.params):
            assert math.isclose(g.params[env, i], cli["gradients"][name], rel_tol=1e-10, abs_tol=1e-18)


def test_gradient_needs_an_objective_and_steps(pendulum):
    sim = pendulum.batch(1)
    with pytest.raises(ValueError, match="objective"):
        sim.gradient(steps=3)
    with pytest.raises(ValueError, match="steps"):
        sim.gradient(loss="miss")


def test_track_objective_fits_gravity(pendulum):
    # Record a swing at g = 3.71, then the tracking gradient points toward it.
    rec = pendulum.batch(1)
    rec.set_param("g", 3.71)
    pos = next(o for o in pendulum.outputs if o.name == "position")
    traj = rec.rollout(300)[:, :, pos.offset:pos.offset + pos.size]
    for g0, sign in ((9.81, 1), (1.62, -1)):
        sim = pendulum.batch(1)
        sim.set_param("g", g0)
        grad = sim.gradient(track=("position", traj), steps=300)
        assert grad.value[0] > 0 and sign * grad.params[0, 0] > 0


def test_a_tape_gives_the_open_loop_gradient(cartpole):
    # The reward summed over a fixed plan, differentiated one step at a time
    # on a tape, equals the one-call adjoint.
    steps, batch = 15, 3
    plan = np.random.default_rng(2).uniform(-1, 1, (steps, batch, 1))
    want = cartpole.batch(batch).gradient(reward="height", controls=plan)
    sim = cartpole.batch(batch)
    tape = sim.tape()
    for t in range(steps):
        sim.controls[:] = plan[t]
        sim.step_taped(tape)
    assert len(tape) == steps
    height = next(o for o in cartpole.outputs if o.name == "height")
    seed = np.zeros((batch, cartpole.output_size))
    seed[:, height.offset] = 1.0
    du = np.zeros_like(plan)
    for t in reversed(range(steps)):
        sim.seed_outputs(tape, seed)
        du[t] = sim.reverse_step(tape)
    g = sim.tape_gradient(tape)
    np.testing.assert_allclose(du, want.controls, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.params, want.params, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.v0, want.v0, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="nothing left to reverse"):
        sim.reverse_step(tape)
    with pytest.raises(ValueError, match="records only before"):
        sim.step_taped(tape)
    with pytest.raises(ValueError, match="another batch"):
        cartpole.batch(batch).step_taped(tape)
    with pytest.raises(ValueError, match=r"\(batch=3, outputs="):
        sim.seed_outputs(sim.tape(), np.zeros((3, 1)))
