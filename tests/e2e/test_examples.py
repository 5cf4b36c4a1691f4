"""The README's walkthrough (examples/walkthrough.sh) and the TypeScript client's tests
(clients/typescript, `npm test`) against a stack started the way `make run` starts it: `fuli up`
on the embedded servers in a fresh data directory, with the admin key it prints."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import process
from tests.e2e.process import BIN, REPO, WALKTHROUGH, walkthrough_env

CLIENT = REPO / "clients" / "typescript"
SECTION = re.compile(
    r"^# --8<-- \[start:(?P<name>[\w-]+)\]\n(?P<body>.*?)^# --8<-- \[end:(?P=name)\]\n",
    re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def make_run_stack() -> Iterator[tuple[str, str]]:
    """(URL, admin key) of `fuli up` as `make run` starts it."""
    with process.make_run_stack("fuli-make-run-") as (server, admin_key):
        yield server.base_url, admin_key


def _run(command: list[str], *, cwd: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_walkthrough_runs_twice_against_make_run(make_run_stack: tuple[str, str]) -> None:
    url, key = make_run_stack
    for _ in range(2):  # fresh ids every run: the second run meets the first one's data
        done = _run(["bash", str(WALKTHROUGH)], cwd=REPO, env=walkthrough_env(url, key))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "walkthrough: every step answered as expected" in done.stdout


def test_walkthrough_stops_at_an_unexpected_answer(make_run_stack: tuple[str, str]) -> None:
    url, _ = make_run_stack
    done = _run(["bash", str(WALKTHROUGH)], cwd=REPO, env=walkthrough_env(url, "fuli_not_a_key"))
    assert done.returncode != 0
    assert "FAILED: POST /points/v1/keys answered 401, expected 201" in done.stderr


def test_readme_quotes_the_walkthrough() -> None:
    readme = (REPO / "README.md").read_text()
    sections = {m["name"]: m["body"] for m in SECTION.finditer(WALKTHROUGH.read_text())}
    assert len(sections) >= 10
    missing = [name for name, body in sections.items() if body not in readme]
    assert not missing, f"README.md does not quote these sections of {WALKTHROUGH.name}: {missing}"


def _npm_ci(env: dict[str, str]) -> None:
    """`npm ci`, skipped while node_modules was installed from the same package-lock.json."""
    lock = hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()
    stamp = CLIENT / "node_modules" / ".installed-from-lock"
    if stamp.exists() and stamp.read_text() == lock:
        return
    done = _run([str(BIN / "npm"), "ci", "--no-audit", "--no-fund"], cwd=CLIENT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    stamp.write_text(lock)


def test_typescript_client(make_run_stack: tuple[str, str]) -> None:
    assert (BIN / "npm").exists(), "no npm in the virtual environment: pip install -e '.[dev]'"
    env = walkthrough_env(*make_run_stack)
    _npm_ci(env)
    done = _run([str(BIN / "npm"), "test"], cwd=CLIENT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
