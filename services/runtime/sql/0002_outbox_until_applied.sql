-- An outbox row now stays until every consumer it was sent to has applied it (has its inbox
-- row): the broker only carries events, PostgreSQL keeps them. The relay sends a row once,
-- then again, with back-off, to the consumers that have not applied it, so a flushed or lost
-- broker, a killed worker or a retry that could not be queued delays an event but cannot lose it.
ALTER TABLE fuli.outbox
    ADD COLUMN consumers text[],                 -- whom it was sent to (actor = inbox consumer)
    ADD COLUMN sends     int NOT NULL DEFAULT 0, -- how many times it was sent
    ADD COLUMN resend_at timestamptz;            -- NULL until sent; then when to send again

CREATE INDEX outbox_unsent ON fuli.outbox (id) WHERE resend_at IS NULL;
CREATE INDEX outbox_resend ON fuli.outbox (resend_at) WHERE resend_at IS NOT NULL;

-- The consumers of an event that have not yet applied it. One primary-key probe of the inbox
-- per consumer, whatever the planner thinks of the array's length.
CREATE FUNCTION fuli.waiting_consumers(p_tenant text, p_event uuid, p_consumers text[])
RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    c text;
    waiting text[] := '{}';
BEGIN
    FOREACH c IN ARRAY coalesce(p_consumers, '{}') LOOP
        IF NOT EXISTS (SELECT 1 FROM fuli.inbox
                       WHERE tenant_id = p_tenant AND consumer = c AND event_id = p_event) THEN
            waiting := waiting || c;
        END IF;
    END LOOP;
    RETURN waiting;
END $$;
