"""Schemathesis against `fuli up` over real HTTP, for each service's served OpenAPI document:
never a server error, every status and body as documented, bad input refused, good input taken.
The run is bounded (examples per operation) to stay within a few minutes on two cores; any
finding fails the test with Schemathesis' report and a curl command to reproduce it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.composition.registry import SERVICE_NAMES
from tests.conftest import TEST_RATE_LIMITS
from tests.e2e.process import REPO, FuliServer, fuli

HERE = Path(__file__).parent
KEY = re.compile(r"(fuli_([0-9a-f]{16})_[A-Za-z0-9_-]{20,})")
# Examples per operation in the fuzzing phase (the coverage phase adds its own): about 90 s
# for all three documents on two cores.
MAX_EXAMPLES = int(os.environ.get("FULI_FUZZ_EXAMPLES", "50"))


class Live:
    def __init__(self, server: FuliServer, admin_key: str, admin_key_id: str) -> None:
        self.server = server
        self.admin_key = admin_key
        self.admin_key_id = admin_key_id


@pytest.fixture(scope="module")
def live(configured_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("contract")
    env = {**configured_env, "FULI_DATA_DIR": str(data_dir),
           "FULI_RATE_LIMITS": TEST_RATE_LIMITS + ",key.write=10000000/60"}
    created = fuli("tenant", "create", "contract-" + os.urandom(4).hex(), env=env)
    admin = KEY.search(created.stdout)
    assert admin, created.stdout
    server = FuliServer(env)
    server.start()
    try:
        yield Live(server, admin.group(1), admin.group(2))
    finally:
        server.stop()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_served_contract_holds_under_schemathesis(live: Live, service: str,
                                                     tmp_path: Path) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.hooks", "PYTHONPATH": str(REPO),
           "FULI_CONTRACT_KEY_ID": live.admin_key_id}
    command = [
        str(Path(sys.executable).with_name("st")), "--no-color",
        "--config-file", str(HERE / "schemathesis.toml"), "run",
        f"{live.server.base_url}/{service}/docs/openapi.json",
        "--header", f"Authorization: Bearer {live.admin_key}",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        # One worker: Python 3.11's ast.parse, which Hypothesis calls to describe filters, can
        # fail with "AST constructor recursion depth mismatch" when two threads parse at once
        # (CPython gh-106905).
        "--workers", "1",
        "--request-timeout", "30",
    ]
    # Run from a scratch directory: Schemathesis keeps a cache in its working directory.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=540)
    report = run.stdout + run.stderr
    print(report)
    assert run.returncode == 0, f"Schemathesis found problems in {service}:\n{report}"
    assert re.search(r"\d+ passed", report), report
