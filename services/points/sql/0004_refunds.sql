-- Refunds of spent points (a cancelled redemption): a captured hold or a debit is given back
-- whole, once, into the lots it was taken from, keeping their expiry dates.

ALTER TABLE points.transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE points.transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('earn', 'grant', 'hold', 'capture', 'void', 'debit', 'reversal', 'expiry',
                    'refund'));

ALTER TABLE points.holds ADD COLUMN refunded_at timestamptz;

CREATE FUNCTION points.refund_hold(p_tenant text, p_hold_id text, p_now timestamptz)
RETURNS TABLE (member_id text, points bigint, available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_member text;
    h points.holds;
    m points.members;
    a record;
BEGIN
    SELECT x.member_id INTO v_member FROM points.holds x
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM points.refuse('unknown_hold', 'no such hold', jsonb_build_object('hold_id', p_hold_id));
    END IF;
    m := points.lock_member(p_tenant, v_member, false);
    SELECT * INTO h FROM points.holds x WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF h.status <> 'captured' THEN
        PERFORM points.refuse('hold_not_captured', 'only a captured hold can be refunded',
                              jsonb_build_object('status', h.status));
    END IF;
    IF h.refunded_at IS NOT NULL THEN
        PERFORM points.refuse('already_refunded', 'the hold was already refunded',
                              jsonb_build_object('refunded_at', h.refunded_at));
    END IF;
    FOR a IN SELECT * FROM jsonb_to_recordset(h.allocations) AS x(lot_id bigint, points bigint) LOOP
        UPDATE points.lots l SET remaining = l.remaining + a.points
        WHERE l.tenant_id = p_tenant AND l.member_id = v_member AND l.lot_id = a.lot_id;
    END LOOP;
    UPDATE points.members x SET available = x.available + h.points, spent = x.spent - h.points
    WHERE x.tenant_id = p_tenant AND x.member_id = v_member RETURNING * INTO m;
    UPDATE points.holds x SET refunded_at = p_now
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, v_member, 'refund', 'redemption', 'available', h.points, m.available,
            m.held, p_hold_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsRefunded', jsonb_build_object(
        'member_id', v_member, 'points', h.points, 'ref', p_hold_id, 'refunded_at', p_now));
    RETURN QUERY SELECT v_member, h.points,
                        m.available - points.expired_unswept(p_tenant, v_member, p_now);
END $$;
