-- A perk's sku checked without a bounded repeat, as fuli's own checks are since runtime
-- migration 0004 (a bounded repeat makes every match build many more automaton states); the
-- constraint keeps its name and accepts exactly what it did.

ALTER TABLE rewards.perks
    DROP CONSTRAINT perks_sku_check,
    ADD CONSTRAINT perks_sku_check
        CHECK (sku ~ '^[A-Za-z0-9._:-]+$' AND char_length(sku) <= 128);
