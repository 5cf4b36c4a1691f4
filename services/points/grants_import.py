"""`fuli grants import`: bulk issuance from a CSV file, chunked and safe to re-run.

Each chunk becomes one grant whose id is derived from the tenant, the reason, the file's content
and the chunk's position, so re-running the same import after an interruption replays the chunks
already granted instead of granting them twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from proto.common import ID_PATTERN
from proto.points import GrantIn, GrantItem
from services.points.ledger import Ledger

MAX_CHUNK = 10_000
_ID = re.compile(ID_PATTERN)


class GrantFileError(Exception):
    """The file is not a valid grant list; nothing was granted."""


@dataclass(frozen=True)
class ImportResult:
    chunks: int
    granted_chunks: int
    replayed_chunks: int
    items: int
    points: int
    granted_items: int  # in chunks granted by this run
    replayed_items: int  # in chunks an earlier run had granted


def parse_rows(text: str, now: datetime) -> list[GrantItem]:
    """Rows ``member_id,points[,expires_at]``; a header row is allowed. All errors at once."""
    items: list[GrantItem] = []
    errors: list[str] = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if line_no == 1 and cells[:2] == ["member_id", "points"]:
            continue
        if len(cells) not in (2, 3):
            errors.append(f"line {line_no}: expected member_id,points[,expires_at]")
            continue
        member_id, points_text = cells[0], cells[1]
        expires_text = cells[2] if len(cells) == 3 and cells[2] else None
        if not _ID.match(member_id) or len(member_id) > 128:
            errors.append(f"line {line_no}: bad member_id {member_id!r}")
            continue
        if not points_text.isdigit() or not 0 < int(points_text) <= 1_000_000_000:
            errors.append(f"line {line_no}: points must be a whole number from 1 to 1e9")
            continue
        expires_at = None
        if expires_text is not None:
            try:
                expires_at = msgspec.convert(expires_text, datetime)
            except msgspec.ValidationError:
                errors.append(f"line {line_no}: expires_at must be RFC 3339 with an offset")
                continue
            if expires_at.tzinfo is None or expires_at <= now:
                errors.append(f"line {line_no}: expires_at must have an offset and be in the "
                              "future")
                continue
        items.append(GrantItem(member_id=member_id, points=int(points_text),
                               expires_at=expires_at))
    if errors:
        raise GrantFileError("\n".join(errors[:50]) + (
            f"\n... and {len(errors) - 50} more" if len(errors) > 50 else ""))
    if not items:
        raise GrantFileError("the file has no rows")
    return items


def chunks(items: list[GrantItem], size: int) -> Iterator[list[GrantItem]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def import_grants(ledger: Ledger, *, tenant_id: str, reason: str, raw: bytes,
                        chunk_size: int = 1000,
                        progress: Callable[[int], None] = lambda n: None) -> ImportResult:
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise GrantFileError(f"chunk size must be 1..{MAX_CHUNK}")
    now = datetime.now(UTC)
    items = parse_rows(raw.decode("utf-8-sig"), now)
    digest = hashlib.sha256(b"\0".join([tenant_id.encode(), reason.encode(), raw])).hexdigest()
    granted = replayed = granted_items = replayed_items = 0
    for index, chunk in enumerate(chunks(items, chunk_size)):
        body = GrantIn(grant_id=f"import-{digest[:20]}-{index:05d}", reason=reason, items=chunk)
        outcome = await ledger.grant(tenant_id, "cli", body, datetime.now(UTC))
        if outcome.status_code != 201:
            raise GrantFileError(f"chunk {index} was refused: {outcome.body.decode()}")
        if outcome.replayed:
            replayed += 1
            replayed_items += len(chunk)
        else:
            granted += 1
            granted_items += len(chunk)
        progress(len(chunk))
    return ImportResult(chunks=granted + replayed, granted_chunks=granted,
                        replayed_chunks=replayed, items=len(items),
                        points=sum(i.points for i in items), granted_items=granted_items,
                        replayed_items=replayed_items)
