-- Spends, holds and moves take the lots that expire soonest first. take_from_lots put the lots
-- of the event being clawed back first with `(source = 'event' AND ref = p_prefer_ref) DESC`,
-- but without a preferred event that key is NULL for event lots and false for granted ones, and
-- DESC puts NULL first: a member's earned points were spent before granted points expiring
-- sooner. The key is now false unless the lot is the preferred event's.
CREATE OR REPLACE FUNCTION points.take_from_lots(p_tenant text, p_member text, p_amount bigint,
                                                 p_now timestamptz, p_mode text,
                                                 p_prefer_ref text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    lot record;
    v_left bigint := p_amount;
    v_take bigint;
    v_alloc jsonb := '[]';
BEGIN
    FOR lot IN
        SELECT l.lot_id, l.remaining - l.held AS free FROM points.lots l
        WHERE l.tenant_id = p_tenant AND l.member_id = p_member AND l.remaining > 0
          AND l.expires_at > p_now AND l.remaining > l.held
        ORDER BY coalesce(l.source = 'event' AND l.ref = p_prefer_ref, false) DESC,
                 l.expires_at, l.lot_id
    LOOP
        EXIT WHEN v_left = 0;
        v_take := least(lot.free, v_left);
        IF p_mode = 'hold' THEN
            UPDATE points.lots SET held = held + v_take
            WHERE tenant_id = p_tenant AND member_id = p_member AND lot_id = lot.lot_id;
        ELSE
            UPDATE points.lots SET remaining = remaining - v_take
            WHERE tenant_id = p_tenant AND member_id = p_member AND lot_id = lot.lot_id;
        END IF;
        v_alloc := v_alloc || jsonb_build_object('lot_id', lot.lot_id, 'points', v_take);
        v_left := v_left - v_take;
    END LOOP;
    IF v_left > 0 THEN
        RAISE EXCEPTION 'ledger invariant: live lots of %/% do not cover % points',
            p_tenant, p_member, p_amount;
    END IF;
    RETURN v_alloc;
END $$;
