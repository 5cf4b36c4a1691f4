-- The shared runtime's schema: tenants, API keys, idempotency records, the transactional
-- outbox and the consumers' inbox. Service data lives in each service's own schema.

CREATE TABLE fuli.tenants (
    tenant_id    text        PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    time_zone    text        NOT NULL DEFAULT 'Asia/Shanghai',
    token_secret bytea       NOT NULL CHECK (octet_length(token_secret) >= 32),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fuli.api_keys (
    key_id      text        PRIMARY KEY,
    tenant_id   text        NOT NULL REFERENCES fuli.tenants ON DELETE CASCADE,
    secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    role        text        NOT NULL CHECK (role IN ('admin', 'operator', 'ingest')),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON fuli.api_keys (tenant_id, created_at);

-- One row per (tenant, scope, id) of a value-moving request: the fingerprint of the request
-- and, once the effect committed, the response that is replayed.
CREATE TABLE fuli.idempotency (
    tenant_id   text        NOT NULL,
    scope       text        NOT NULL,
    key         text        NOT NULL CHECK (key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    fingerprint bytea       NOT NULL,
    status_code int         CHECK (status_code BETWEEN 200 AND 499),
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, scope, key)
);

-- Events written in the same transaction as the change, relayed to the broker afterwards.
CREATE TABLE fuli.outbox (
    id         bigserial   PRIMARY KEY,
    event_id   uuid        NOT NULL DEFAULT gen_random_uuid(),
    service    text        NOT NULL,
    tenant_id  text        NOT NULL,
    event_type text        NOT NULL,
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Events a consumer has applied: delivery is at least once, effects happen once.
CREATE TABLE fuli.inbox (
    tenant_id    text        NOT NULL,
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, consumer, event_id)
);
