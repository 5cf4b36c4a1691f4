-- The AIPL lifecycle (aware -> interested -> purchased -> loyal): the record of each tenant's
-- evaluations and the set-based function that moves every known member to the stage the
-- tenant's model gives as of a moment.
--
-- Stages, over the model's window of W local days ending on the evaluation day E (the local
-- days E - W + 1 .. E; the whole of each day counts):
--   loyal      at least R purchases in the window, or a repurchase: the latest purchase of
--              the window came at most D local days after the purchase before it (which may lie
--              before the window; two purchases on one day are 0 days apart);
--   purchased  at least one purchase in the window;
--   interested at least N engagement actions (tiers.action_days of the model's actions);
--   aware      any other known member (a tiers.members row).
-- A purchase is a tiers.purchases row whose amount net of its refunds is above 0 (refunds as
-- known when the evaluation runs). The highest stage that applies wins; stages move both ways.

CREATE TABLE tiers.lifecycle_evaluations (
    tenant_id     text        NOT NULL,
    evaluation_id bigint      GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL,
    day           date        NOT NULL,
    model         jsonb       NOT NULL,
    members       bigint      NOT NULL CHECK (members >= 0),
    changed       bigint      NOT NULL CHECK (changed >= 0),
    stages        jsonb       NOT NULL,
    moves         jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, evaluation_id)
);
CREATE INDEX lifecycle_evaluations_by_time ON tiers.lifecycle_evaluations (tenant_id, at);

-- The stage and the figures behind it of p_members (NULL: every known member) under p_model
-- over the window ending on the local day p_day.
CREATE FUNCTION tiers.lifecycle_stages(p_tenant text, p_model jsonb, p_day date,
                                       p_members text[])
RETURNS TABLE (member_id text, stage text, engagement_actions bigint, purchases bigint,
               repurchase_gap_days int, last_purchase_day date)
LANGUAGE sql STABLE AS $$
    WITH params AS (
        SELECT (p_model ->> 'interested_min_actions')::bigint AS n,
               (p_model ->> 'window_days')::int AS w,
               (p_model ->> 'loyal_min_purchases')::bigint AS r,
               (p_model ->> 'repurchase_within_days')::int AS d,
               ARRAY(SELECT jsonb_array_elements_text(p_model -> 'engagement_actions'))
                   AS actions
    ),
    engaged AS (
        SELECT a.member_id, sum(a.actions)::bigint AS n
        FROM tiers.action_days a, params
        WHERE a.tenant_id = p_tenant AND a.day > p_day - params.w AND a.day <= p_day
          AND a.action = ANY (params.actions)
          AND (p_members IS NULL OR a.member_id = ANY (p_members))
        GROUP BY a.member_id
    ),
    -- Purchases from D days before the window on: the one before the window's latest may lie
    -- there (one further back is more than D days before it).
    sequenced AS (
        SELECT p.member_id, p.day,
               p.day - lag(p.day) OVER w AS gap,
               lead(p.event_id) OVER w IS NULL AS latest
        FROM tiers.purchases p, params
        WHERE p.tenant_id = p_tenant AND p.amount_cents IS NOT NULL
          AND p.amount_cents - p.refunded_cents > 0
          AND p.day > p_day - params.w - params.d AND p.day <= p_day
          AND (p_members IS NULL OR p.member_id = ANY (p_members))
        WINDOW w AS (PARTITION BY p.member_id ORDER BY p.occurred_at, p.event_id)
    ),
    bought AS (
        SELECT s.member_id,
               count(*) FILTER (WHERE s.day > p_day - params.w) AS n,
               max(s.gap) FILTER (WHERE s.latest AND s.day > p_day - params.w) AS gap,
               max(s.day) FILTER (WHERE s.day > p_day - params.w) AS last_day
        FROM sequenced s, params
        GROUP BY s.member_id
    )
    SELECT m.member_id,
           CASE WHEN coalesce(b.n, 0) >= params.r OR b.gap <= params.d THEN 'loyal'
                WHEN coalesce(b.n, 0) >= 1 THEN 'purchased'
                WHEN coalesce(e.n, 0) >= params.n THEN 'interested'
                ELSE 'aware' END,
           coalesce(e.n, 0), coalesce(b.n, 0), b.gap, b.last_day
    FROM params, tiers.members m
    LEFT JOIN engaged e ON e.member_id = m.member_id
    LEFT JOIN bought b ON b.member_id = m.member_id
    WHERE m.tenant_id = p_tenant AND (p_members IS NULL OR m.member_id = ANY (p_members));
$$;

