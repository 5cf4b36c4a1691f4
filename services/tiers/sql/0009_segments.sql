-- Segments: saved filters over the known members (tier, lifecycle stage, tags, value score,
-- group membership, KOC), each with the member list it gave when it was last computed. The
-- list is frozen until the next computation (on PUT, on POST .../refresh and daily), so an
-- issue of rewards or points to a segment reaches exactly the members its count shows.

CREATE TABLE tiers.segments (
    tenant_id    text        NOT NULL,
    segment_id   text        NOT NULL,
    name         text        NOT NULL,
    filter       jsonb       NOT NULL,
    member_count bigint      NOT NULL CHECK (member_count >= 0),
    computed_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, segment_id)
);
CREATE INDEX segments_by_computation ON tiers.segments (computed_at);

-- The frozen member list of each segment (no foreign key: a refresh of a million members
-- writes a million rows, and a per-row check would cost as much again; the segment's rows go
-- with it in the same transaction).
CREATE TABLE tiers.segment_members (
    tenant_id  text NOT NULL,
    segment_id text NOT NULL,
    member_id  text NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, member_id)
);

-- The members of a filter, in one statement over the known members (tiers.members, which
-- never holds an escrow member). Each condition applies only when its argument is not NULL;
-- the conditions AND together.
--   p_tiers      tier names; a member without a tier is at p_lowest (the ladder's lowest)
--   p_stages     AIPL stages; a known member without a stage row is `aware`
--   p_all/p_any/p_none  tags the member has all of / at least one of / none of (p_all
--                distinct, so a member with all of them has cardinality(p_all) rows)
--   p_groups     group ids: a current member (a stay not left) of at least one
--   p_min/p_max  value score (tiers.member_values under p_model over the window ending on
--                p_last_day; a member without activity scores 0), inclusive bounds
--   p_koc        true: among the p_koc_count members with the highest score above 0 (ties by
--                member id), false: not among them
-- Tag, stage and group conditions are semi/anti-joins against hashed id sets; work_mem is
-- raised so the sets of a million-member tenant are hashed, not rescanned per member.
CREATE FUNCTION tiers.segment_select(
    p_tenant text, p_tiers text[], p_lowest text, p_stages text[], p_all text[],
    p_any text[], p_none text[], p_groups text[], p_model jsonb, p_last_day date,
    p_min numeric, p_max numeric, p_koc boolean, p_koc_count int)
RETURNS TABLE (member_id text)
LANGUAGE sql STABLE
SET work_mem = '256MB'
AS $$
    WITH scores AS MATERIALIZED (
        SELECT v.member_id, v.total
        FROM tiers.member_values(p_tenant, p_model, p_last_day, NULL) AS v
        WHERE p_model IS NOT NULL AND (p_min IS NOT NULL OR p_max IS NOT NULL
                                       OR p_koc IS NOT NULL)
    ),
    kocs AS MATERIALIZED (
        SELECT s.member_id FROM scores s
        WHERE s.total > 0 AND p_koc IS NOT NULL
        ORDER BY s.total DESC, s.member_id
        LIMIT p_koc_count
    )
    SELECT m.member_id
    FROM tiers.members m
    LEFT JOIN scores s ON s.member_id = m.member_id
    WHERE m.tenant_id = p_tenant
      AND (p_tiers IS NULL OR coalesce(m.tier, p_lowest) = ANY (p_tiers))
      AND (p_stages IS NULL
           OR ('aware' = ANY (p_stages)
               AND m.member_id NOT IN (
                   SELECT st.member_id FROM tiers.member_stages st
                   WHERE st.tenant_id = p_tenant AND st.stage <> ALL (p_stages)))
           OR (NOT 'aware' = ANY (p_stages)
               AND m.member_id IN (
                   SELECT st.member_id FROM tiers.member_stages st
                   WHERE st.tenant_id = p_tenant AND st.stage = ANY (p_stages))))
      AND (p_all IS NULL OR m.member_id IN (
               SELECT t.member_id FROM tiers.member_tags t
               WHERE t.tenant_id = p_tenant AND t.tag = ANY (p_all)
               GROUP BY t.member_id HAVING count(*) = cardinality(p_all)))
      AND (p_any IS NULL OR m.member_id IN (
               SELECT t.member_id FROM tiers.member_tags t
               WHERE t.tenant_id = p_tenant AND t.tag = ANY (p_any)))
      AND (p_none IS NULL OR m.member_id NOT IN (
               SELECT t.member_id FROM tiers.member_tags t
               WHERE t.tenant_id = p_tenant AND t.tag = ANY (p_none)))
      AND (p_groups IS NULL OR m.member_id IN (
               SELECT gm.member_id FROM tiers.group_members gm
               WHERE gm.tenant_id = p_tenant AND gm.group_id = ANY (p_groups)
                 AND gm.left_at IS NULL))
      AND (p_min IS NULL OR coalesce(s.total, 0) >= p_min)
      AND (p_max IS NULL OR coalesce(s.total, 0) <= p_max)
      AND (p_koc IS NULL OR (m.member_id IN (SELECT k.member_id FROM kocs k)) = p_koc);
$$;

-- Computes a segment's member list again and freezes it: the old list is replaced, the
-- count and computed_at set, in the caller's transaction. Returns the count.
CREATE FUNCTION tiers.segment_compute(
    p_tenant text, p_segment text, p_now timestamptz, p_tiers text[], p_lowest text,
    p_stages text[], p_all text[], p_any text[], p_none text[], p_groups text[],
    p_model jsonb, p_last_day date, p_min numeric, p_max numeric, p_koc boolean,
    p_koc_count int)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_count bigint;
BEGIN
    DELETE FROM tiers.segment_members
    WHERE tenant_id = p_tenant AND segment_id = p_segment;
    INSERT INTO tiers.segment_members (tenant_id, segment_id, member_id)
    SELECT p_tenant, p_segment, s.member_id
    FROM tiers.segment_select(p_tenant, p_tiers, p_lowest, p_stages, p_all, p_any, p_none,
                              p_groups, p_model, p_last_day, p_min, p_max, p_koc,
                              p_koc_count) AS s;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    UPDATE tiers.segments SET member_count = v_count, computed_at = p_now
    WHERE tenant_id = p_tenant AND segment_id = p_segment;
    RETURN v_count;
END $$;
