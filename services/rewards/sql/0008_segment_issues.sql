-- Issues to a tiers segment: the audit keeps which segment, how many members its frozen list
-- had and when that list was computed, as read at issue time (NULL for an issue to a list of
-- members).

ALTER TABLE rewards.issue_audit
    ADD COLUMN segment_id          text,
    ADD COLUMN segment_count       int,
    ADD COLUMN segment_computed_at timestamptz,
    ADD CONSTRAINT issue_audit_segment CHECK (
        (segment_id IS NULL) = (segment_count IS NULL)
        AND (segment_id IS NULL) = (segment_computed_at IS NULL)
        AND (segment_count IS NULL OR segment_count = member_count));
