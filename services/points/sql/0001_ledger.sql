-- The points ledger.
--
-- Accounts. Every member has two: `available` and `held`. Every tenant has three system
-- accounts: `issuance` (where awarded and granted points come from; its balance is negative),
-- `redemption` (where spent points go) and `expiry` (where expired points go). A transfer moves a
-- positive amount from one account to another and always involves one member. Member balances
-- are rows in points.members, and every transfer records them after the movement. System
-- balances are derived from the transfers, so no row is shared by every event of a tenant.
--
-- Lots. Every award or grant is a lot with an expiry date. `remaining` is what is neither spent
-- nor expired (held points included), `held` is the part reserved by pending holds. A lot whose
-- expiry has passed is never spent and never counted as available, even before the sweep moves
-- its remainder to the expiry account.
--
-- Locking. Every change to a member's balances, lots or cap usage first locks that member's row
-- in points.members; batches lock members in member_id order.

CREATE SCHEMA points;

CREATE TABLE points.default_rules (
    action             text    PRIMARY KEY CHECK (action ~ '^[a-z][a-z0-9_]{0,63}$'),
    points             int     NOT NULL DEFAULT 0 CHECK (points >= 0),
    points_per_unit    int     NOT NULL DEFAULT 0 CHECK (points_per_unit >= 0),
    unit_cents         int     CHECK (unit_cents > 0),
    limits             jsonb   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(limits) = 'array'),
    expires_after_days int     NOT NULL DEFAULT 365 CHECK (expires_after_days BETWEEN 1 AND 36500),
    enabled            boolean NOT NULL DEFAULT true,
    CHECK ((points_per_unit = 0) = (unit_cents IS NULL))
);

INSERT INTO points.default_rules (action, points, points_per_unit, unit_cents, limits) VALUES
    ('speak',    1,  0, NULL, '[{"period": "day", "max_events": 20}]'),
    ('referral', 50, 0, NULL, '[{"period": "month", "max_events": 10}]'),
    ('purchase', 0,  1, 100,  '[]'),
    ('bind',     20, 0, NULL, '[{"period": "lifetime", "max_events": 1}]'),
    ('survey',   10, 0, NULL, '[{"period": "day", "max_events": 1}]');

CREATE TABLE points.rules (
    tenant_id          text        NOT NULL,
    action             text        NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]{0,63}$'),
    points             int         NOT NULL DEFAULT 0 CHECK (points >= 0),
    points_per_unit    int         NOT NULL DEFAULT 0 CHECK (points_per_unit >= 0),
    unit_cents         int         CHECK (unit_cents > 0),
    limits             jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(limits) = 'array'),
    expires_after_days int         NOT NULL DEFAULT 365 CHECK (expires_after_days BETWEEN 1 AND 36500),
    enabled            boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, action),
    CHECK ((points_per_unit = 0) = (unit_cents IS NULL))
);

CREATE TABLE points.members (
    tenant_id       text          NOT NULL,
    member_id       text          NOT NULL,
    available       bigint        NOT NULL DEFAULT 0 CHECK (available >= 0),
    held            bigint        NOT NULL DEFAULT 0 CHECK (held >= 0),
    lifetime_earned bigint        NOT NULL DEFAULT 0 CHECK (lifetime_earned >= 0),
    spent           bigint        NOT NULL DEFAULT 0 CHECK (spent >= 0),
    expired         bigint        NOT NULL DEFAULT 0 CHECK (expired >= 0),
    reversed        bigint        NOT NULL DEFAULT 0 CHECK (reversed >= 0),
    spend_cents     bigint        NOT NULL DEFAULT 0 CHECK (spend_cents >= 0),
    earn_multiplier numeric(8, 4) NOT NULL DEFAULT 1 CHECK (earn_multiplier > 0 AND earn_multiplier <= 100),
    created_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id),
    CHECK (lifetime_earned - reversed - spent - expired = available + held)
);

