-- When a member's earn multiplier was last set, so a tier change delivered late (after a newer
-- one) does not overwrite the newer multiplier.
ALTER TABLE points.members ADD COLUMN multiplier_set_at timestamptz;
