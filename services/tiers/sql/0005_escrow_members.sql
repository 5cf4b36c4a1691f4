-- The points ledger's escrow members (the rewards service's red-packet pools and packets,
-- `pool:` or `packet:` and a 40-hex digest: proto.common.ESCROW_MEMBER_PATTERN) are not
-- members. The consumers skip their events; the rows they left before that are deleted here,
-- and every table a member enters the service by refuses them, so no population (tier
-- distribution, stratification, KOC, value scores, groups) can count one again. History rows
-- follow tiers.members, so they need no check of their own (a check costs ~0.5 us a row, which
-- a stratification of a million members would pay again on every history row it writes).

CREATE FUNCTION tiers.is_escrow(p_member text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_member ~ '^(pool|packet):[0-9a-f]{40}$';
$$;

DELETE FROM tiers.members WHERE tiers.is_escrow(member_id);
DELETE FROM tiers.member_days WHERE tiers.is_escrow(member_id);
DELETE FROM tiers.history WHERE tiers.is_escrow(member_id);
DELETE FROM tiers.action_days WHERE tiers.is_escrow(member_id);
DELETE FROM tiers.purchases WHERE tiers.is_escrow(member_id);
DELETE FROM tiers.group_members WHERE tiers.is_escrow(member_id);

ALTER TABLE tiers.members
    ADD CONSTRAINT members_not_escrow CHECK (NOT tiers.is_escrow(member_id));
ALTER TABLE tiers.member_days
    ADD CONSTRAINT member_days_not_escrow CHECK (NOT tiers.is_escrow(member_id));
ALTER TABLE tiers.action_days
    ADD CONSTRAINT action_days_not_escrow CHECK (NOT tiers.is_escrow(member_id));
ALTER TABLE tiers.purchases
    ADD CONSTRAINT purchases_not_escrow CHECK (NOT tiers.is_escrow(member_id));
ALTER TABLE tiers.group_members
    ADD CONSTRAINT group_members_not_escrow CHECK (NOT tiers.is_escrow(member_id));
