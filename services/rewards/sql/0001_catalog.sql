-- Rewards: the perk catalog, coupon-code pools, redemptions, the coupon wallet, draw tickets
-- and bulk issues. Points are never stored here: they move through the points service's API.

CREATE SCHEMA rewards;

CREATE TABLE rewards.perks (
    tenant_id          text        NOT NULL,
    sku                text        NOT NULL CHECK (sku ~ '^[A-Za-z0-9._:-]{1,128}$'),
    name               text        NOT NULL,
    description        text        NOT NULL DEFAULT '',
    cost_points        bigint      NOT NULL CHECK (cost_points > 0),
    stock_left         int         CHECK (stock_left >= 0),          -- NULL: unlimited
    stock_version      bigint      NOT NULL DEFAULT 0,
    per_member_limit   int         CHECK (per_member_limit > 0),     -- NULL: no limit
    tiers              text[],                                        -- NULL: every tier
    starts_at          timestamptz,
    ends_at            timestamptz,
    fulfilment         text        NOT NULL CHECK (fulfilment IN ('code', 'manual')),
    coupon_valid_days  int         NOT NULL DEFAULT 30 CHECK (coupon_valid_days BETWEEN 1 AND 3650),
    enabled            boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sku),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at)
);

CREATE TABLE rewards.codes (
    tenant_id     text        NOT NULL,
    sku           text        NOT NULL,
    code          text        NOT NULL,
    redemption_id text,
    issue_id      text,
    assigned_at   timestamptz,
    PRIMARY KEY (tenant_id, sku, code)
);
CREATE INDEX codes_free ON rewards.codes (tenant_id, sku)
    WHERE redemption_id IS NULL AND issue_id IS NULL;

-- How many of a perk each member holds against its per-member limit.
CREATE TABLE rewards.allowances (
    tenant_id text NOT NULL,
    sku       text NOT NULL,
    member_id text NOT NULL,
    redeemed  int  NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    PRIMARY KEY (tenant_id, sku, member_id)
);

-- A redemption walks pending -> reserved -> completed | pending_fulfilment; refusals end in
-- failed (through releasing when stock was reserved); cancel goes through cancelling. Every
-- step is idempotent, so the request, a replay and the worker can each drive it forward.
CREATE TABLE rewards.redemptions (
    tenant_id      text        NOT NULL,
    redemption_id  text        NOT NULL,
    member_id      text        NOT NULL,
    sku            text        NOT NULL,
    quantity       int         NOT NULL CHECK (quantity > 0),
    points         bigint      NOT NULL CHECK (points > 0),
    fingerprint    bytea       NOT NULL,
    hold_id        text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'reserved', 'releasing',
                                   'completed', 'pending_fulfilment', 'cancelling', 'cancelled',
                                   'failed')),
    codes          text[]      NOT NULL DEFAULT '{}',
    outcome_status int,
    outcome_body   bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, redemption_id)
);
CREATE INDEX redemptions_member ON rewards.redemptions (tenant_id, member_id, created_at);
CREATE INDEX redemptions_unfinished ON rewards.redemptions (updated_at)
    WHERE status IN ('pending', 'reserved', 'releasing', 'cancelling');

CREATE TABLE rewards.coupons (
    tenant_id      text        NOT NULL,
    coupon_id      text        NOT NULL,
    member_id      text        NOT NULL,
    sku            text        NOT NULL,
    code           text,
    state          text        NOT NULL CHECK (state IN ('active', 'used', 'expired', 'transferred')),
    expires_at     timestamptz NOT NULL,
    source         text        NOT NULL CHECK (source IN ('redemption', 'issue', 'transfer')),
    ref            text        NOT NULL,
    transferred_to text,
    used_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, coupon_id)
);
CREATE INDEX coupons_member ON rewards.coupons (tenant_id, member_id, coupon_id);
CREATE INDEX coupons_ref ON rewards.coupons (tenant_id, ref);

CREATE TABLE rewards.tickets (
    tenant_id text NOT NULL,
    member_id text NOT NULL,
    box_id    text NOT NULL,
    count     int  NOT NULL DEFAULT 0 CHECK (count >= 0),
    PRIMARY KEY (tenant_id, member_id, box_id)
);

CREATE TABLE rewards.issue_audit (
    tenant_id    text        NOT NULL,
    issue_id     text        NOT NULL,
    key_id       text,
    reason       text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('perk', 'coupon', 'tickets')),
    sku          text,
    box_id       text,
    count        int         NOT NULL CHECK (count > 0),
    member_count int         NOT NULL CHECK (member_count > 0),
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, issue_id)
);

-- Members' tiers as the tiers service announces them (TierChanged); perks may require one.
CREATE TABLE rewards.member_tiers (
    tenant_id  text        NOT NULL,
    member_id  text        NOT NULL,
    tier       text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id)
);
