-- Packet grabs carry an id of their own, as every other value-moving request does: `grab_id`,
-- unique per tenant, with the fingerprint of the request it was first sent with, so a retry
-- with the same id replays the grab and the same id with another body is refused. Grabs made
-- before (or by clients sending no id) have none; they stay keyed by packet and member.
ALTER TABLE rewards.packet_grabs
    ADD COLUMN grab_id text,
    ADD COLUMN fingerprint bytea,
    ADD CONSTRAINT packet_grabs_id_with_fingerprint CHECK ((grab_id IS NULL) = (fingerprint IS NULL));
CREATE UNIQUE INDEX packet_grabs_grab_id ON rewards.packet_grabs (tenant_id, grab_id)
    WHERE grab_id IS NOT NULL;
