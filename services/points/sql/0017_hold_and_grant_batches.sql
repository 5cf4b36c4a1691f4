-- Holds placed, captured and voided, and grants made, many at a time (POST /holds/batch,
-- POST /holds/settlements, POST /grants/batch): each item exactly as its own request would do
-- it, by the same ledger function, claimed under its own id and scope, and refused on its own
-- (its claim deleted), so one item's refusal never undoes another's effect.
--
-- Locks are taken in the order a single operation takes them, claim first, then member: a batch
-- claims all its ids first (in scope and id order), then locks its members (in member order),
-- so batches and single operations never wait for each other in a cycle. Only the members
-- locked then take part: a member (or a hold) that appears after it is, to the batch, one that
-- does not exist yet. A later item with the id of an earlier one is that one's replay, or, if
-- the earlier one was refused, claims the id again and is evaluated on its own.
--
-- An item's refusal is decided before its ledger function runs (hold_refusal, settle_refusal:
-- the checks the function would raise on, with the same codes and details), not caught from
-- it: catching takes a subtransaction an item, and a transaction with more than 64 of them
-- makes every other session's snapshots slower until it ends.
--
-- Each row answers one item, by its position: `done` (the effect ran; its answer is stored by
-- the caller in the same transaction), `taken` (the id was claimed before: nothing ran, the
-- stored answer is the item's) or `refused`, with the refusal's code, hint and details.

-- The items of a batch that claim their ids (the first with each id, if free), claiming them in
-- (scope, id) order; true at the position of each.
CREATE FUNCTION points.claim_batch(p_tenant text, p_scopes text[], p_keys text[],
                                   p_fingerprints bytea[])
RETURNS boolean[] LANGUAGE plpgsql AS $$
DECLARE
    v_claimed boolean[];
BEGIN
    WITH claimed AS (
        INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
        SELECT p_tenant, t.scope, t.key, t.fingerprint
        FROM unnest(p_scopes, p_keys, p_fingerprints) WITH ORDINALITY
             AS t(scope, key, fingerprint, ord)
        ORDER BY t.scope, t.key, t.ord
        ON CONFLICT DO NOTHING
        RETURNING scope, key),
    items AS (
        SELECT t.scope, t.key, t.ord, min(t.ord) OVER (PARTITION BY t.scope, t.key) AS first
        FROM unnest(p_scopes, p_keys) WITH ORDINALITY AS t(scope, key, ord))
    SELECT array_agg(i.ord = i.first AND c.key IS NOT NULL ORDER BY i.ord) INTO v_claimed
    FROM items i LEFT JOIN claimed c ON c.scope = i.scope AND c.key = i.key;
    RETURN v_claimed;
END $$;

-- Whether an item runs: it claimed its id with the batch (p_claimed), or its id was freed by
-- the refusal of an earlier item with that id and it claims it now.
CREATE FUNCTION points.item_claims(p_tenant text, p_claimed boolean, p_scope text, p_key text,
                                   p_fingerprint bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_claimed THEN
        RETURN true;
    END IF;
    INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
    VALUES (p_tenant, p_scope, p_key, p_fingerprint) ON CONFLICT DO NOTHING;
    RETURN FOUND;
END $$;

-- A refused item's claim goes, as a refused request's does: its id stays free.
CREATE FUNCTION points.unclaim(p_tenant text, p_scope text, p_key text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM fuli.idempotency x
    WHERE x.tenant_id = p_tenant AND x.scope = p_scope AND x.key = p_key;
$$;

-- The members locked, in member order, for a batch: those of p_members that exist.
CREATE FUNCTION points.lock_batch_members(p_tenant text, p_members text[])
RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(x.member_id), '{}') FROM (
        SELECT x.member_id FROM points.members x
        WHERE x.tenant_id = p_tenant AND x.member_id = ANY (p_members)
        ORDER BY x.member_id FOR UPDATE) x;
$$;

-- Why a hold would be refused now (NULL code: it would not), the member being locked.
CREATE FUNCTION points.hold_refusal(p_tenant text, p_member text, p_points bigint,
                                    p_now timestamptz, OUT code text, OUT hint text,
                                    OUT details jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_available bigint;
    v_live bigint;
BEGIN
    SELECT x.available INTO v_available FROM points.members x
    WHERE x.tenant_id = p_tenant AND x.member_id = p_member;
    IF NOT FOUND THEN
        code := 'unknown_member';
        hint := 'no such member';
        details := jsonb_build_object('member_id', p_member);
        RETURN;
    END IF;
    v_live := v_available - points.expired_unswept(p_tenant, p_member, p_now);
    IF v_live < p_points THEN
        code := 'insufficient_points';
        hint := 'not enough points available';
        details := jsonb_build_object('available', v_live, 'requested', p_points);
    END IF;
END $$;

-- Why a capture or void of a hold would be refused now (NULL code: it would not), its member
-- being locked.
CREATE FUNCTION points.settle_refusal(p_tenant text, p_hold_id text, p_action text,
                                      p_now timestamptz, OUT code text, OUT hint text,
                                      OUT details jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    h points.holds;
BEGIN
    SELECT * INTO h FROM points.holds x WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF NOT FOUND THEN
        code := 'unknown_hold';
        hint := 'no such hold';
        details := jsonb_build_object('hold_id', p_hold_id);
    ELSIF h.status <> 'pending' THEN
        code := 'hold_not_pending';
        hint := 'the hold was already ' || h.status;
        details := jsonb_build_object('status', h.status);
    ELSIF p_action = 'capture' AND h.expires_at <= p_now THEN
        code := 'hold_expired';
        hint := 'the hold expired and can no longer be captured';
        details := jsonb_build_object('expired_at', h.expires_at);
    END IF;
END $$;

CREATE FUNCTION points.place_holds(p_tenant text, p_hold_ids text[], p_fingerprints bytea[],
                                   p_members text[], p_points bigint[], p_reasons text[],
                                   p_expires_in_s int[], p_now timestamptz)
RETURNS TABLE (ord int, outcome text, available bigint, held bigint, expires_at timestamptz,
               refusal text, refusal_hint text, refusal_details text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_scopes text[] := array_fill('points.holds'::text, ARRAY[cardinality(p_hold_ids)]);
    v_claimed boolean[] := points.claim_batch(p_tenant, v_scopes, p_hold_ids, p_fingerprints);
    v_locked text[] := points.lock_batch_members(p_tenant, p_members);
BEGIN
    FOR i IN 1 .. cardinality(p_hold_ids) LOOP
        ord := i;
        available := NULL; held := NULL; expires_at := NULL;
        refusal := NULL; refusal_hint := NULL; refusal_details := NULL;
        IF NOT points.item_claims(p_tenant, v_claimed[i], v_scopes[i], p_hold_ids[i],
                                  p_fingerprints[i]) THEN
            outcome := 'taken';
        ELSE
            IF p_members[i] = ANY (v_locked) THEN
                SELECT r.code, r.hint, r.details::text INTO refusal, refusal_hint, refusal_details
                FROM points.hold_refusal(p_tenant, p_members[i], p_points[i], p_now) r;
            ELSE
                refusal := 'unknown_member';
                refusal_hint := 'no such member';
                refusal_details := jsonb_build_object('member_id', p_members[i])::text;
            END IF;
            IF refusal IS NULL THEN
                SELECT h.available, h.held, h.expires_at INTO available, held, expires_at
                FROM points.place_hold(p_tenant, p_hold_ids[i], p_members[i], p_points[i],
                                       p_reasons[i], p_expires_in_s[i], p_now) h;
                outcome := 'done';
            ELSE
                PERFORM points.unclaim(p_tenant, v_scopes[i], p_hold_ids[i]);
                outcome := 'refused';
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- p_actions: 'capture' or 'void' per item, each claimed in the scope of its single route.
CREATE FUNCTION points.settle_holds(p_tenant text, p_hold_ids text[], p_actions text[],
                                    p_fingerprints bytea[], p_now timestamptz)
RETURNS TABLE (ord int, outcome text, member_id text, points bigint, status text,
               available bigint, held bigint, refusal text, refusal_hint text,
               refusal_details text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_scopes text[] := ARRAY(SELECT 'points.holds.' || a FROM unnest(p_actions) AS a);
    v_claimed boolean[] := points.claim_batch(p_tenant, v_scopes, p_hold_ids, p_fingerprints);
    v_locked text[] := points.lock_batch_members(p_tenant, ARRAY(
        SELECT x.member_id FROM points.holds x
        WHERE x.tenant_id = p_tenant AND x.hold_id = ANY (p_hold_ids)));
BEGIN
    FOR i IN 1 .. cardinality(p_hold_ids) LOOP
        ord := i;
        member_id := NULL; points := NULL; status := NULL; available := NULL; held := NULL;
        refusal := NULL; refusal_hint := NULL; refusal_details := NULL;
        IF NOT points.item_claims(p_tenant, v_claimed[i], v_scopes[i], p_hold_ids[i],
                                  p_fingerprints[i]) THEN
            outcome := 'taken';
        ELSE
            SELECT r.code, r.hint, r.details::text INTO refusal, refusal_hint, refusal_details
            FROM points.settle_refusal(p_tenant, p_hold_ids[i], p_actions[i], p_now) r;
            IF refusal IS NULL AND NOT EXISTS (
                    SELECT 1 FROM points.holds x WHERE x.tenant_id = p_tenant
                    AND x.hold_id = p_hold_ids[i] AND x.member_id = ANY (v_locked)) THEN
                refusal := 'unknown_hold';
                refusal_hint := 'no such hold';
                refusal_details := jsonb_build_object('hold_id', p_hold_ids[i])::text;
            END IF;
            IF refusal IS NULL THEN
                SELECT s.member_id, s.points, s.status, s.available, s.held
                INTO member_id, points, status, available, held
                FROM points.settle_hold(p_tenant, p_hold_ids[i], p_actions[i], p_now) s;
                outcome := 'done';
            ELSE
                PERFORM points.unclaim(p_tenant, v_scopes[i], p_hold_ids[i]);
                outcome := 'refused';
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- Grants of items (never refused), each claimed under its own id: the items of grant i are
-- the p_item_counts[i] that follow those of the grants before it.
CREATE FUNCTION points.apply_grants(p_tenant text, p_grant_ids text[], p_fingerprints bytea[],
                                    p_key_id text, p_reasons text[], p_item_counts int[],
                                    p_members text[], p_points bigint[],
                                    p_expires timestamptz[], p_default_days int,
                                    p_now timestamptz)
RETURNS TABLE (ord int, outcome text, item_count int, total_points bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_scopes text[] := array_fill('points.grants'::text, ARRAY[cardinality(p_grant_ids)]);
    v_claimed boolean[] := points.claim_batch(p_tenant, v_scopes, p_grant_ids, p_fingerprints);
    v_from int := 1;
    v_to int;
BEGIN
    PERFORM points.lock_members(p_tenant, p_members, true);
    FOR i IN 1 .. cardinality(p_grant_ids) LOOP
        ord := i;
        item_count := NULL; total_points := NULL;
        v_to := v_from + p_item_counts[i] - 1;
        IF v_claimed[i] THEN
            SELECT g.item_count, g.total_points INTO item_count, total_points
            FROM points.apply_grant(p_tenant, p_grant_ids[i], p_key_id, p_reasons[i],
                                    p_members[v_from:v_to], p_points[v_from:v_to],
                                    p_expires[v_from:v_to], p_default_days, p_now) g;
            outcome := 'done';
        ELSE
            outcome := 'taken';
        END IF;
        v_from := v_to + 1;
        RETURN NEXT;
    END LOOP;
END $$;
