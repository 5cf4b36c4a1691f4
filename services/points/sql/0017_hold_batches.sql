-- Holds placed, captured and voided many at a time (POST /holds/batch, POST /holds/settlements):
-- each item exactly as its own request would do it, by the same ledger function, claimed under
-- its own id and scope, and refused on its own (its claim rolled back with it), so one item's
-- refusal never undoes another's effect. The members of a batch are locked first, in member
-- order, as every other statement that locks several members does, so batches and single
-- operations never wait for each other in a cycle.
--
-- Each row answers one item, by its position: `done` (the effect ran; its answer is stored by
-- the caller in the same transaction), `taken` (the id was claimed before: nothing ran, the
-- stored answer is the item's) or `refused`, with the refusal as points.refuse raised it.

CREATE FUNCTION points.place_holds(p_tenant text, p_hold_ids text[], p_fingerprints bytea[],
                                   p_members text[], p_points bigint[], p_reasons text[],
                                   p_expires_in_s int[], p_now timestamptz)
RETURNS TABLE (ord int, outcome text, available bigint, held bigint, expires_at timestamptz,
               refusal text, refusal_hint text, refusal_details text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM points.lock_members(p_tenant, p_members, false);
    FOR i IN 1 .. cardinality(p_hold_ids) LOOP
        ord := i;
        available := NULL; held := NULL; expires_at := NULL;
        refusal := NULL; refusal_hint := NULL; refusal_details := NULL;
        BEGIN
            INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
            VALUES (p_tenant, 'points.holds', p_hold_ids[i], p_fingerprints[i])
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                SELECT h.available, h.held, h.expires_at INTO available, held, expires_at
                FROM points.place_hold(p_tenant, p_hold_ids[i], p_members[i], p_points[i],
                                       p_reasons[i], p_expires_in_s[i], p_now) h;
                outcome := 'done';
            ELSE
                outcome := 'taken';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            GET STACKED DIAGNOSTICS refusal = MESSAGE_TEXT, refusal_hint = PG_EXCEPTION_HINT,
                                    refusal_details = PG_EXCEPTION_DETAIL;
            outcome := 'refused';
        END;
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
BEGIN
    PERFORM points.lock_members(p_tenant, ARRAY(
        SELECT x.member_id FROM points.holds x
        WHERE x.tenant_id = p_tenant AND x.hold_id = ANY (p_hold_ids)), false);
    FOR i IN 1 .. cardinality(p_hold_ids) LOOP
        ord := i;
        member_id := NULL; points := NULL; status := NULL; available := NULL; held := NULL;
        refusal := NULL; refusal_hint := NULL; refusal_details := NULL;
        BEGIN
            INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
            VALUES (p_tenant, 'points.holds.' || p_actions[i], p_hold_ids[i], p_fingerprints[i])
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                SELECT s.member_id, s.points, s.status, s.available, s.held
                INTO member_id, points, status, available, held
                FROM points.settle_hold(p_tenant, p_hold_ids[i], p_actions[i], p_now) s;
                outcome := 'done';
            ELSE
                outcome := 'taken';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            GET STACKED DIAGNOSTICS refusal = MESSAGE_TEXT, refusal_hint = PG_EXCEPTION_HINT,
                                    refusal_details = PG_EXCEPTION_DETAIL;
            outcome := 'refused';
        END;
        RETURN NEXT;
    END LOOP;
END $$;
