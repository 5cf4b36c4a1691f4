"""The console's client-side logic (formatting, odds maths, chart option builders): its Vitest
suite, run with the Node of the virtual environment."""

from __future__ import annotations

import os
import subprocess

from tests.e2e.process import BIN, REPO

CONSOLE = REPO / "console"


def test_the_vitest_suite_passes() -> None:
    assert (CONSOLE / "node_modules").is_dir(), "console/node_modules missing: run `make console`"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(BIN / "npx"), "vitest", "run"], cwd=CONSOLE, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-3000:]
