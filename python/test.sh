#!/usr/bin/env bash
# The Python package's tests: builds and installs `joule` with pip into a
# virtual environment under target/ (with the test-time dependencies:
# pytest, Gymnasium, JAX, optax), then runs pytest on python/tests.
#
#   python/test.sh            # a debug build of the extension (shares cargo's dev artifacts)
#   JOULE_PROFILE=release python/test.sh
#
# Extra arguments go to pytest (`python/test.sh -k gym`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
python=${PYTHON:-python3}
if ! "$python" -c "import venv, ensurepip" 2>/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev >/dev/null
    fi
    "$python" -c "import venv, ensurepip" || {
        echo "error: $python has no venv module (install python3-venv)" >&2
        exit 1
    }
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r python/requirements-test.txt
# pip builds the extension with maturin (pyproject.toml); cargo's dev profile
# reuses what `cargo test` and the examples already compiled.
MATURIN_PEP517_ARGS="--profile ${JOULE_PROFILE:-dev}" \
    "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps ./python
# From the repository root, so that `import joule` is the installed package.
exec "$venv/bin/python" -m pytest -q python/tests "$@"
