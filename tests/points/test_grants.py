from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.runtime.resources import Resources
from tests.e2e.process import REPO
from tests.support.api import Points, error_code, uid


async def test_a_grant_of_10000_items_is_all_or_nothing_and_audited(
        points: Points, resources: Resources) -> None:
    prefix = uid("g")
    items = [{"member_id": f"{prefix}-{i % 2500}", "points": 1 + i % 7} for i in range(10_000)]
    broken = [*items[:9_999], {"member_id": "bad id", "points": 5}]
    refused = await points.grant(broken)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "items[9999].member_id"
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM points.members WHERE tenant_id = $1", points.tenant.name) == 0

    grant_id = uid("grant")
    response = await points.grant(items, grant_id=grant_id, reason="double eleven")
    assert response.status_code == 201, response.text
    total = sum(i["points"] for i in items)
    assert response.json() == {"grant_id": grant_id, "item_count": 10_000, "total_points": total}
    audit = await resources.pool.fetchrow(
        "SELECT key_id, reason, item_count, total_points FROM points.grant_audit"
        " WHERE tenant_id = $1 AND grant_id = $2", points.tenant.name, grant_id)
    assert dict(audit) == {"key_id": points.tenant.operator.split("_")[1],
                           "reason": "double eleven", "item_count": 10_000,
                           "total_points": total}
    member = await points.member(f"{prefix}-7")
    assert member["available"] == sum(i["points"] for i in items if i["member_id"] == f"{prefix}-7")
    await points.assert_ledger_ok()


async def test_grants_need_an_operator(points: Points) -> None:
    response = await points.client.post("/points/v1/grants", headers=points.ingest, json={
        "grant_id": uid("g"), "reason": "x", "items": [{"member_id": "m", "points": 1}]})
    assert response.status_code == 403 and error_code(response) == "forbidden"


def fuli_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.composition.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


async def test_csv_import_is_chunked_and_grants_nothing_twice(
        points: Points, configured_env: dict[str, str], tmp_path: Path) -> None:
    prefix = uid("csv")
    rows = ["member_id,points,expires_at"]
    rows += [f"{prefix}-{i},{10 + i % 3}," for i in range(2_500)]
    rows += [f"{prefix}-x,5,2099-01-01T00:00:00+08:00"]
    csv_file = tmp_path / "grants.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    tenant = points.tenant.name
    first = fuli_cli(env, "grants", "import", str(csv_file), "--tenant", tenant,
                     "--reason", "launch", "--chunk-size", "1000", "--quiet")
    assert first.returncode == 0, first.stderr
    assert "2501 items" in first.stdout and "2501 granted now" in first.stdout
    # Interrupted imports are re-run whole: chunks already granted are replayed, not granted.
    again = fuli_cli(env, "grants", "import", str(csv_file), "--tenant", tenant,
                     "--reason", "launch", "--chunk-size", "1000", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "0 granted now, 2501 already granted before" in again.stdout
    assert (await points.member(f"{prefix}-1"))["available"] == 11
    x = await points.member(f"{prefix}-x")
    assert x["expiring"][0]["expires_at"].startswith("2098-12-31T16:00:00")
    check = fuli_cli(env, "ledger", "check", "--tenant", tenant)
    assert check.returncode == 0 and "ok" in check.stdout, check.stdout + check.stderr


async def test_csv_import_with_a_bad_row_grants_nothing(
        points: Points, configured_env: dict[str, str], tmp_path: Path) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("m1,10\nm2,ten\nm3,5,not-a-date\n")
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    result = fuli_cli(env, "grants", "import", str(csv_file), "--tenant", points.tenant.name,
                      "--reason", "r", "--quiet")
    assert result.returncode == 1
    assert "line 2" in result.stderr and "line 3" in result.stderr
    assert (await points.member("m1"))["available"] == 0
