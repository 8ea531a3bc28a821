#!/usr/bin/env bash
# Joule against MuJoCo, Brax (CPU JAX) and Warp (CPU) on this machine, in one run.
# Makes benches/peers/.venv (gitignored) and pip-installs the peers into it; a
# package that fails to install is reported and its lines read "n/a". Builds
# joule in release mode. Arguments go to peers.py (--quick, --skip brax, ...).
#   benches/peers/run.sh            # everything; prints one table of ratios
#   benches/peers/run.sh --quick    # the ant rows only (B=1 and 64), at rest and in motion
#   benches/peers/run.sh --quick --skip brax,warp --rounds 2   # engines in turn, medians of 2 rounds
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "error: cannot create a venv with python3 -m venv" >&2; exit 1; }
    "$venv/bin/pip" install -q --upgrade pip
fi
for pkg in mujoco "jax[cpu] brax" warp-lang; do
    name="${pkg##* }"
    if "$venv/bin/pip" show -q "$name" >/dev/null 2>&1; then
        continue
    fi
    echo "installing $pkg ..."
    # shellcheck disable=SC2086 # "jax[cpu] brax" is two packages
    if ! "$venv/bin/pip" install -q $pkg; then
        echo "warning: could not install $pkg; its lines will read n/a" >&2
    fi
done
(cd "$root" && cargo build --release --quiet) || { echo "error: cargo build --release failed" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# peers.py runs the peers in a temporary working directory (MuJoCo writes
# MUJOCO_LOG.TXT into the current one); start it outside the tree as well.
cd "${TMPDIR:-/tmp}"
exec "$venv/bin/python" "$here/peers.py" "$@"
