-- Community groups with their membership history, member activity for value scores and group
-- reports, and the tenant's value model.
--
-- Days are the tenant's local days (fuli.tenants.time_zone), so weeks and months of reports
-- and value windows start at local midnight.

CREATE TABLE tiers.groups (
    tenant_id  text        NOT NULL,
    group_id   text        NOT NULL,
    name       text        NOT NULL,
    tier       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('super', 'member', 'fan', 'flash')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, group_id)
);

-- One row per stay in a group: a member who leaves and joins again has two rows.
CREATE TABLE tiers.group_members (
    tenant_id text        NOT NULL,
    group_id  text        NOT NULL,
    member_id text        NOT NULL,
    joined_at timestamptz NOT NULL,
    left_at   timestamptz,
    PRIMARY KEY (tenant_id, group_id, member_id, joined_at),
    FOREIGN KEY (tenant_id, group_id) REFERENCES tiers.groups,
    CHECK (left_at IS NULL OR left_at >= joined_at)
);
CREATE UNIQUE INDEX group_members_current ON tiers.group_members (tenant_id, group_id, member_id)
    WHERE left_at IS NULL;
CREATE INDEX group_members_by_member ON tiers.group_members (tenant_id, member_id);

-- Actions per member, local day, action and group ('' when the action named no group).
CREATE TABLE tiers.action_days (
    tenant_id text   NOT NULL,
    member_id text   NOT NULL,
    day       date   NOT NULL,
    action    text   NOT NULL,
    group_id  text   NOT NULL DEFAULT '',
    actions   bigint NOT NULL,
    PRIMARY KEY (tenant_id, member_id, day, action, group_id)
);
CREATE INDEX action_days_by_day ON tiers.action_days (tenant_id, day);
CREATE INDEX action_days_by_group ON tiers.action_days (tenant_id, group_id, day)
    WHERE group_id <> '';

