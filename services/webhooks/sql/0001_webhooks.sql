-- Webhooks: the endpoints brand systems register, one delivery row per (event, subscribed
-- endpoint) written in the inbox transaction of the event, and the record of endpoints
-- disabled for failing every delivery.

CREATE SCHEMA webhooks;

-- The deployment key signing secrets are derived from when FULI_WEBHOOKS_KEY is not set
-- (generated once; then the database alone can derive the secrets).
CREATE TABLE webhooks.deployment_key (
    id  int   PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL CHECK (length(key) = 32)
);

-- A secret is never stored: only the random salt it is derived from with the deployment key
-- (whsec_ + base64 of HMAC-SHA256(key, salt)). The previous salt keeps signing until
-- previous_expires_at after a rotation.
CREATE TABLE webhooks.endpoints (
    tenant_id           text        NOT NULL,
    endpoint_id         text        NOT NULL,
    url                 text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    event_types         text[]      NOT NULL CHECK (cardinality(event_types) >= 1),
    description         text        NOT NULL DEFAULT '',
    enabled             boolean     NOT NULL DEFAULT true,
    allow_http          boolean     NOT NULL DEFAULT false,
    secret_salt         bytea       NOT NULL CHECK (length(secret_salt) >= 16),
    previous_salt       bytea,
    previous_expires_at timestamptz,
    failing_since       timestamptz,
    disabled_reason     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, endpoint_id),
    CHECK ((previous_salt IS NULL) = (previous_expires_at IS NULL))
);

-- delivery_id is the webhook-id header: stable across retries and replays.
-- lease_until: a sender has claimed the row and is sending it until then (a killed sender's
-- claim runs out and the row is sent again).
CREATE TABLE webhooks.deliveries (
    tenant_id        text        NOT NULL,
    delivery_id      text        NOT NULL,
    endpoint_id      text        NOT NULL,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    body             bytea       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_status_code int,
    last_error       text,
    last_latency_ms  int,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delivery_id),
    UNIQUE (tenant_id, endpoint_id, event_id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhooks.endpoints (tenant_id, endpoint_id)
        ON DELETE CASCADE,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);

-- A claim takes each endpoint's oldest due rows, and counts each endpoint's claimed ones.
CREATE INDEX deliveries_due ON webhooks.deliveries (tenant_id, endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_claimed ON webhooks.deliveries (tenant_id, endpoint_id)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
CREATE INDEX deliveries_by_endpoint ON webhooks.deliveries
    (tenant_id, endpoint_id, created_at, delivery_id);

CREATE TABLE webhooks.endpoint_disabled (
    tenant_id     text        NOT NULL,
    endpoint_id   text        NOT NULL,
    disabled_at   timestamptz NOT NULL DEFAULT now(),
    failing_since timestamptz NOT NULL,
    reason        text        NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id, disabled_at)
);
