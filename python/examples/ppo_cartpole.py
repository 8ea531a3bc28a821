"""PPO on Joule's cart-pole swing-up through the Gymnasium vector env, in the
style of CleanRL's ``ppo_continuous_action.py`` (one file, the same
hyperparameter names and update), written in JAX and optax.

Model-free: the simulator is a black box here (see ``apg_cartpole.py`` for
training through its gradients). Run from the repository root:

    python python/examples/ppo_cartpole.py --iterations 200

It prints the mean evaluation return of the deterministic policy before and
after training (an episode of ``--eval-steps`` steps; -1 per step is the
pole hanging, +1 upright).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import joule
from joule.gym import VectorEnv

# Joule computes in float64; so does the policy (and the results do not
# depend on whether another module enabled it first).
jax.config.update("jax_enable_x64", True)

SCENE = pathlib.Path(__file__).resolve().parents[2] / "scenes" / "cartpole.joule"


@dataclasses.dataclass
class Args:
    seed: int = 1
    num_envs: int = 32
    num_steps: int = 64
    iterations: int = 20
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 8
    update_epochs: int = 10
    norm_adv: bool = True
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    episode_steps: int = 200
    eval_steps: int = 200
    eval_envs: int = 16


def layer(key, n_in, n_out, std):
    w = jax.nn.initializers.orthogonal(std)(key, (n_in, n_out))
    return {"w": w, "b": jnp.zeros(n_out)}


def init_agent(key, n_obs, n_act):
    """CleanRL's Agent: two 64-64 tanh MLPs (critic, actor mean) and a state-independent log std."""
    k = jax.random.split(key, 6)
    s2 = np.sqrt(2)
    return {
        "critic": [layer(k[0], n_obs, 64, s2), layer(k[1], 64, 64, s2), layer(k[2], 64, 1, 1.0)],
        "actor": [layer(k[3], n_obs, 64, s2), layer(k[4], 64, 64, s2), layer(k[5], 64, n_act, 0.01)],
        "logstd": jnp.zeros(n_act),
    }


def mlp(layers, x):
    for i, l in enumerate(layers):
        x = x @ l["w"] + l["b"]
        if i < len(layers) - 1:
            x = jnp.tanh(x)
    return x


def value(agent, obs):
    return mlp(agent["critic"], obs)[..., 0]


def log_prob(mean, logstd, action):
    return (-0.5 * ((action - mean) / jnp.exp(logstd)) ** 2 - logstd - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)


@jax.jit
def act(agent, obs, key):
    mean = mlp(agent["actor"], obs)
    action = mean + jnp.exp(agent["logstd"]) * jax.random.normal(key, mean.shape)
    return action, log_prob(mean, agent["logstd"], action), value(agent, obs)


@jax.jit
def mean_action(agent, obs):
    return mlp(agent["actor"], obs)


def gae(rewards, values, dones, next_value, next_done, gamma, lam):
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = 0.0
    for t in reversed(range(steps)):
        if t == steps - 1:
            nonterminal, next_v = 1.0 - next_done, next_value
        else:
            nonterminal, next_v = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_v * nonterminal - values[t]
        adv[t] = last = delta + gamma * lam * nonterminal * last
    return adv, adv + values


def make_update(args: Args, optimizer):
    def loss_fn(agent, obs, actions, old_logp, adv, returns):
        mean = mlp(agent["actor"], obs)
        logp = log_prob(mean, agent["logstd"], actions)
        ratio = jnp.exp(logp - old_logp)
        if args.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1 - args.clip_coef, 1 + args.clip_coef)).mean()
        v = 0.5 * ((value(agent, obs) - returns) ** 2).mean()
        entropy = (agent["logstd"] + 0.5 * jnp.log(2 * jnp.pi * jnp.e)).sum()
        return pg - args.ent_coef * entropy + args.vf_coef * v

    @jax.jit
    def update(agent, opt_state, batch):
        grads = jax.grad(loss_fn)(agent, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, agent)
        return optax.apply_updates(agent, updates), opt_state

    return update