-- Every event with an amount (purchases), net of its refunds. A refund may arrive before the
-- purchase it refunds: its row then waits with a NULL amount until the purchase fills it in.
CREATE TABLE tiers.purchases (
    tenant_id      text        NOT NULL,
    event_id       text        NOT NULL,
    member_id      text        NOT NULL,
    action         text,
    group_id       text,
    occurred_at    timestamptz NOT NULL,
    day            date        NOT NULL,
    amount_cents   bigint,
    refunded_cents bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX purchases_by_member ON tiers.purchases (tenant_id, member_id, occurred_at);
CREATE INDEX purchases_by_day ON tiers.purchases (tenant_id, day);

CREATE TABLE tiers.value_models (
    tenant_id  text        PRIMARY KEY,
    model      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION tiers.local_day(p_tenant text, p_at timestamptz)
RETURNS date LANGUAGE sql STABLE AS $$
    SELECT (p_at AT TIME ZONE coalesce(
        (SELECT t.time_zone FROM fuli.tenants t WHERE t.tenant_id = p_tenant), 'UTC'))::date;
$$;

-- Value scores under a model over the local days (p_last_day - window_days, p_last_day]:
-- per action, weight x occurrences + per_100_cents x net amount / 100, summed per category.
-- p_members NULL scores every member with activity in the window.
CREATE FUNCTION tiers.member_values(p_tenant text, p_model jsonb, p_last_day date,
                                    p_members text[])
RETURNS TABLE (member_id text, consumption numeric, content numeric, interaction numeric,
               social numeric, total numeric)
LANGUAGE sql STABLE AS $$
    WITH weights AS (
        SELECT a.key AS action, a.value ->> 'category' AS category,
               coalesce((a.value ->> 'weight')::numeric, 0) AS weight,
               coalesce((a.value ->> 'per_100_cents')::numeric, 0) AS per_100_cents
        FROM jsonb_each(p_model -> 'actions') AS a
    ),
    bounds AS (
        SELECT p_last_day - (p_model ->> 'window_days')::int + 1 AS first_day
    ),
    scored AS (
        SELECT d.member_id, w.category, sum(d.actions) * w.weight AS score
        FROM tiers.action_days d JOIN weights w ON w.action = d.action AND w.weight > 0
        WHERE d.tenant_id = p_tenant
          AND d.day BETWEEN (SELECT first_day FROM bounds) AND p_last_day
          AND (p_members IS NULL OR d.member_id = ANY (p_members))
        GROUP BY d.member_id, w.category, w.weight
        UNION ALL
        SELECT p.member_id, w.category,
               sum(p.amount_cents - p.refunded_cents) * w.per_100_cents / 100 AS score
        FROM tiers.purchases p JOIN weights w ON w.action = p.action AND w.per_100_cents > 0
        WHERE p.tenant_id = p_tenant AND p.amount_cents IS NOT NULL
          AND p.day BETWEEN (SELECT first_day FROM bounds) AND p_last_day
          AND (p_members IS NULL OR p.member_id = ANY (p_members))
        GROUP BY p.member_id, w.category, w.per_100_cents
    )
    SELECT s.member_id,
           coalesce(sum(s.score) FILTER (WHERE s.category = 'consumption'), 0),
           coalesce(sum(s.score) FILTER (WHERE s.category = 'content'), 0),
           coalesce(sum(s.score) FILTER (WHERE s.category = 'interaction'), 0),
           coalesce(sum(s.score) FILTER (WHERE s.category = 'social'), 0),
           sum(s.score)
    FROM scored s
    GROUP BY s.member_id;
$$;

-- Each group's members at p_at, the mean of their value scores (members without activity
-- count as 0) and how many reach the model's high-value line. Groups without members at p_at
-- are left out.
CREATE FUNCTION tiers.group_values(p_tenant text, p_model jsonb, p_at timestamptz)
RETURNS TABLE (group_id text, members bigint, value_mean numeric, high_value_members bigint)
LANGUAGE sql STABLE AS $$
    WITH present AS (
        SELECT gm.group_id, gm.member_id
        FROM tiers.group_members gm
        WHERE gm.tenant_id = p_tenant AND gm.joined_at <= p_at
          AND (gm.left_at IS NULL OR gm.left_at > p_at)
    ),
    scores AS (
        SELECT v.member_id, v.total
        FROM tiers.member_values(p_tenant, p_model, tiers.local_day(p_tenant, p_at),
                                 (SELECT array_agg(DISTINCT member_id) FROM present)) AS v
    )
    SELECT p.group_id, count(*), avg(coalesce(s.total, 0)),
           count(*) FILTER (WHERE s.total >= (p_model ->> 'high_value_line')::numeric)
    FROM present p LEFT JOIN scores s USING (member_id)
    GROUP BY p.group_id;
$$;

-- A group's figures for the period [p_start, p_end). Population: everyone in the group at some
-- moment of the period. Active: of those, who acted in the group (events naming it) on a local
-- day of the period. Purchasers and GMV: purchases inside the period made while a member,
-- net of their refunds.
CREATE FUNCTION tiers.group_period(p_tenant text, p_group text, p_start timestamptz,
                                   p_end timestamptz)
RETURNS TABLE (members bigint, members_in_period bigint, joins bigint, leaves bigint,
               active_members bigint, purchasers bigint, gmv_cents bigint)
LANGUAGE sql STABLE AS $$
    WITH stays AS (
        SELECT gm.member_id, gm.joined_at, gm.left_at
        FROM tiers.group_members gm
        WHERE gm.tenant_id = p_tenant AND gm.group_id = p_group
    ),
    population AS (
        SELECT DISTINCT s.member_id FROM stays s
        WHERE s.joined_at < p_end AND (s.left_at IS NULL OR s.left_at >= p_start)
    ),
    active AS (
        SELECT DISTINCT d.member_id FROM tiers.action_days d
        WHERE d.tenant_id = p_tenant AND d.group_id = p_group
          AND d.day >= tiers.local_day(p_tenant, p_start)
          AND d.day < tiers.local_day(p_tenant, p_end)
          AND d.member_id IN (SELECT member_id FROM population)
    ),
    bought AS (
        SELECT DISTINCT ON (p.event_id) p.member_id, p.amount_cents - p.refunded_cents AS net
        FROM tiers.purchases p JOIN stays s
          ON s.member_id = p.member_id AND p.occurred_at >= s.joined_at
             AND (s.left_at IS NULL OR p.occurred_at < s.left_at)
        WHERE p.tenant_id = p_tenant AND p.amount_cents IS NOT NULL
          AND p.occurred_at >= p_start AND p.occurred_at < p_end
    )
    SELECT
        (SELECT count(DISTINCT s.member_id) FROM stays s
         WHERE s.joined_at < p_end AND (s.left_at IS NULL OR s.left_at >= p_end)),
        (SELECT count(*) FROM population),
        (SELECT count(*) FROM stays s WHERE s.joined_at >= p_start AND s.joined_at < p_end),
        (SELECT count(*) FROM stays s WHERE s.left_at >= p_start AND s.left_at < p_end),
        (SELECT count(*) FROM active),
        (SELECT count(DISTINCT b.member_id) FROM bought b WHERE b.net > 0),
        (SELECT coalesce(sum(b.net), 0)::bigint FROM bought b);
$$;
