"""A CleanRL-style PPO (python/examples/ppo_cartpole.py) trains the cart-pole
swing-up through the Gymnasium vector env: on a tiny budget, the trained
deterministic policy earns clearly more than the untrained one."""

import importlib.util
import sys

from conftest import REPO


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "python" / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_ppo_improves_on_the_untrained_policy():
    ppo = load_example("ppo_cartpole")
    args = ppo.Args(iterations=20, num_envs=32, num_steps=64, seed=1)
    before, after, steps, _ = ppo.train(args, log=lambda _: None)
    assert steps == 20 * 32 * 64
    # The untrained policy (mean action ~0) leaves the pole hanging: -1 per step.
    assert before < -0.9 * args.eval_steps, before
    # Trained, the cart pumps the pole up: at least 20 more reward per episode.
    assert after > before + 20, (before, after)
