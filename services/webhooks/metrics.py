"""The webhooks gauges, set from PostgreSQL whenever the service's /metrics is scraped (the
deliveries table is the record, whichever process sent them)."""

from __future__ import annotations

from prometheus_client import Gauge

from services.runtime.db import Conn
from services.webhooks.deliveries import store

DELIVERIES = Gauge("fuli_webhook_deliveries", "Webhook deliveries by outcome", ["status"])
QUEUE_DEPTH = Gauge("fuli_webhook_queue_depth",
                    "Deliveries to enabled endpoints not yet delivered or failed")
DUE = Gauge("fuli_webhook_due", "Deliveries to enabled endpoints due to be sent now")
OLDEST_PENDING = Gauge("fuli_webhook_oldest_pending_age_seconds",
                       "Age of the oldest delivery to an enabled endpoint not yet delivered or "
                       "failed (0 when none)")


async def refresh(conn: Conn) -> None:
    outcomes = await store.outcomes(conn)
    for status in ("pending", "delivered", "failed"):
        DELIVERIES.labels(status).set(outcomes.get(status, 0))
    backlog = await store.backlog(conn)
    QUEUE_DEPTH.set(backlog.pending)
    DUE.set(backlog.due)
    OLDEST_PENDING.set(backlog.oldest_pending_s)
