-- The tenants with an enabled endpoint: the outbox relay sends the webhooks consumer only their
-- events (proto/events.py, WEBHOOK_DELIVERIES).
CREATE VIEW webhooks.endpoint_tenants AS
    SELECT DISTINCT tenant_id FROM webhooks.endpoints WHERE enabled;
