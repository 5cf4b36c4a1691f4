-- The first read of draw requests that arrive together (boxes/store.py, draw_starts): each
-- request's earlier try with its id, its box, its member's age band and draws in the box, the
-- tenant's time zone and the box's prizes, each row by the request's position.
--
-- A function, so that the statement is planned once a connection. Sent by the client, it was
-- planned again at every call: a plan for the exact number of requests at hand looks cheaper to
-- the planner than one for any number, and planning these joins cost more than running them
-- (loadtests/HISTORY.md). Every table is joined on the request's own columns, so that each is a
-- lookup by its whole key in any plan.
CREATE FUNCTION rewards.draw_starts(p_tenants text[], p_boxes text[], p_members text[],
                                    p_draws text[])
RETURNS TABLE (n bigint, draw rewards.draws, box rewards.boxes,
               profile rewards.member_profiles, member rewards.box_members, time_zone text,
               prizes jsonb)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT k.n, d, b, p, m, t.time_zone,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'prize_id', z.prize_id, 'name', z.name, 'weight', z.weight,
                'stock_left', z.stock_left, 'kind', z.kind, 'points', z.points, 'sku', z.sku)
                ORDER BY z.position), '[]')
            FROM rewards.box_prizes z WHERE z.tenant_id = b.tenant_id AND z.box_id = b.box_id)
    FROM unnest(p_tenants, p_boxes, p_members, p_draws) WITH ORDINALITY
         AS k(tenant_id, box_id, member_id, draw_id, n)
    LEFT JOIN rewards.draws d ON d.tenant_id = k.tenant_id AND d.draw_id = k.draw_id
    LEFT JOIN rewards.boxes b ON b.tenant_id = k.tenant_id AND b.box_id = k.box_id
    LEFT JOIN rewards.member_profiles p
           ON p.tenant_id = k.tenant_id AND p.member_id = k.member_id
    LEFT JOIN rewards.box_members m
           ON m.tenant_id = k.tenant_id AND m.box_id = k.box_id AND m.member_id = k.member_id
    LEFT JOIN fuli.tenants t ON t.tenant_id = k.tenant_id;
END $$;
