-- Team-buy campaigns: teams of a fixed size, scored by their members' net spend, ranked on a
-- live leaderboard (Redis mirrors these tables), settled once after the end plus a grace.
--
-- Ranking: score (net spend in cents) high first; equal scores by reached_at, the time of the
-- last purchase or refund that set the score, earlier first; then team id.

CREATE TABLE rewards.campaigns (
    tenant_id            text        NOT NULL,
    campaign_id          text        NOT NULL,
    name                 text        NOT NULL,
    team_sizes           int[]       NOT NULL,
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    min_team_spend_cents bigint      NOT NULL DEFAULT 0,
    prizes               jsonb       NOT NULL,
    settle_grace_s       int         NOT NULL,
    state                text        NOT NULL DEFAULT 'open'
                                     CHECK (state IN ('open', 'settling', 'settled')),
    settled_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id),
    CHECK (ends_at > starts_at)
);
CREATE INDEX campaigns_to_settle ON rewards.campaigns (ends_at) WHERE state <> 'settled';

CREATE TABLE rewards.teams (
    tenant_id         text        NOT NULL,
    campaign_id       text        NOT NULL,
    team_id           text        NOT NULL,
    name              text,
    size              int         NOT NULL,
    captain_member_id text        NOT NULL,
    members           int         NOT NULL DEFAULT 1,
    score             bigint      NOT NULL DEFAULT 0,
    reached_at        timestamptz NOT NULL,
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id, team_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES rewards.campaigns,
    CHECK (members BETWEEN 1 AND size)
);

-- The primary key keeps a member in at most one team per campaign.
CREATE TABLE rewards.team_members (
    tenant_id   text        NOT NULL,
    campaign_id text        NOT NULL,
    member_id   text        NOT NULL,
    team_id     text        NOT NULL,
    joined_at   timestamptz NOT NULL,
    spend_cents bigint      NOT NULL DEFAULT 0,
    version     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, campaign_id, member_id),
    FOREIGN KEY (tenant_id, campaign_id, team_id) REFERENCES rewards.teams
);
CREATE INDEX team_members_by_member ON rewards.team_members (tenant_id, member_id);
CREATE INDEX team_members_by_team ON rewards.team_members (tenant_id, campaign_id, team_id);

-- Purchases counted for a team, and what was refunded of them.
CREATE TABLE rewards.team_purchases (
    tenant_id      text        NOT NULL,
    campaign_id    text        NOT NULL,
    event_id       text        NOT NULL,
    member_id      text        NOT NULL,
    team_id        text        NOT NULL,
    amount_cents   bigint      NOT NULL,
    refunded_cents bigint      NOT NULL DEFAULT 0,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, event_id),
    CHECK (refunded_cents BETWEEN 0 AND amount_cents)
);
CREATE INDEX team_purchases_by_event ON rewards.team_purchases (tenant_id, event_id);

-- Refunds of purchases, kept whether or not the purchase counted anywhere, so a refund that
-- arrives before its purchase still applies when the purchase comes.
CREATE TABLE rewards.purchase_refunds (
    tenant_id      text        NOT NULL,
    event_id       text        NOT NULL,
    refunded_cents bigint      NOT NULL,
    last_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

-- The frozen ranking of a settled campaign, and the prize issue per team.
CREATE TABLE rewards.campaign_results (
    tenant_id   text   NOT NULL,
    campaign_id text   NOT NULL,
    rank        int    NOT NULL,
    team_id     text   NOT NULL,
    score       bigint NOT NULL,
    prize       jsonb,
    member_ids  text[] NOT NULL,
    issued      bool   NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, campaign_id, rank),
    UNIQUE (tenant_id, campaign_id, team_id)
);
