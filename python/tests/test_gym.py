"""The Gymnasium environments: Gymnasium's own checker, spaces from the
scene's declarations, seeding, and both autoreset modes."""

import numpy as np
import pytest
from gymnasium.utils import env_checker
from gymnasium.vector import AutoresetMode

import joule
from joule.gym import Env, VectorEnv
from conftest import SCENES

# A ball that falls unless its thrust holds it up; the episode ends when it
# touches the ground.
FALL = """
scene "fall"
settings { dt = 0.01, gravity = vec3(0, 0, -9.81), integrator = symplectic_euler }
control thrust in -1..1
particle ball { x = vec3(0, 0, 1), mass = 1 }
energy lift(p: particle, u: scalar) = -20 * u * p.x.z
lift(ball, thrust)
observe height = ball.x.z
observe speed = ball.v.z
reward up = ball.x.z
done landed = ball.x.z < 0
"""


@pytest.fixture(scope="module")
def fall():
    return joule.Scene.compile(FALL)


def test_the_single_env_passes_gymnasiums_checker(cartpole):
    env_checker.check_env(Env(cartpole, max_episode_steps=50))


def test_the_vector_env_passes_the_checks_that_apply(cartpole):
    env = VectorEnv(cartpole, 4, max_episode_steps=50)
    env_checker.check_space_limit(env.single_observation_space, "observation")
    env_checker.check_space_limit(env.single_action_space, "action")
    env_checker.check_reset_seed_determinism(env)
    env_checker.check_reset_options(env)
    # check_returned_data_not_reused's vector form (the checker's own
    # tests `if terminated`, a single env's bool): no two calls share arrays.
    env.action_space.seed(0)
    returned = [env.reset(seed=0)[0]]
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        returned += [obs, reward, terminated, truncated]
    for i, a in enumerate(returned):
        for b in returned[i + 1:]:
            assert not np.shares_memory(a, b)
    assert obs in env.observation_space
    env.close()


def test_spaces_come_from_the_declarations(cartpole):
    env = VectorEnv(cartpole, 3)
    # cart_x, cart_v, pole_tip (3 components), pole_spin: the policy's inputs
    assert env.single_observation_space.shape == (6,)
    assert env.observation_space.shape == (3, 6)
    assert env.single_action_space.low.tolist() == [-1.0] and env.single_action_space.high.tolist() == [1.0]
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 6) and obs.dtype == np.float32 and info == {}
    only = VectorEnv(cartpole, 2, observations=["cart_x"], reward="height")
    assert only.single_observation_space.shape == (1,)
    with pytest.raises(ValueError, match="no observe item named `height`"):
        VectorEnv(cartpole, 2, observations=["height"])
    with pytest.raises(ValueError, match=r"actions must have shape \(num_envs=3, actions=1\)"):
        env.step(np.zeros((3, 2)))


def test_observations_and_rewards_are_the_scenes_outputs(cartpole):
    env = VectorEnv(cartpole, 2, reset_noise=0.0, dtype=np.float64)
    env.reset(seed=1)
    sim = cartpole.batch(2)
    u = np.array([[0.7], [-0.3]])
    sim.controls = u
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(u)
        sim.step()
    want = sim.outputs()
    cols = [o for o in cartpole.outputs]
    height = next(o for o in cols if o.name == "height")
    np.testing.assert_array_equal(reward, want[:, height.offset])
    cart_x = next(o for o in cols if o.name == "cart_x")
    np.testing.assert_array_equal(obs[:, 0], want[:, cart_x.offset])
    assert not terminated.any() and not truncated.any()