-- Every known member of the tenant moved to their stage under p_model as of p_at, in one
-- pass: tiers.member_stages changes only where the stage changed (since = p_at), each change
-- is appended to tiers.stage_history and emitted as a LifecycleChanged event (the msgspec JSON
-- of proto.events.LifecycleChanged), and the evaluation is recorded. An evaluation earlier
-- than the tenant's last one is refused (evaluation_out_of_order), so history stays ordered;
-- evaluations of one tenant run one at a time.
CREATE FUNCTION tiers.compute_lifecycle(p_tenant text, p_model jsonb, p_at timestamptz)
RETURNS TABLE (day date, members bigint, changed bigint, stages jsonb, moves jsonb)
LANGUAGE plpgsql SET work_mem = '128MB' AS $$
DECLARE
    v_day date := tiers.local_day(p_tenant, p_at);
    v_at_json text := to_char(p_at AT TIME ZONE 'UTC', '"\""YYYY-MM-DD"T"HH24:MI:SS.US"Z\""');
    v_last timestamptz;
    v_members bigint;
    v_changed bigint;
    v_stages jsonb;
    v_moves jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('tiers.lifecycle:' || p_tenant, 0));
    SELECT max(e.at) INTO v_last FROM tiers.lifecycle_evaluations e
    WHERE e.tenant_id = p_tenant;
    IF v_last > p_at THEN
        RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'evaluation_out_of_order',
            DETAIL = jsonb_build_object('last_evaluation_at', v_last)::text,
            HINT = 'an evaluation may not be earlier than the tenant''s last one';
    END IF;

    WITH computed AS MATERIALIZED (
        SELECT s.member_id, s.stage FROM tiers.lifecycle_stages(p_tenant, p_model, v_day, NULL) s
    ),
    changes AS MATERIALIZED (
        SELECT c.member_id, cur.stage AS from_stage, c.stage AS to_stage
        FROM computed c
        LEFT JOIN tiers.member_stages cur
          ON cur.tenant_id = p_tenant AND cur.member_id = c.member_id
        WHERE cur.stage IS DISTINCT FROM c.stage
    ),
    -- Members with a stage have their row changed; members without one get theirs.
    restaged AS (
        UPDATE tiers.member_stages ms
        SET stage = ch.to_stage, since = p_at, computed_day = v_day
        FROM changes ch
        WHERE ch.from_stage IS NOT NULL AND ms.tenant_id = p_tenant
          AND ms.member_id = ch.member_id
    ),
    staged AS (
        INSERT INTO tiers.member_stages (tenant_id, member_id, stage, since, computed_day)
        SELECT p_tenant, ch.member_id, ch.to_stage, p_at, v_day
        FROM changes ch WHERE ch.from_stage IS NULL ORDER BY ch.member_id
    ),
    recorded AS (
        INSERT INTO tiers.stage_history (tenant_id, member_id, from_stage, to_stage, at)
        SELECT p_tenant, ch.member_id, ch.from_stage, ch.to_stage, p_at
        FROM changes ch ORDER BY ch.member_id
    ),
    -- The JSON of proto.events.LifecycleChanged, written as text: building a jsonb per row
    -- costs more than the rest of the row (stage names need no escaping, member ids get it).
    emitted AS (
        INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
        SELECT 'tiers', p_tenant, 'LifecycleChanged',
               convert_to('{"type":"LifecycleChanged","member_id":' || to_json(ch.member_id)::text
                          || ',"from_stage":' || coalesce('"' || ch.from_stage || '"', 'null')
                          || ',"to_stage":"' || ch.to_stage || '","at":' || v_at_json || '}',
                          'UTF8')
        FROM changes ch ORDER BY ch.member_id
    )
    SELECT (SELECT count(*) FROM computed),
           (SELECT count(*) FROM changes),
           (SELECT jsonb_build_object(
                'aware', count(*) FILTER (WHERE c.stage = 'aware'),
                'interested', count(*) FILTER (WHERE c.stage = 'interested'),
                'purchased', count(*) FILTER (WHERE c.stage = 'purchased'),
                'loyal', count(*) FILTER (WHERE c.stage = 'loyal'))
            FROM computed c),
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'from_stage', g.from_stage, 'to_stage', g.to_stage, 'members', g.n)
                    ORDER BY g.from_stage NULLS FIRST, g.to_stage), '[]'::jsonb)
            FROM (SELECT ch.from_stage, ch.to_stage, count(*) AS n FROM changes ch
                  GROUP BY ch.from_stage, ch.to_stage) g)
    INTO v_members, v_changed, v_stages, v_moves;

    INSERT INTO tiers.lifecycle_evaluations (tenant_id, at, day, model, members, changed,
                                             stages, moves)
    VALUES (p_tenant, p_at, v_day, p_model, v_members, v_changed, v_stages, v_moves);
    RETURN QUERY SELECT v_day, v_members, v_changed, v_stages, v_moves;
END $$;

-- Each member's stage at p_from and at p_to by their stage history: members with a stage at
-- p_to, with NULL where they had none yet at p_from.
CREATE FUNCTION tiers.lifecycle_funnel(p_tenant text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (from_stage text, to_stage text, members bigint)
LANGUAGE sql STABLE AS $$
    WITH at_to AS (
        SELECT DISTINCT ON (h.member_id) h.member_id, h.to_stage AS stage
        FROM tiers.stage_history h
        WHERE h.tenant_id = p_tenant AND h.at <= p_to
        ORDER BY h.member_id, h.at DESC, h.change_id DESC
    ),
    at_from AS (
        SELECT DISTINCT ON (h.member_id) h.member_id, h.to_stage AS stage
        FROM tiers.stage_history h
        WHERE h.tenant_id = p_tenant AND h.at <= p_from
        ORDER BY h.member_id, h.at DESC, h.change_id DESC
    )
    SELECT f.stage, t.stage, count(*)
    FROM at_to t LEFT JOIN at_from f USING (member_id)
    GROUP BY f.stage, t.stage;
$$;
