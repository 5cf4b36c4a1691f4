-- Grants to a tiers segment: the audit keeps which segment, how many members its frozen list
-- had and when that list was computed, as read at grant time (NULL for a grant of items).

ALTER TABLE points.grant_audit
    ADD COLUMN segment_id          text,
    ADD COLUMN segment_count       int,
    ADD COLUMN segment_computed_at timestamptz,
    ADD CONSTRAINT grant_audit_segment CHECK (
        (segment_id IS NULL) = (segment_count IS NULL)
        AND (segment_id IS NULL) = (segment_computed_at IS NULL)
        AND (segment_count IS NULL OR segment_count = item_count));
