-- Percentile stratification (0015) announcing its moves as TierChanges events: the members
-- moved from one tier to another, up to 1,000 of them an event (proto/events.py
-- TIER_CHANGES_MEMBERS), instead of a TierChanged event each.
--
-- A first pass over a million members moves them all. A TierChanged outbox row each was the
-- largest of its writes (6.5 s of 16.5 under auto_explain), and a million messages for each
-- consumer after it. About 3,000 rows (three tiers) take a sort and a string_agg instead: the
-- pass took 0.74-0.80 of its time at a million members and 0.76 at ten million
-- (loadtests/stratify_bench.py; README, Performance). The consumers apply an event's members in
-- one statement, and the webhooks service pushes a TierChanged for each member still.

CREATE OR REPLACE FUNCTION tiers.stratify(p_tenant text, p_now timestamptz)
RETURNS TABLE (members bigint, changed bigint, cuts jsonb)
LANGUAGE plpgsql SET work_mem = '256MB' SET enable_hashagg = off SET enable_hashjoin = off
AS $$
DECLARE
    v_policy jsonb;
    v_metric text;
    v_window int;
    v_grace interval;
    v_names text[];
    v_payload_heads text[];
    v_payload_tails text[];
    v_changed_at text;
    v_last_positions bigint[];
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
    v_grace := make_interval(days => coalesce((v_policy ->> 'grace_days')::int, 0));
    -- Per tier, the parts of a TierChanges payload around its members: the text of
    -- jsonb_strip_nulls(jsonb_build_object('type', 'TierChanges', 'tier', ..., 'member_ids', ...,
    -- 'changed_at', p_now, 'previous_tier', ..., 'earn_multiplier', ...)), whose keys jsonb
    -- orders by length, then bytes.
    v_changed_at := to_jsonb(p_now)::text;
    SELECT array_agg(t.tier ->> 'name' ORDER BY t.ord),
           array_agg('{"tier": ' || to_jsonb(t.tier ->> 'name')::text
                     || ', "type": "TierChanges", "changed_at": ' || v_changed_at
                     || ', "member_ids": [' ORDER BY t.ord),
           array_agg(', "earn_multiplier": '
                     || to_jsonb(coalesce((t.tier -> 'benefits' ->> 'earn_multiplier')::float8,
                                          1.0))::text || '}' ORDER BY t.ord)
    INTO v_names, v_payload_heads, v_payload_tails
    FROM jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS t(tier, ord);

    CREATE TEMP TABLE stratified (
        member_id   text   NOT NULL,
        value       bigint,
        pos         bigint NOT NULL,
        from_tier   text,
        to_ord      int,    -- the tier after grace (NULL: the row is left alone)
        below_since timestamptz,
        metrics     jsonb  NOT NULL,  -- the metric stored with the tier
        writes      boolean NOT NULL,  -- the member's row changes
        moves       boolean NOT NULL,  -- ... and so does the tier: history and TierChanges
        chunk       bigint  NOT NULL   -- the TierChanges event, by the movers before it
    ) ON COMMIT DROP;  -- filled in member order: history's primary key then fills in order

    WITH bounds AS MATERIALIZED (
        -- The last position of each tier over the tenant's n members.
        SELECT n.members,
               ARRAY(SELECT round(sum((t.tier ->> 'share')::numeric) OVER (ORDER BY t.ord)
                                  * n.members)::bigint
                     FROM jsonb_array_elements(v_policy -> 'tiers') WITH ORDINALITY AS t(tier, ord)
                     ORDER BY t.ord) AS last_positions
        FROM (SELECT count(*) AS members FROM tiers.members m
              WHERE m.tenant_id = p_tenant) n
    ),
    windowed AS (
        SELECT d.member_id, sum(d.spend_cents)::bigint AS spend_cents,
               sum(d.points_earned)::bigint AS points_earned
        FROM tiers.member_days d
        WHERE d.tenant_id = p_tenant
          AND (v_window IS NULL OR d.day > tiers.local_day(p_tenant, p_now) - v_window)
        GROUP BY d.member_id
    ),
    valued AS (
        SELECT m.member_id, m.tier AS current_tier, m.below_since, m.metrics,
               CASE v_metric WHEN 'spend_cents' THEN coalesce(w.spend_cents, 0)
                             WHEN 'points_earned' THEN coalesce(w.points_earned, 0)
                             ELSE m.points_available END AS value
        FROM tiers.members m LEFT JOIN windowed w USING (member_id)
        WHERE m.tenant_id = p_tenant
    ),
    ranked AS (
        SELECT v.*, row_number() OVER (ORDER BY v.value, v.member_id) AS pos
        FROM valued v
    ),
    -- The lowest tier whose last position is at or after the member's (none past the last).
    placed AS (
        SELECT r.*,
               CASE WHEN r.pos <= b.last_positions[cardinality(b.last_positions)]
                    THEN width_bucket(r.pos - 1, b.last_positions) + 1 END AS new_ord,
               array_position(v_names, r.current_tier) AS current_ord,
               r.pos - 1 = ANY (0 || b.last_positions) AS first_of_tier
        FROM ranked r, bounds b
        OFFSET 0  -- computed once a member: flattened, each use below would compute it again
    ),
    -- Where a downgrade waits for its grace, the member keeps the current tier.
    decided AS (
        SELECT p.*,
               CASE WHEN p.current_ord IS NULL OR p.new_ord >= p.current_ord THEN p.new_ord
                    WHEN coalesce(p.below_since, p_now) <= p_now - v_grace THEN p.new_ord
                    ELSE p.current_ord END AS final_ord,
               CASE WHEN p.current_ord IS NOT NULL AND p.new_ord < p.current_ord
                         AND coalesce(p.below_since, p_now) > p_now - v_grace
                    THEN coalesce(p.below_since, p_now) END AS new_below_since
        FROM placed p
        OFFSET 0  -- as above
    ),
    measured AS (
        SELECT d.*, jsonb_build_object(v_metric, d.value) AS new_metrics FROM decided d
        OFFSET 0  -- as above
    ),
    compared AS (
        SELECT d.*,
               d.final_ord IS NOT NULL
                   AND d.current_tier IS DISTINCT FROM v_names[d.final_ord] AS moves,
               d.final_ord IS NOT NULL
                   AND (d.current_tier IS DISTINCT FROM v_names[d.final_ord]
                        OR d.below_since IS DISTINCT FROM d.new_below_since
                        OR d.metrics IS DISTINCT FROM d.new_metrics)
                   AS writes
        FROM measured d
    ),
    kept AS (
        INSERT INTO stratified (member_id, value, pos, from_tier, to_ord, below_since, metrics,
                                writes, moves, chunk)
        SELECT c.member_id, c.value, c.pos, c.current_tier, c.final_ord, c.new_below_since,
               c.new_metrics, c.writes, c.moves,
               (count(*) FILTER (WHERE c.moves) OVER (ORDER BY c.member_id ROWS UNBOUNDED
                                                     PRECEDING) - 1) / 1000
        FROM compared c
        WHERE c.writes OR c.first_of_tier
        ORDER BY c.member_id
    )
    SELECT b.members, b.last_positions INTO v_members, v_last_positions FROM bounds b;
    ANALYZE stratified;

    UPDATE tiers.members m
    SET tier = v_names[s.to_ord],
        since = CASE WHEN m.tier IS DISTINCT FROM v_names[s.to_ord] THEN p_now ELSE m.since END,
        below_since = s.below_since,
        metrics = s.metrics, updated_at = p_now
    FROM stratified s
    WHERE s.writes AND m.tenant_id = p_tenant AND m.member_id = s.member_id;

    INSERT INTO tiers.history (tenant_id, member_id, from_tier, to_tier, metrics, at)
    SELECT p_tenant, s.member_id, s.from_tier, v_names[s.to_ord], s.metrics, p_now
    FROM stratified s WHERE s.moves;
    GET DIAGNOSTICS v_changed = ROW_COUNT;

    -- The movers 1,000 at a time in member order, an event for each pair of tiers they move
    -- between among them: a first pass over three tiers writes 3 events a thousand members.
    -- Members are listed as the sort leaves them: ordered, a first pass took 0.95 of the time
    -- before 0016 in one pair, 0.84 unordered in the next; consumers take them in any order.
    INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
    SELECT 'tiers', p_tenant, 'TierChanges',
           convert_to(v_payload_heads[g.to_ord] || g.member_ids || ']'
                      || coalesce(', "previous_tier": ' || to_json(g.from_tier)::text, '')
                      || v_payload_tails[g.to_ord], 'UTF8')
    FROM (SELECT s.from_tier, s.to_ord, string_agg(to_json(s.member_id)::text, ', ') AS member_ids
          FROM stratified s WHERE s.moves
          GROUP BY s.chunk, s.from_tier, s.to_ord) g;

    SET LOCAL enable_hashjoin = on;  -- a tier's first member among the rows: one pass, hashed
    -- A tier's members are the positions after the tier below's last, up to its own; its cut
    -- line is the metric of the first of them (none when the tier is empty).
    SELECT coalesce(jsonb_agg(jsonb_build_object('tier', v_names[c.ord], 'from_value', f.value,
                                                 'members', c.members) ORDER BY c.ord), '[]')
    INTO v_cuts
    FROM (SELECT l.ord, l.after,
                 least(l.last, v_members) - least(l.after, v_members) AS members
          FROM (SELECT b.ord::int AS ord, b.last,
                       coalesce(lag(b.last) OVER (ORDER BY b.ord), 0) AS after
                FROM unnest(v_last_positions) WITH ORDINALITY AS b(last, ord)) l) c
    LEFT JOIN stratified f ON c.members > 0 AND f.pos = c.after + 1;
    INSERT INTO tiers.evaluations (tenant_id, metric, members, changed, cuts, at)
    VALUES (p_tenant, v_metric, v_members, v_changed, v_cuts, p_now);
    RETURN QUERY SELECT v_members, v_changed, v_cuts;
END $$;
