-- Rule tags (0008) written in member order, with the memory to hash the tenant. The first
-- evaluation of a tenant inserts a few tags per member: in the order the full join gave them,
-- each insertion landed on a random page of both member_tags indexes; in member order they
-- fill the primary key's pages one after another (and each tag's range of the by-tag index).
-- The aggregates over actions and purchases and the join of desired and existing tags hashed
-- in 4 MB batches spilled to disk. What the function computes and writes is unchanged.

CREATE OR REPLACE FUNCTION tiers.compute_rule_tags(p_tenant text, p_at timestamptz,
                                                   p_rules jsonb, p_bucket_starts int[],
                                                   p_bucket_labels text[])
RETURNS TABLE (members bigint, rule_tags bigint, added bigint, removed bigint)
LANGUAGE plpgsql SET work_mem = '256MB' AS $$
DECLARE
    v_zone text := coalesce((SELECT t.time_zone FROM fuli.tenants t
                             WHERE t.tenant_id = p_tenant), 'UTC');
    v_day date := (p_at AT TIME ZONE v_zone)::date;
    v_rep_window int := (p_rules #>> '{repurchaser,window_days}')::int;
    v_rep_purchases int := (p_rules #>> '{repurchaser,purchases}')::int;
    v_cl_window int := (p_rules #>> '{coupon_lover,window_days}')::int;
    v_cl_share numeric := (p_rules #>> '{coupon_lover,share}')::numeric;
    v_cl_min int := (p_rules #>> '{coupon_lover,min_purchases}')::int;
    v_new_days int := (p_rules #>> '{new_member,days}')::int;
    v_dormant_days int := (p_rules #>> '{dormant,days}')::int;
BEGIN
    RETURN QUERY
    WITH bought AS (
        SELECT p.member_id, p.day
        FROM tiers.purchases p
        WHERE p.tenant_id = p_tenant AND p.amount_cents - p.refunded_cents > 0
          AND p.day <= v_day
    ),
    coupon_days AS (
        SELECT DISTINCT d.member_id, d.day
        FROM tiers.action_days d
        WHERE d.tenant_id = p_tenant AND d.action = 'coupon_used'
          AND d.day > v_day - v_cl_window AND d.day <= v_day
    ),
    purchase_counts AS (
        SELECT b.member_id, min(b.day) AS first_day,
               count(*) FILTER (WHERE b.day > v_day - v_rep_window) AS repeat_n,
               count(*) FILTER (WHERE b.day > v_day - v_cl_window) AS coupon_n,
               count(c.day) FILTER (WHERE b.day > v_day - v_cl_window) AS with_coupon
        FROM bought b LEFT JOIN coupon_days c USING (member_id, day)
        GROUP BY b.member_id
    ),
    acts AS (
        SELECT d.member_id, min(d.day) AS first_day, max(d.day) AS last_day
        FROM tiers.action_days d
        WHERE d.tenant_id = p_tenant AND d.day <= v_day
        GROUP BY d.member_id
    ),
    joins AS (
        SELECT gm.member_id, min((gm.joined_at AT TIME ZONE v_zone)::date) AS first_day
        FROM tiers.group_members gm
        WHERE gm.tenant_id = p_tenant AND (gm.joined_at AT TIME ZONE v_zone)::date <= v_day
        GROUP BY gm.member_id
    ),
    seen AS (
        SELECT m.member_id, least(a.first_day, j.first_day) AS first_seen, a.last_day,
               p.first_day AS first_purchase, p.repeat_n, p.coupon_n, p.with_coupon,
               s.channel
        FROM tiers.members m
        LEFT JOIN acts a ON a.member_id = m.member_id
        LEFT JOIN joins j ON j.member_id = m.member_id
        LEFT JOIN purchase_counts p ON p.member_id = m.member_id
        LEFT JOIN tiers.member_sources s
          ON s.tenant_id = p_tenant AND s.member_id = m.member_id
         AND (s.occurred_at AT TIME ZONE v_zone)::date <= v_day
        WHERE m.tenant_id = p_tenant
    ),
    desired AS (
        SELECT s.member_id, unnest(array_remove(ARRAY[
            CASE WHEN s.repeat_n >= v_rep_purchases THEN 'repurchaser' END,
            CASE WHEN s.coupon_n >= v_cl_min AND s.coupon_n > 0
                      AND s.with_coupon >= v_cl_share * s.coupon_n THEN 'coupon_lover' END,
            CASE WHEN s.first_seen > v_day - v_new_days THEN 'new_member' END,
            CASE WHEN s.last_day IS NULL OR s.last_day <= v_day - v_dormant_days
                 THEN 'dormant' END,
            CASE WHEN s.first_purchase IS NOT NULL AND s.first_seen IS NOT NULL
                 THEN 'first_order_days:' || p_bucket_labels[width_bucket(
                     greatest(s.first_purchase - s.first_seen, 0), p_bucket_starts) + 1] END,
            'source:' || s.channel], NULL)) AS tag
        FROM seen s
    ),
    existing AS (
        SELECT mt.member_id, mt.tag, mt.source FROM tiers.member_tags mt
        WHERE mt.tenant_id = p_tenant
    ),
    -- What changes: rule rows no longer earned, and earned tags the member does not have (a
    -- manual row of the same name, which the API never writes, would be left as it is). A
    -- full join is always hashed or merged, whatever the statistics say, so this is linear.
    diff AS (
        SELECT coalesce(d.member_id, e.member_id) AS member_id, coalesce(d.tag, e.tag) AS tag,
               d.tag IS NULL AS dropped
        FROM desired d FULL JOIN existing e
          ON e.member_id = d.member_id AND e.tag = d.tag
        WHERE (d.tag IS NULL AND e.source = 'rule') OR e.tag IS NULL
    ),
    gone AS (
        DELETE FROM tiers.member_tags mt
        USING diff
        WHERE diff.dropped AND mt.tenant_id = p_tenant AND mt.member_id = diff.member_id
          AND mt.tag = diff.tag AND mt.source = 'rule'
        RETURNING 1
    ),
    fresh AS (
        INSERT INTO tiers.member_tags (tenant_id, member_id, tag, source, since)
        SELECT p_tenant, diff.member_id, diff.tag, 'rule', p_at
        FROM diff WHERE NOT diff.dropped ORDER BY diff.member_id, diff.tag
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM tiers.members m WHERE m.tenant_id = p_tenant),
           (SELECT count(*) FROM desired),
           (SELECT count(*) FROM fresh),
           (SELECT count(*) FROM gone);
END;
$$;