def test_seeds_give_the_same_episodes(cartpole):
    def run(seed):
        env = VectorEnv(cartpole, 3, max_episode_steps=20)
        env.action_space.seed(seed)
        out = [env.reset(seed=seed)[0]]
        for _ in range(30):
            out.append(env.step(env.action_space.sample())[0])
        return np.array(out)

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_next_step_autoreset(fall):
    env = VectorEnv(fall, 2, reset_noise=0.0, max_episode_steps=None)
    env.reset(seed=0)
    hold = np.array([[0.0], [0.9806]])  # env 1 hovers: 20 * 0.9806 ~ m g... nearly
    ended = None
    for t in range(1, 100):
        obs, reward, terminated, truncated, _ = env.step(hold)
        if terminated[0]:
            ended = t
            assert obs[0, 0] < 0 and not terminated[1]
            break
    # Free fall from 1 m under 9.81 m/s^2 takes sqrt(2 / 9.81) = 0.45 s: 46 steps of 10 ms.
    assert ended is not None and abs(ended - 46) <= 1
    obs, reward, terminated, truncated, _ = env.step(hold)
    assert obs[0, 0] == pytest.approx(1.0) and reward[0] == 0.0 and not terminated[0]
    obs, reward, terminated, truncated, _ = env.step(hold)
    assert reward[0] == pytest.approx(obs[0, 0]) and obs[0, 0] < 1.0


def test_same_step_autoreset_and_truncation(fall):
    env = VectorEnv(fall, 2, reset_noise=0.0, max_episode_steps=30, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    for t in range(1, 31):
        obs, reward, terminated, truncated, info = env.step(np.zeros((2, 1)))
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and info["final_obs"][0][0] < 1.0
    assert obs[:, 0] == pytest.approx([1.0, 1.0])  # already restarted
    obs, reward, terminated, truncated, info = env.step(np.zeros((2, 1)))
    assert not truncated.any() and reward[0] == pytest.approx(obs[0, 0])


def test_resets_draw_the_scenes_reset_items():
    """A scene's `reset` item (here the reacher's target, drawn every
    episode) makes each environment's episode start its own, the same for
    the same seed, and the params follow the draw."""
    scene = joule.Scene.from_path(SCENES / "reacher_targets.joule")
    env = VectorEnv(scene, 8, max_episode_steps=20, reset_noise=0.0)
    obs, _ = env.reset(seed=4)
    targets = env.sim.params[:, :2]
    distance = np.hypot(targets[:, 0], targets[:, 1])
    assert np.all((distance >= 0.05 - 1e-12) & (distance <= 0.2 + 1e-12))
    assert len(np.unique(targets[:, 0])) == 8
    again, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs, again)
    np.testing.assert_array_equal(env.sim.params[:, :2], targets)
    other, _ = env.reset(seed=5)
    assert not np.allclose(obs, other)


def test_rgb_array_render_draws_each_environment(cartpole):
    env = VectorEnv(cartpole, 2, render_mode="rgb_array", max_episode_steps=50)
    assert "rgb_array" in env.metadata["render_modes"]
    assert env.metadata["render_fps"] == round(1 / cartpole.dt)
    env.reset(seed=0)
    first = env.render()
    assert len(first) == 2
    for picture in first:
        assert picture.shape == (400, 640, 3) and picture.dtype == np.uint8
        # The background's colour, and something drawn over it.
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 3
    for _ in range(30):
        env.step(np.ones(env.action_space.shape, dtype=np.float32))
    later = env.render()
    assert not np.array_equal(first[0], later[0]), "the picture follows the state"
    assert VectorEnv(cartpole, 2).render() is None
    with pytest.raises(ValueError, match="rgb_array"):
        VectorEnv(cartpole, 2, render_mode="human")


def test_the_single_env_renders_as_the_checker_expects(cartpole):
    env = Env(cartpole, max_episode_steps=50, render_mode="rgb_array")
    env_checker.check_env(env)
    env.reset(seed=0)
    picture = env.render()
    assert picture.shape == (400, 640, 3)
    np.testing.assert_array_equal(picture, env.sim.render([0]))
    with pytest.raises(ValueError, match="give indices"):
        env.sim.render([1])