def evaluate(agent, scene, args: Args, seed: int = 1234) -> float:
    """Mean return of the deterministic policy over one episode per environment."""
    env = VectorEnv(scene, args.eval_envs, max_episode_steps=None)
    obs, _ = env.reset(seed=seed)
    total = np.zeros(args.eval_envs)
    alive = np.ones(args.eval_envs, dtype=bool)
    for _ in range(args.eval_steps):
        action = np.asarray(mean_action(agent, jnp.asarray(obs)))
        obs, reward, terminated, truncated, _ = env.step(np.clip(action, -1, 1))
        total += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
    return float(total.mean())


def train(args: Args, scene=None, log=print):
    """Returns (untrained return, trained return, env steps, seconds)."""
    scene = scene or joule.Scene.from_path(SCENE)
    env = VectorEnv(scene, args.num_envs, max_episode_steps=args.episode_steps)
    n_obs = env.single_observation_space.shape[0]
    n_act = env.single_action_space.shape[0]
    key = jax.random.PRNGKey(args.seed)
    key, init_key = jax.random.split(key)
    agent = init_agent(init_key, n_obs, n_act)
    before = evaluate(agent, scene, args)
    batch_size = args.num_envs * args.num_steps
    minibatch = batch_size // args.num_minibatches
    schedule = (
        (lambda count: args.learning_rate * (1 - count // (args.num_minibatches * args.update_epochs) / args.iterations))
        if args.anneal_lr
        else args.learning_rate
    )
    optimizer = optax.chain(optax.clip_by_global_norm(args.max_grad_norm), optax.adam(schedule, eps=1e-5))
    opt_state = optimizer.init(agent)
    update = make_update(args, optimizer)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    obs, _ = env.reset(seed=args.seed)
    done = np.zeros(args.num_envs)
    shape = (args.num_steps, args.num_envs)
    for it in range(1, args.iterations + 1):
        b_obs = np.zeros(shape + (n_obs,), np.float32)
        b_act = np.zeros(shape + (n_act,), np.float32)
        b_logp, b_rew, b_done, b_val = (np.zeros(shape, np.float32) for _ in range(4))
        for t in range(args.num_steps):
            b_obs[t], b_done[t] = obs, done
            key, k = jax.random.split(key)
            action, logp, v = act(agent, jnp.asarray(obs), k)
            b_act[t], b_logp[t], b_val[t] = action, logp, v
            obs, reward, terminated, truncated, _ = env.step(np.clip(np.asarray(action), -1, 1))
            b_rew[t] = reward
            done = (terminated | truncated).astype(np.float32)
        next_value = np.asarray(value(agent, jnp.asarray(obs)))
        adv, returns = gae(b_rew, b_val, b_done, next_value, done, args.gamma, args.gae_lambda)
        flat = [
            b_obs.reshape(batch_size, n_obs),
            b_act.reshape(batch_size, n_act),
            b_logp.reshape(-1),
            adv.reshape(-1),
            returns.reshape(-1),
        ]
        for _ in range(args.update_epochs):
            order = rng.permutation(batch_size)
            for s in range(0, batch_size, minibatch):
                idx = order[s : s + minibatch]
                agent, opt_state = update(agent, opt_state, [jnp.asarray(a[idx]) for a in flat])
        log(f"iteration {it}: mean reward {b_rew.mean():+.3f}")
    seconds = time.perf_counter() - start
    after = evaluate(agent, scene, args)
    return before, after, args.iterations * batch_size, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(Args):
        kind = type(f.default)
        if kind is bool:
            kind = lambda s: s.lower() in ("1", "true", "yes")  # noqa: E731
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    args = Args(**vars(parser.parse_args()))
    before, after, steps, seconds = train(args)
    print(f"return {before:.1f} untrained -> {after:.1f} after {steps} env steps ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
