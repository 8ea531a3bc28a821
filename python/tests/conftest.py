"""Shared fixtures: the repository's scenes and the `joule` CLI built by cargo."""

import os
import pathlib
import subprocess

import pytest

import joule

REPO = pathlib.Path(__file__).resolve().parents[2]
SCENES = REPO / "scenes"


@pytest.fixture(scope="session")
def pendulum():
    return joule.Scene.from_path(SCENES / "pendulum.joule")


@pytest.fixture(scope="session")
def cartpole():
    return joule.Scene.from_path(SCENES / "cartpole.joule")


@pytest.fixture(scope="session")
def joule_cli():
    """The `joule` binary: $JOULE_BIN, else the one `cargo test` built in target/debug."""
    path = pathlib.Path(os.environ.get("JOULE_BIN", REPO / "target" / "debug" / "joule"))
    if not path.exists():
        subprocess.run(["cargo", "build", "--quiet", "--bin", "joule"], cwd=REPO, check=True)
    assert path.exists(), f"no joule binary at {path}"
    return path
