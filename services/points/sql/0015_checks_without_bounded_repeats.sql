-- A rule's action checked without a bounded repeat, as fuli's own checks are since runtime
-- migration 0004 (a bounded repeat makes every match build many more automaton states); the
-- constraints keep their names and accept exactly what they did.

ALTER TABLE points.default_rules
    DROP CONSTRAINT default_rules_action_check,
    ADD CONSTRAINT default_rules_action_check
        CHECK (action ~ '^[a-z][a-z0-9_]*$' AND char_length(action) <= 64);

ALTER TABLE points.rules
    DROP CONSTRAINT rules_action_check,
    ADD CONSTRAINT rules_action_check
        CHECK (action ~ '^[a-z][a-z0-9_]*$' AND char_length(action) <= 64);
