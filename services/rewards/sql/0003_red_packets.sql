-- Red packets: operator-funded pools and member-made packets. Their points wait in an escrow
-- member of the points ledger (ids "pool:..." / "packet:..."); every share handed out is a row
-- here, so the Redis state that hands out shares can always be rebuilt.

CREATE TABLE rewards.pools (
    tenant_id        text        NOT NULL,
    pool_id          text        NOT NULL,
    name             text        NOT NULL,
    total_points     bigint      NOT NULL CHECK (total_points > 0),
    packets          int         NOT NULL CHECK (packets > 0 AND packets <= total_points),
    split            text        NOT NULL CHECK (split IN ('lucky', 'equal')),
    shares           bigint[]    NOT NULL,
    open_cost_points bigint      NOT NULL DEFAULT 0 CHECK (open_cost_points >= 0),
    per_member_opens int         NOT NULL DEFAULT 1 CHECK (per_member_opens > 0),
    starts_at        timestamptz,
    ends_at          timestamptz NOT NULL,
    escrow_member    text        NOT NULL,
    status           text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'settled')),
    returned_points  bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pool_id),
    CHECK (cardinality(shares) = packets)
);

CREATE TABLE rewards.pool_opens (
    tenant_id   text        NOT NULL,
    pool_id     text        NOT NULL,
    open_id     text        NOT NULL,
    member_id   text        NOT NULL,
    fingerprint bytea       NOT NULL,
    share_index int,
    member_nth  int,
    points      bigint,
    status      text        NOT NULL CHECK (status IN ('reserved', 'paid', 'failed')),
    outcome_status int,
    outcome_body bytea,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, open_id)
);
CREATE UNIQUE INDEX pool_opens_share ON rewards.pool_opens (tenant_id, pool_id, share_index)
    WHERE status <> 'failed';
CREATE UNIQUE INDEX pool_opens_member ON rewards.pool_opens (tenant_id, pool_id, member_id, member_nth)
    WHERE status <> 'failed';
CREATE INDEX pool_opens_latest ON rewards.pool_opens (tenant_id, pool_id, at);

CREATE TABLE rewards.packets (
    tenant_id       text        NOT NULL,
    packet_id       text        NOT NULL,
    maker_member_id text        NOT NULL,
    total_points    bigint      NOT NULL CHECK (total_points > 0),
    split           text        NOT NULL CHECK (split IN ('lucky', 'equal')),
    shares          bigint[]    NOT NULL,
    group_id        text,
    expires_at      timestamptz NOT NULL,
    escrow_member   text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'expired')),
    refunded_points bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, packet_id),
    CHECK (cardinality(shares) <= total_points)
);
CREATE INDEX packets_open ON rewards.packets (expires_at) WHERE status = 'open';

CREATE TABLE rewards.packet_grabs (
    tenant_id   text        NOT NULL,
    packet_id   text        NOT NULL,
    member_id   text        NOT NULL,
    share_index int         NOT NULL,
    points      bigint      NOT NULL CHECK (points > 0),
    paid        boolean     NOT NULL DEFAULT false,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, packet_id, member_id),
    UNIQUE (tenant_id, packet_id, share_index)
);
