-- Blind boxes: prizes with weights and stock, pity, verifiable draws (commit-reveal seeds),
-- members' age bands for boxes with a minimum age, and the audit of prize changes.

CREATE TABLE rewards.boxes (
    tenant_id              text        NOT NULL,
    box_id                 text        NOT NULL,
    name                   text        NOT NULL,
    cost_points            bigint      NOT NULL CHECK (cost_points >= 0),
    daily_limit_per_member int         CHECK (daily_limit_per_member > 0),
    pity_after             int         CHECK (pity_after >= 1),
    pity_prize_ids         text[],
    starts_at              timestamptz,
    ends_at                timestamptz,
    min_age                int         CHECK (min_age IN (8, 18)),
    enabled                boolean     NOT NULL DEFAULT true,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, box_id),
    CHECK ((pity_after IS NULL) = (pity_prize_ids IS NULL))
);

CREATE TABLE rewards.box_prizes (
    tenant_id  text   NOT NULL,
    box_id     text   NOT NULL,
    prize_id   text   NOT NULL,
    position   int    NOT NULL,
    name       text   NOT NULL,
    weight     bigint NOT NULL CHECK (weight > 0),
    stock_left int    CHECK (stock_left >= 0),
    kind       text   NOT NULL CHECK (kind IN ('points', 'perk', 'coupon', 'nothing')),
    points     bigint CHECK (points > 0),
    sku        text,
    PRIMARY KEY (tenant_id, box_id, prize_id),
    CHECK ((kind = 'points') = (points IS NOT NULL)),
    CHECK ((kind IN ('perk', 'coupon')) = (sku IS NOT NULL))
);

CREATE TABLE rewards.box_audit (
    tenant_id  text        NOT NULL,
    box_id     text        NOT NULL,
    change_id  bigint      GENERATED ALWAYS AS IDENTITY,
    key_id     text,
    definition jsonb       NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, box_id, change_id)
);

-- One live seed per box; its SHA-256 is published before it is used and the seed itself is
-- revealed when it is rotated out.
CREATE TABLE rewards.box_seeds (
    tenant_id   text        NOT NULL,
    box_id      text        NOT NULL,
    seed_no     int         NOT NULL,
    seed        bytea       NOT NULL CHECK (octet_length(seed) = 32),
    commitment  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revealed_at timestamptz,
    PRIMARY KEY (tenant_id, box_id, seed_no)
);
CREATE UNIQUE INDEX box_seeds_live ON rewards.box_seeds (tenant_id, box_id) WHERE revealed_at IS NULL;

-- Per member and box: the pity counter and today's draws; the row is the draw lock.
CREATE TABLE rewards.box_members (
    tenant_id     text NOT NULL,
    box_id        text NOT NULL,
    member_id     text NOT NULL,
    pity_counter  int  NOT NULL DEFAULT 0 CHECK (pity_counter >= 0),
    day           date,
    draws_that_day int NOT NULL DEFAULT 0 CHECK (draws_that_day >= 0),
    PRIMARY KEY (tenant_id, box_id, member_id)
);

CREATE TABLE rewards.draws (
    tenant_id     text        NOT NULL,
    draw_id       text        NOT NULL,
    box_id        text        NOT NULL,
    member_id     text        NOT NULL,
    fingerprint   bytea       NOT NULL,
    paid_with     text        NOT NULL CHECK (paid_with IN ('points', 'ticket')),
    cost_points   bigint      NOT NULL CHECK (cost_points >= 0),
    hold_id       text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'drawn', 'releasing',
                                                          'completed', 'failed')),
    seed_no       int,
    candidates    jsonb,
    pity_applied  boolean,
    prize_id      text,
    pity_before   int,
    pity_after    int,
    outcome_status int,
    outcome_body  bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, draw_id)
);
CREATE INDEX draws_unfinished ON rewards.draws (updated_at)
    WHERE status IN ('pending', 'drawn', 'releasing');
CREATE INDEX draws_box ON rewards.draws (tenant_id, box_id, seed_no);

CREATE TABLE rewards.member_profiles (
    tenant_id        text        NOT NULL,
    member_id        text        NOT NULL,
    age_band         text        NOT NULL CHECK (age_band IN ('under_8', '8_17', 'adult')),
    guardian_consent boolean     NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id)
);
