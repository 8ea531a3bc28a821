"""An MLP policy in JAX trained through Joule's step adjoints
(python/examples/apg_cartpole.py) beats the untrained policy on a tiny budget."""

from test_ppo import load_example


def test_apg_improves_on_the_untrained_policy():
    apg = load_example("apg_cartpole")
    args = apg.Args(iterations=20, batch=32, horizon=32, seed=0)
    before, after, steps, _ = apg.train(args, log=lambda _: None)
    assert steps == 20 * 32 * 32
    # -200 is the pole hanging for the whole evaluation episode, +200 upright.
    assert after > before + 20, (before, after)
