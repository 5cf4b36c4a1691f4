-- Tier metrics by the tenant's local day, like the rest of tiers: member_days buckets now hold
-- the local day of each fact (services/tiers/policy/store.py add_day), and windows end on the
-- local day of the evaluation. Buckets written before this migration keep the UTC day they
-- were filed under (the facts' times are not kept, so they cannot be re-filed): a window's
-- edge over them may be off by the zone offset, as it was before; they leave every window
-- within its length.

CREATE OR REPLACE FUNCTION tiers.metrics(p_tenant text, p_member text, p_window_days int,
                                         p_now timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'spend_cents', coalesce(sum(d.spend_cents), 0),
        'points_earned', coalesce(sum(d.points_earned), 0),
        'points_available', coalesce((SELECT m.points_available FROM tiers.members m
                                      WHERE m.tenant_id = p_tenant AND m.member_id = p_member), 0))
    FROM tiers.member_days d
    WHERE d.tenant_id = p_tenant AND d.member_id = p_member
      AND (p_window_days IS NULL OR d.day > tiers.local_day(p_tenant, p_now) - p_window_days);
$$;

-- The stratification of 0002, its window ending on the local day of p_now.
CREATE OR REPLACE FUNCTION tiers.stratify(p_tenant text, p_now timestamptz)
RETURNS TABLE (members bigint, changed bigint, cuts jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_policy jsonb;
    v_metric text;
    v_window int;
    v_grace int;
    v_members bigint;
    v_changed bigint;
    v_cuts jsonb;
BEGIN
    SELECT p.policy INTO v_policy FROM tiers.policies p
    WHERE p.tenant_id = p_tenant AND p.policy ->> 'mode' = 'percentile';
    IF v_policy IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'not_percentile',
            DETAIL = '{}', HINT = 'the tenant''s tier policy is not a percentile policy';
    END IF;
    v_metric := v_policy ->> 'metric';
    v_window := (v_policy ->> 'window_days')::int;
    v_grace := coalesce((v_policy ->> 'grace_days')::int, 0);

    CREATE TEMP TABLE strata ON COMMIT DROP AS
    WITH ladder AS (
        SELECT t.ord::int AS ord, t.tier ->> 'name' AS name,
               sum((t.tier ->> 'share')::numeric) OVER (ORDER BY t.ord) AS cum
        FROM jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS t(tier, ord)
    ),
    windowed AS (
        SELECT d.member_id, sum(d.spend_cents) AS spend_cents, sum(d.points_earned) AS points_earned
        FROM tiers.member_days d
        WHERE d.tenant_id = p_tenant
          AND (v_window IS NULL OR d.day > tiers.local_day(p_tenant, p_now) - v_window)
        GROUP BY d.member_id
    ),
    valued AS (
        SELECT m.member_id, m.tier AS current_tier, m.below_since,
               CASE v_metric WHEN 'spend_cents' THEN coalesce(w.spend_cents, 0)
                             WHEN 'points_earned' THEN coalesce(w.points_earned, 0)
                             ELSE m.points_available END AS value
        FROM tiers.members m LEFT JOIN windowed w USING (member_id)
        WHERE m.tenant_id = p_tenant
    ),
    ranked AS (
        SELECT v.*, row_number() OVER (ORDER BY v.value, v.member_id) AS pos,
               count(*) OVER () AS n
        FROM valued v
    )
    SELECT r.member_id, r.value, r.current_tier, r.below_since,
           (SELECT l.ord FROM ladder l WHERE r.pos <= round(l.cum * r.n) ORDER BY l.ord LIMIT 1)
               AS new_ord,
           (SELECT l.ord FROM ladder l WHERE l.name = r.current_tier) AS current_ord
    FROM ranked r;

    -- Where a downgrade waits for its grace, the member keeps the current tier.
    CREATE TEMP TABLE moves ON COMMIT DROP AS
    SELECT s.member_id, s.value, s.current_tier,
           CASE WHEN s.current_ord IS NULL OR s.new_ord >= s.current_ord THEN s.new_ord
                WHEN coalesce(s.below_since, p_now) <= p_now - make_interval(days => v_grace)
                     THEN s.new_ord
                ELSE s.current_ord END AS final_ord,
           CASE WHEN s.current_ord IS NOT NULL AND s.new_ord < s.current_ord
                     AND coalesce(s.below_since, p_now) > p_now - make_interval(days => v_grace)
                THEN coalesce(s.below_since, p_now) END AS below_since
    FROM strata s;

    UPDATE tiers.members m
    SET tier = l.tier ->> 'name',
        since = CASE WHEN m.tier IS DISTINCT FROM l.tier ->> 'name' THEN p_now ELSE m.since END,
        below_since = mv.below_since,
        metrics = jsonb_build_object(v_metric, mv.value), updated_at = p_now
    FROM moves mv
    JOIN jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS l(tier, ord)
      ON l.ord = mv.final_ord
    WHERE m.tenant_id = p_tenant AND m.member_id = mv.member_id;

    INSERT INTO tiers.history (tenant_id, member_id, from_tier, to_tier, metrics, at)
    SELECT p_tenant, mv.member_id, mv.current_tier, l.tier ->> 'name',
           jsonb_build_object(v_metric, mv.value), p_now
    FROM moves mv
    JOIN jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS l(tier, ord)
      ON l.ord = mv.final_ord
    WHERE mv.current_tier IS DISTINCT FROM l.tier ->> 'name';
    GET DIAGNOSTICS v_changed = ROW_COUNT;

    INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
    SELECT 'tiers', p_tenant, 'TierChanged',
           convert_to(jsonb_strip_nulls(jsonb_build_object(
               'type', 'TierChanged', 'member_id', mv.member_id, 'tier', l.tier ->> 'name',
               'previous_tier', mv.current_tier, 'changed_at', p_now,
               'earn_multiplier', coalesce((l.tier -> 'benefits' ->> 'earn_multiplier')::float8,
                                           1.0)))::text, 'UTF8')
    FROM moves mv
    JOIN jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS l(tier, ord)
      ON l.ord = mv.final_ord
    WHERE mv.current_tier IS DISTINCT FROM l.tier ->> 'name';

    SELECT count(*) INTO v_members FROM strata;
    SELECT coalesce(jsonb_agg(jsonb_build_object('tier', c.name, 'from_value', c.from_value,
                                                 'members', c.members) ORDER BY c.ord), '[]')
    INTO v_cuts
    FROM (SELECT l.ord, l.tier ->> 'name' AS name, min(s.value) AS from_value,
                 count(s.member_id) AS members
          FROM jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS l(tier, ord)
          LEFT JOIN strata s ON s.new_ord = l.ord
          GROUP BY l.ord, l.tier ->> 'name') c;
    INSERT INTO tiers.evaluations (tenant_id, metric, members, changed, cuts, at)
    VALUES (p_tenant, v_metric, v_members, v_changed, v_cuts, p_now);
    RETURN QUERY SELECT v_members, v_changed, v_cuts;
END $$;
