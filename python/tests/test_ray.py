"""Rollouts sharded over Ray actors on a local Ray instance equal the
single-process rollout bitwise, for the same seeds."""

import numpy as np
import pytest
import ray

import joule
import joule.ray as jr
from conftest import SCENES


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_sharded_rollouts_equal_the_single_process_ones(local_ray, cartpole):
    n, steps = 11, 40
    rng = np.random.default_rng(3)
    plan = rng.uniform(-1, 1, (steps, n, 1))
    params = rng.uniform(5, 20, (n, 1))
    # 11 environments over 2 actors of 1 CPU each: 6 and 5.
    sharded = jr.ShardedRollouts(SCENES / "cartpole.joule", n, shards=2)
    assert [s.stop - s.start for s in sharded.slices] == [6, 5]
    got = sharded.rollout(controls=plan, params=params, reset_noise=0.1, seed=5, timeout=300)
    sharded.close()
    want = jr.rollout(cartpole, n, controls=plan, params=params, reset_noise=0.1, seed=5)
    assert got.shape == (steps, n, cartpole.output_size)
    assert got.tobytes() == want.tobytes()
    other = jr.rollout(cartpole, n, controls=plan, params=params, reset_noise=0.1, seed=6)
    assert not np.array_equal(other, want)


def test_bad_plans_are_value_errors(local_ray):
    sharded = jr.ShardedRollouts(SCENES / "pendulum.joule", 4, shards=2)
    n = len(joule.Scene.from_path(SCENES / "pendulum.joule").params)
    with pytest.raises(ValueError, match=rf"\(num_envs=4, params={n}\)"):
        sharded.rollout(steps=3, params=np.zeros((3, n)))
    with pytest.raises(ValueError, match="shards must be between"):
        jr.ShardedRollouts(SCENES / "pendulum.joule", 4, shards=5)
    sharded.close()
    with pytest.raises(joule.CompileError):
        jr.ShardedRollouts("particle p { x = vec3(0, 0, 1) }\nobserve z = q\n", 2, shards=1)
