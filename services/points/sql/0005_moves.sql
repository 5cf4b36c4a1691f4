-- Points moving between members (red packets: a maker's packet, a pool's escrow) and points
-- given back to the issuance account (what is left of a pool when it ends).
--
-- A move is two transfers with the same ref: the sender's points go to the redemption account
-- (spent, first-expiring lots first) and the receiver gets a new lot from the issuance account.

CREATE FUNCTION points.move_points(p_tenant text, p_move_id text, p_from text, p_to text,
                                   p_points bigint, p_reason text, p_expires_days int,
                                   p_now timestamptz)
RETURNS TABLE (from_available bigint, to_available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_first text := least(p_from, p_to);
    v_second text := greatest(p_from, p_to);
    m points.members;
    r points.members;
    v_live bigint;
    v_expires timestamptz := p_now + make_interval(days => p_expires_days);
BEGIN
    IF p_from = p_to THEN
        PERFORM points.refuse('same_member', 'points cannot move to the same member',
                              jsonb_build_object('field', 'to_member_id'));
    END IF;
    -- Both members locked in id order, like every multi-member operation.
    INSERT INTO points.members (tenant_id, member_id) VALUES (p_tenant, p_to) ON CONFLICT DO NOTHING;
    PERFORM points.lock_member(p_tenant, v_first, false);
    PERFORM points.lock_member(p_tenant, v_second, false);
    v_live := points.lock_spender(p_tenant, p_from, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_from, p_points, p_now, 'spend');
    UPDATE points.members x SET available = x.available - p_points, spent = x.spent + p_points
    WHERE x.tenant_id = p_tenant AND x.member_id = p_from RETURNING * INTO m;
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_from, 'debit', 'available', 'redemption', p_points, m.available, m.held,
            p_move_id, p_now);
    INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
    VALUES (p_tenant, p_to, p_points, p_points, v_expires, 'grant', p_move_id);
    UPDATE points.members x SET available = x.available + p_points,
                                lifetime_earned = x.lifetime_earned + p_points
    WHERE x.tenant_id = p_tenant AND x.member_id = p_to RETURNING * INTO r;
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_to, 'grant', 'issuance', 'available', p_points, r.available, r.held,
            p_move_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
        'member_id', p_from, 'points', p_points, 'kind', 'debit', 'ref', p_move_id,
        'reason', p_reason, 'spent_at', p_now));
    PERFORM points.emit(p_tenant, 'PointsAwarded', jsonb_build_object(
        'member_id', p_to, 'points', p_points, 'source', 'grant', 'ref', p_move_id,
        'occurred_at', p_now, 'expires_at', v_expires));
    RETURN QUERY SELECT v_live - p_points,
                        r.available - points.expired_unswept(p_tenant, p_to, p_now);
END $$;

-- Give a member's points back to the issuance account (e.g. an ended pool's escrow).
CREATE FUNCTION points.retire_points(p_tenant text, p_retirement_id text, p_member text,
                                     p_points bigint, p_now timestamptz)
RETURNS TABLE (available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
    v_live bigint;
BEGIN
    v_live := points.lock_spender(p_tenant, p_member, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_member, p_points, p_now, 'spend');
    UPDATE points.members x SET available = x.available - p_points,
                                reversed = x.reversed + p_points
    WHERE x.tenant_id = p_tenant AND x.member_id = p_member RETURNING * INTO m;
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_member, 'reversal', 'available', 'issuance', p_points, m.available,
            m.held, p_retirement_id, p_now);
    RETURN QUERY SELECT v_live - p_points;
END $$;