CREATE TABLE points.lots (
    tenant_id  text        NOT NULL,
    member_id  text        NOT NULL,
    lot_id     bigint      GENERATED ALWAYS AS IDENTITY,
    points     bigint      NOT NULL CHECK (points > 0),
    remaining  bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    held       bigint      NOT NULL DEFAULT 0 CHECK (held >= 0 AND held <= remaining),
    expires_at timestamptz NOT NULL,
    source     text        NOT NULL CHECK (source IN ('event', 'grant')),
    ref        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, lot_id)
);
CREATE INDEX lots_open ON points.lots (tenant_id, member_id, expires_at, lot_id) WHERE remaining > 0;
CREATE INDEX lots_to_expire ON points.lots (expires_at) WHERE remaining > held;

CREATE TABLE points.transfers (
    tenant_id       text        NOT NULL,
    member_id       text        NOT NULL,
    transfer_id     bigint      GENERATED ALWAYS AS IDENTITY,
    kind            text        NOT NULL CHECK (kind IN ('earn', 'grant', 'hold', 'capture', 'void',
                                                         'debit', 'reversal', 'expiry')),
    from_account    text        NOT NULL CHECK (from_account IN ('issuance', 'available', 'held',
                                                                 'redemption', 'expiry')),
    to_account      text        NOT NULL CHECK (to_account IN ('issuance', 'available', 'held',
                                                               'redemption', 'expiry')),
    amount          bigint      NOT NULL CHECK (amount > 0),
    available_after bigint      NOT NULL CHECK (available_after >= 0),
    held_after      bigint      NOT NULL CHECK (held_after >= 0),
    ref             text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, transfer_id),
    CHECK (from_account <> to_account),
    CHECK (from_account IN ('available', 'held') OR to_account IN ('available', 'held'))
);
CREATE INDEX transfers_ref ON points.transfers (tenant_id, ref);

CREATE TABLE points.cap_usage (
    tenant_id    text   NOT NULL,
    member_id    text   NOT NULL,
    action       text   NOT NULL,
    period       text   NOT NULL CHECK (period IN ('day', 'week', 'month', 'lifetime')),
    period_start date   NOT NULL,
    events       int    NOT NULL DEFAULT 0 CHECK (events >= 0),
    points       bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    PRIMARY KEY (tenant_id, member_id, action, period, period_start)
);

CREATE TABLE points.events (
    tenant_id        text        NOT NULL,
    event_id         text        NOT NULL,
    member_id        text        NOT NULL,
    action           text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    amount_cents     bigint      CHECK (amount_cents >= 0),
    attributes       jsonb,
    points           bigint      NOT NULL CHECK (points >= 0),
    capped_points    bigint      NOT NULL CHECK (capped_points >= 0),
    refunded_cents   bigint      NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    clawed_points    bigint      NOT NULL DEFAULT 0 CHECK (clawed_points >= 0 AND clawed_points <= points),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id),
    CHECK (refunded_cents <= coalesce(amount_cents, 0))
);

CREATE TABLE points.reversals (
    tenant_id    text        NOT NULL,
    reversal_id  text        NOT NULL,
    event_id     text        NOT NULL,
    member_id    text        NOT NULL,
    amount_cents bigint      CHECK (amount_cents >= 0),
    points       bigint      NOT NULL CHECK (points >= 0),
    taken        bigint      NOT NULL CHECK (taken >= 0 AND taken <= points),
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reversal_id)
);

CREATE TABLE points.holds (
    tenant_id   text        NOT NULL,
    hold_id     text        NOT NULL,
    member_id   text        NOT NULL,
    points      bigint      NOT NULL CHECK (points > 0),
    reason      text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    allocations jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (tenant_id, hold_id)
);
CREATE INDEX holds_pending ON points.holds (expires_at) WHERE status = 'pending';

CREATE TABLE points.debits (
    tenant_id text        NOT NULL,
    debit_id  text        NOT NULL,
    member_id text        NOT NULL,
    points    bigint      NOT NULL CHECK (points > 0),
    reason    text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, debit_id)
);

CREATE TABLE points.grant_audit (
    tenant_id    text        NOT NULL,
    grant_id     text        NOT NULL,
    key_id       text,
    reason       text        NOT NULL,
    item_count   int         NOT NULL CHECK (item_count > 0),
    total_points bigint      NOT NULL CHECK (total_points > 0),
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, grant_id)
);
