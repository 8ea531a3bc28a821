"""The examples that are not trainers (those are test_apg.py and
test_ppo.py) do what their docstrings say, on small budgets."""

import pytest
import ray

from test_ppo import load_example


def test_fit_jax_recovers_the_pendulums_length():
    fit = load_example("fit_jax")
    length, error = fit.fit()
    assert abs(length - 1.3) < 1e-3, length
    assert error < 1e-8, error


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_shooting_gathers_the_single_process_outputs(local_ray):
    shooting = load_example("ray_shooting")
    best, height, same = shooting.shoot(num_envs=12, steps=30, shards=2)
    assert same
    assert 0 <= best < 12 and height == height
