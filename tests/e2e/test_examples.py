"""The README's walkthrough (examples/walkthrough.sh) and the TypeScript client's tests
(clients/typescript, `npm test`) against a stack started the way `make run` starts it: `fuli up`
on the embedded servers in a fresh data directory, with the admin key it prints."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.process import REPO, FuliServer

KEY = re.compile(r"^\s+(fuli_\S+)$", re.MULTILINE)
WALKTHROUGH = REPO / "examples" / "walkthrough.sh"
CLIENT = REPO / "clients" / "typescript"
BIN = Path(sys.executable).parent  # the virtual environment's bin: node and npm come with it
SECTION = re.compile(
    r"^# --8<-- \[start:(?P<name>[\w-]+)\]\n(?P<body>.*?)^# --8<-- \[end:(?P=name)\]\n",
    re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def make_run_stack() -> Iterator[tuple[str, str]]:
    """(URL, admin key) of `fuli up` as `make run` starts it: no FULI_* settings but the port
    and a fresh data directory (not under pytest's tmp_path, whose root another pytest session
    starting may make unreachable for the PostgreSQL server's own user)."""
    with tempfile.TemporaryDirectory(prefix="fuli-make-run-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
        env.update(FULI_DATA_DIR=data_dir, FULI_LOG_LEVEL="WARNING")
        server = FuliServer(env)
        printed = server.start()
        try:
            admin = KEY.search(printed)
            assert admin, f"no admin key in what fuli up printed:\n{printed}"
            yield server.base_url, admin.group(1)
        finally:
            code = server.stop()
            assert code == 0, server.log.read_text()[-4000:]


def _run(command: list[str], *, cwd: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _env(url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_URL=url, FULI_ADMIN_KEY=key, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def test_walkthrough_runs_twice_against_make_run(make_run_stack: tuple[str, str]) -> None:
    url, key = make_run_stack
    for _ in range(2):  # fresh ids every run: the second run meets the first one's data
        done = _run(["bash", str(WALKTHROUGH)], cwd=REPO, env=_env(url, key))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "walkthrough: every step answered as expected" in done.stdout


def test_walkthrough_stops_at_an_unexpected_answer(make_run_stack: tuple[str, str]) -> None:
    url, _ = make_run_stack
    done = _run(["bash", str(WALKTHROUGH)], cwd=REPO, env=_env(url, "fuli_not_a_key"))
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
    env = _env(*make_run_stack)
    _npm_ci(env)
    done = _run([str(BIN / "npm"), "test"], cwd=CLIENT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
