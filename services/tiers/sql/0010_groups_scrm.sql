-- Groups as an SCRM runs them: an owner (the staff member who runs the group), labels, a status
-- (a dissolved group keeps its history but takes no joins), and a parent, so groups form the
-- organisational tree (city -> district -> grid). Trends per local day or ISO week over a set
-- of groups are one set-based function below.

ALTER TABLE tiers.groups
    ADD COLUMN owner        text,
    ADD COLUMN tags         text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN status       text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'dissolved')),
    ADD COLUMN dissolved_at timestamptz,
    ADD COLUMN parent_id    text,
    ADD CONSTRAINT groups_dissolved_at CHECK ((status = 'dissolved') = (dissolved_at IS NOT NULL)),
    ADD CONSTRAINT groups_not_own_parent CHECK (parent_id IS DISTINCT FROM group_id),
    ADD CONSTRAINT groups_parent FOREIGN KEY (tenant_id, parent_id)
        REFERENCES tiers.groups (tenant_id, group_id);

CREATE INDEX groups_by_parent ON tiers.groups (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX groups_by_owner ON tiers.groups (tenant_id, owner) WHERE owner IS NOT NULL;
CREATE INDEX groups_by_tag ON tiers.groups USING gin (tags);

-- The group and every group below it (children, their children, ...).
CREATE FUNCTION tiers.group_subtree(p_tenant text, p_group text)
RETURNS TABLE (group_id text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE tree AS (
        SELECT g.group_id FROM tiers.groups g
        WHERE g.tenant_id = p_tenant AND g.group_id = p_group
        UNION
        SELECT c.group_id FROM tiers.groups c JOIN tree ON c.parent_id = tree.group_id
        WHERE c.tenant_id = p_tenant
    )
    SELECT tree.group_id FROM tree;
$$;

-- Trends of a set of groups over p_periods consecutive local periods (days, or weeks when
-- p_week) starting on the local day p_first. Each period is [local midnight of its first day,
-- local midnight of the next period's first day). Figures per period:
--   groups      groups created before the period's end and not dissolved before it
--   new_groups  groups created in the period;  dissolved: groups dissolved in the period
--   members     stays open at the period's end (a member in two groups of the set counts twice)
--   joins       stays started in the period;  leaves: stays ended in the period (dissolutions
--               included)
--   speakers    distinct members with a `speak` action naming a group of the set on a local day
--               of the period, while in that group at some moment of the period
--   purchasers  distinct members with a purchase (net of refunds > 0) made in the period while
--               in a group of the set; gmv_cents: the net amounts of those purchases, each
--               purchase counted once however many groups of the set its buyer was in
-- Every row is bucketed into its period by its local day, so the work is one pass over the
-- stays, actions and purchases of the range, not one query per group and period.
CREATE FUNCTION tiers.group_trends(p_tenant text, p_groups text[], p_first date,
                                   p_periods int, p_week boolean)
RETURNS TABLE (period_index int, first_day date, starts_at timestamptz, ends_at timestamptz,
               groups bigint, new_groups bigint, dissolved bigint, members bigint,
               joins bigint, leaves bigint, speakers bigint, purchasers bigint,
               gmv_cents bigint)
LANGUAGE sql STABLE AS $$
    WITH zone AS (
        SELECT coalesce((SELECT t.time_zone FROM fuli.tenants t WHERE t.tenant_id = p_tenant),
                        'UTC') AS tz,
               CASE WHEN p_week THEN 7 ELSE 1 END AS step
    ),
    periods AS (
        SELECT i AS period_index, p_first + i * z.step AS first_day,
               ((p_first + i * z.step)::timestamp AT TIME ZONE z.tz) AS starts_at,
               ((p_first + (i + 1) * z.step)::timestamp AT TIME ZONE z.tz) AS ends_at
        FROM zone z, generate_series(0, p_periods - 1) AS i
    ),
    bounds AS (
        SELECT min(starts_at) AS range_start, max(ends_at) AS range_end FROM periods
    ),
    chosen AS (
        SELECT g.group_id, g.created_at, g.dissolved_at FROM tiers.groups g
        WHERE g.tenant_id = p_tenant AND g.group_id = ANY (p_groups)
    ),
    group_counts AS (
        SELECT p.period_index,
               count(*) FILTER (WHERE c.created_at < p.ends_at
                                  AND (c.dissolved_at IS NULL OR c.dissolved_at >= p.ends_at))
                   AS groups,
               count(*) FILTER (WHERE c.created_at >= p.starts_at AND c.created_at < p.ends_at)
                   AS new_groups,
               count(*) FILTER (WHERE c.dissolved_at >= p.starts_at
                                  AND c.dissolved_at < p.ends_at) AS dissolved
        FROM periods p CROSS JOIN chosen c
        GROUP BY p.period_index
    ),
    -- Stays overlapping the range (one that ended before it adds nothing to any figure).
    stays AS (
        SELECT gm.group_id, gm.member_id, gm.joined_at, gm.left_at
        FROM tiers.group_members gm
        WHERE gm.tenant_id = p_tenant AND gm.group_id = ANY (p_groups)
          AND gm.joined_at < (SELECT range_end FROM bounds)
          AND (gm.left_at IS NULL OR gm.left_at >= (SELECT range_start FROM bounds))
    ),
    -- Joins (+1) and leaves (-1) in their period: the offset of their local day from p_first
    -- in days (or whole weeks). Joins before the range make the members at its start.
    moves AS (
        SELECT (((s.joined_at AT TIME ZONE z.tz)::date - p_first) / z.step) AS period_index,
               s.joined_at < (SELECT range_start FROM bounds) AS before_range, 1 AS delta,
               1 AS joins, 0 AS leaves
        FROM stays s, zone z
        UNION ALL
        SELECT (((s.left_at AT TIME ZONE z.tz)::date - p_first) / z.step),
               s.left_at < (SELECT range_start FROM bounds), -1, 0, 1
        FROM stays s, zone z
        WHERE s.left_at IS NOT NULL AND s.left_at < (SELECT range_end FROM bounds)
    ),
    opening AS (
        SELECT coalesce(sum(delta), 0) AS members FROM moves WHERE before_range
    ),
    stay_counts AS (
        SELECT period_index, sum(delta) AS delta, sum(joins) AS joins, sum(leaves) AS leaves
        FROM moves WHERE NOT before_range
        GROUP BY period_index
    ),
    spoke AS (
        SELECT DISTINCT ((d.day - p_first) / z.step) AS period_index, d.member_id, d.group_id
        FROM tiers.action_days d, zone z
        WHERE d.tenant_id = p_tenant AND d.group_id <> '' AND d.group_id = ANY (p_groups)
          AND d.action = 'speak'
          AND d.day >= p_first AND d.day < p_first + p_periods * z.step
    ),
    speaker_counts AS (
        SELECT sp.period_index, count(DISTINCT sp.member_id) AS speakers
        FROM spoke sp JOIN periods p USING (period_index)
        JOIN stays s ON s.group_id = sp.group_id AND s.member_id = sp.member_id
        WHERE s.joined_at < p.ends_at AND (s.left_at IS NULL OR s.left_at >= p.starts_at)
        GROUP BY sp.period_index
    ),
    bought AS (
        SELECT DISTINCT ON (pu.event_id) pu.member_id,
               pu.amount_cents - pu.refunded_cents AS net,
               (((pu.occurred_at AT TIME ZONE z.tz)::date - p_first) / z.step) AS period_index
        FROM tiers.purchases pu
        JOIN stays s ON s.member_id = pu.member_id AND pu.occurred_at >= s.joined_at
                    AND (s.left_at IS NULL OR pu.occurred_at < s.left_at)
        CROSS JOIN zone z
        WHERE pu.tenant_id = p_tenant AND pu.amount_cents IS NOT NULL
          -- the local day narrows the scan (a day either side, should the zone have changed)
          AND pu.day >= p_first - 1 AND pu.day <= p_first + p_periods * z.step
          AND pu.occurred_at >= (SELECT range_start FROM bounds)
          AND pu.occurred_at < (SELECT range_end FROM bounds)
        ORDER BY pu.event_id
    ),
    purchase_counts AS (
        SELECT period_index, count(DISTINCT member_id) FILTER (WHERE net > 0) AS purchasers,
               sum(net) AS gmv_cents
        FROM bought GROUP BY period_index
    )
    SELECT p.period_index, p.first_day, p.starts_at, p.ends_at,
           coalesce(gc.groups, 0), coalesce(gc.new_groups, 0), coalesce(gc.dissolved, 0),
           ((SELECT members FROM opening)
            + coalesce(sum(sc.delta) OVER (ORDER BY p.period_index), 0))::bigint,
           coalesce(sc.joins, 0)::bigint, coalesce(sc.leaves, 0)::bigint,
           coalesce(spk.speakers, 0), coalesce(pc.purchasers, 0),
           coalesce(pc.gmv_cents, 0)::bigint
    FROM periods p
    LEFT JOIN group_counts gc USING (period_index)
    LEFT JOIN stay_counts sc USING (period_index)
    LEFT JOIN speaker_counts spk USING (period_index)
    LEFT JOIN purchase_counts pc USING (period_index)
    ORDER BY p.period_index;
$$;
