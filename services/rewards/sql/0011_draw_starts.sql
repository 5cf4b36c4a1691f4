-- The first read of draw requests that arrive together (boxes/store.py, draw_starts): each
-- request's earlier try with its id (existing_*), its box, its member's age band and draws in
-- the box, the tenant's time zone and the box's prizes, each row by the request's position.
--
-- A function, so that the statement is planned once a connection. Sent by the client, it was
-- planned again at every call: a plan for the exact number of requests at hand looks cheaper to
-- the planner than one for any number, and planning these joins took longer than running them
-- (loadtests/HISTORY.md). Each table is joined on the request's own columns, and its keys are
-- said as well, so that a plan made while the tables were small still looks rows up by key.
-- A CREATE OR REPLACE of this function must say its SET again: it replaces the settings too.
CREATE FUNCTION rewards.draw_starts(p_tenants text[], p_boxes text[], p_members text[],
                                    p_draws text[])
RETURNS TABLE (
    n bigint,
    existing_draw_id text, existing_box_id text, existing_member_id text,
    existing_fingerprint bytea, existing_paid_with text, existing_cost_points bigint,
    existing_hold_id text, existing_status text, existing_seed_no int,
    existing_candidates jsonb, existing_pity_applied boolean, existing_prize_id text,
    existing_pity_before int, existing_pity_after int, existing_outcome_status int,
    existing_outcome_body bytea, existing_created_at timestamptz,
    box_id text, name text, cost_points bigint, daily_limit_per_member int, pity_after int,
    pity_prize_ids text[], starts_at timestamptz, ends_at timestamptz, min_age int,
    enabled boolean,
    age_band text, guardian_consent boolean,
    pity_counter int, day date, draws_that_day int,
    time_zone text, prizes jsonb)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT k.n,
           d.draw_id, d.box_id, d.member_id, d.fingerprint, d.paid_with, d.cost_points,
           d.hold_id, d.status, d.seed_no, d.candidates, d.pity_applied, d.prize_id,
           d.pity_before, d.pity_after, d.outcome_status, d.outcome_body, d.created_at,
           b.box_id, b.name, b.cost_points, b.daily_limit_per_member, b.pity_after,
           b.pity_prize_ids, b.starts_at, b.ends_at, b.min_age, b.enabled,
           p.age_band, p.guardian_consent,
           coalesce(m.pity_counter, 0), m.day, coalesce(m.draws_that_day, 0),
           t.time_zone,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'prize_id', z.prize_id, 'name', z.name, 'weight', z.weight,
                'stock_left', z.stock_left, 'kind', z.kind, 'points', z.points, 'sku', z.sku)
                ORDER BY z.position), '[]')
            FROM rewards.box_prizes z WHERE z.tenant_id = b.tenant_id AND z.box_id = b.box_id)
    FROM unnest(p_tenants, p_boxes, p_members, p_draws) WITH ORDINALITY
         AS k(tenant_id, box_id, member_id, draw_id, n)
    LEFT JOIN rewards.draws d ON d.tenant_id = k.tenant_id AND d.draw_id = k.draw_id
          AND d.tenant_id = ANY (p_tenants) AND d.draw_id = ANY (p_draws)
    LEFT JOIN rewards.boxes b ON b.tenant_id = k.tenant_id AND b.box_id = k.box_id
          AND b.tenant_id = ANY (p_tenants) AND b.box_id = ANY (p_boxes)
    LEFT JOIN rewards.member_profiles p
           ON p.tenant_id = k.tenant_id AND p.member_id = k.member_id
          AND p.tenant_id = ANY (p_tenants) AND p.member_id = ANY (p_members)
    LEFT JOIN rewards.box_members m
           ON m.tenant_id = k.tenant_id AND m.box_id = k.box_id AND m.member_id = k.member_id
          AND m.tenant_id = ANY (p_tenants) AND m.box_id = ANY (p_boxes)
          AND m.member_id = ANY (p_members)
    LEFT JOIN fuli.tenants t ON t.tenant_id = k.tenant_id;
END $$;
