#!/usr/bin/env bash
# Brax's PPO beside `joule train` on Brax's envs, on this machine (train.py).
# Makes benches/peers/.train-venv (gitignored) with the Brax release and the
# JAX it was written for (brax 0.14.2 calls jax.device_put_replicated, which
# JAX 0.10 removed), builds joule in release mode, and passes its arguments
# to train.py:
#   benches/peers/train.sh --env ant --steps 1310720 --num-envs 256 --seeds 0,1,2
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.train-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "error: cannot create a venv with python3 -m venv" >&2; exit 1; }
    "$venv/bin/pip" install -q --upgrade pip
fi
if ! "$venv/bin/python" -c "import brax.training.agents.ppo.train" >/dev/null 2>&1; then
    echo "installing brax 0.14.2 and jax[cpu] 0.7.2 ..."
    "$venv/bin/pip" install -q "jax[cpu]==0.7.2" "brax==0.14.2"
fi
(cd "$root" && cargo build --release --quiet)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$venv/bin/python" "$here/train.py" "$@"
