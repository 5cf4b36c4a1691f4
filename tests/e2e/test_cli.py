"""The `fuli` command line as a person meets it: help, refusals, stopping and restarting."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.composition.cli import build_parser
from tests.e2e.process import REPO, FuliServer, free_port

KEY = re.compile(r"^\s*(fuli_\S+)$", re.MULTILINE)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.composition.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _commands(parser: argparse.ArgumentParser, path: str = "fuli"
              ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, f"{path} {name}")
    return found


def test_every_command_and_option_says_what_it_is_for() -> None:
    undocumented = []
    for path, parser in _commands(build_parser()):
        if path != "fuli" and not parser.description:
            undocumented.append(path)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                undocumented.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not undocumented


def test_help_shows_defaults() -> None:
    parser = build_parser()
    grants = dict(_commands(parser))["fuli grants import"].format_help()
    assert "(default: 1000)" in grants
    assert "(default: None)" not in grants and "(default: False)" not in grants
    tenant = dict(_commands(parser))["fuli tenant create"].format_help()
    assert "(default: Asia/Shanghai)" in tenant


def test_commands_naming_an_unknown_tenant_fail(configured_env: dict[str, str],
                                                tmp_path: Path) -> None:
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    csv_file = tmp_path / "grants.csv"
    csv_file.write_text("member_id,points\nalice,10\n")
    for args in (("ledger", "check", "--tenant", "nosuch"),
                 ("draws", "verify", "--tenant", "nosuch", "--box", "b"),
                 ("grants", "import", str(csv_file), "--tenant", "nosuch", "--reason", "r"),
                 ("key", "create", "--tenant", "nosuch", "--role", "admin")):
        done = run_cli(env, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "no tenant 'nosuch'" in done.stderr, (args, done.stderr)
        assert "ok" not in done.stdout
    assert run_cli(env, "ledger", "check").returncode == 0


def _without_fuli_settings(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(data_dir), FULI_LOG_LEVEL="WARNING")
    return env


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory for `fuli up`'s embedded servers. Not pytest's tmp_path: a pytest
    session starting meanwhile makes its root unreachable for PostgreSQL's own user."""
    with tempfile.TemporaryDirectory(prefix="fuli-cli-") as path:
        yield Path(path)


def test_up_stopped_while_starting_exits_0_and_leaves_no_server(data_dir: Path) -> None:
    """What `make run` reports: SIGTERM while the embedded servers start is a clean stop."""
    env = {**_without_fuli_settings(data_dir), "FULI_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "services.composition.cli", "up"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (data_dir / "postgres").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)  # the embedded PostgreSQL's data directory is being made
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    leftovers = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout


def test_a_restart_says_how_to_get_a_new_admin_key(data_dir: Path) -> None:
    env = _without_fuli_settings(data_dir)
    first = FuliServer(env)
    printed = first.start()
    assert KEY.search(printed), printed
    assert first.stop() == 0, first.log.read_text()[-4000:]

    again = FuliServer(env)
    printed = again.start()
    try:
        assert not KEY.search(printed), printed
        hint = re.search(r"^\s+(\S*fuli) key create --tenant default --role admin$", printed,
                         re.MULTILINE)
        assert hint, printed
        # The hinted command, run beside the server, gives a working admin key.
        created = run_cli(env, "key", "create", "--tenant", "default", "--role", "admin")
        assert created.returncode == 0, created.stderr
        admin = KEY.search(created.stdout)
        assert admin, created.stdout
        answer = httpx.get(f"{again.base_url}/points/v1/rules",
                           headers={"Authorization": f"Bearer {admin.group(1)}"})
        assert answer.status_code == 200, answer.text
    finally:
        assert again.stop() == 0, again.log.read_text()[-4000:]
