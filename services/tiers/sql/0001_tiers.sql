-- Tiers: a policy per tenant, member metrics kept from the points service's events (daily
-- buckets, so rolling windows roll without new events), each member's tier with its grace
-- state, and the history of changes.

CREATE SCHEMA tiers;

CREATE TABLE tiers.policies (
    tenant_id  text        PRIMARY KEY,
    policy     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tiers.member_days (
    tenant_id     text   NOT NULL,
    member_id     text   NOT NULL,
    day           date   NOT NULL,
    spend_cents   bigint NOT NULL DEFAULT 0,
    points_earned bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, member_id, day)
);

CREATE TABLE tiers.members (
    tenant_id        text        NOT NULL,
    member_id        text        NOT NULL,
    points_available bigint      NOT NULL DEFAULT 0,
    tier             text,
    since            timestamptz,
    below_since      timestamptz,
    metrics          jsonb       NOT NULL DEFAULT '{}',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id)
);

CREATE TABLE tiers.history (
    tenant_id text        NOT NULL,
    member_id text        NOT NULL,
    change_id bigint      GENERATED ALWAYS AS IDENTITY,
    from_tier text,
    to_tier   text        NOT NULL,
    metrics   jsonb       NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, change_id)
);

-- A member's metrics over the policy's window, as of p_now.
CREATE FUNCTION tiers.metrics(p_tenant text, p_member text, p_window_days int, p_now timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'spend_cents', coalesce(sum(d.spend_cents), 0),
        'points_earned', coalesce(sum(d.points_earned), 0),
        'points_available', coalesce((SELECT m.points_available FROM tiers.members m
                                      WHERE m.tenant_id = p_tenant AND m.member_id = p_member), 0))
    FROM tiers.member_days d
    WHERE d.tenant_id = p_tenant AND d.member_id = p_member
      AND (p_window_days IS NULL OR d.day > (p_now AT TIME ZONE 'UTC')::date - p_window_days);
$$;

-- The highest tier of a threshold ladder whose minimums the metrics meet (index from 0).
CREATE FUNCTION tiers.threshold_tier(p_policy jsonb, p_metrics jsonb)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(max(t.ord - 1), 0)::int
    FROM jsonb_array_elements(p_policy -> 'tiers') WITH ORDINALITY AS t(tier, ord)
    WHERE (SELECT CASE WHEN coalesce(t.tier ->> 'match', 'all') = 'any'
                       THEN coalesce(bool_or((p_metrics ->> m.key)::numeric >= m.value::numeric), true)
                       ELSE coalesce(bool_and((p_metrics ->> m.key)::numeric >= m.value::numeric), true)
                  END
           FROM jsonb_each_text(coalesce(nullif(t.tier -> 'min', 'null'::jsonb), '{}'::jsonb))
                AS m(key, value));
$$;
