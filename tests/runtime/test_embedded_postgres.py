"""The embedded PostgreSQL as `make run` and the tests start it."""

from __future__ import annotations

from pathlib import Path

from services.runtime.embedded import EmbeddedPostgres


def test_stops_after_its_parent_directory_was_made_private_meanwhile(tmp_path: Path) -> None:
    # As a new pytest session does to its temporary root, while another session's servers
    # run under it: run as root, the server's own user then cannot reach its directory.
    parent = tmp_path / "private"
    server = EmbeddedPostgres(parent / "data", durable=False)
    server.start()
    try:
        assert server.running_pid() is not None
        parent.chmod(0o700)
        server.stop()
        assert server.running_pid() is None
    finally:
        parent.chmod(0o755)
        server.stop()
