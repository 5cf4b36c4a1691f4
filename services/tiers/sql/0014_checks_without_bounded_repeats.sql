-- Tag names and source channels checked without a bounded repeat, as fuli's own checks are
-- since runtime migration 0004: a bounded repeat makes every match build many more automaton
-- states, and the tag check, run for every tag a rule-tag pass writes, took 9 us a row, a
-- third of a first pass over a million members. The constraints keep their names and accept
-- exactly what they did.

ALTER TABLE tiers.member_tags
    DROP CONSTRAINT member_tags_tag_check,
    ADD CONSTRAINT member_tags_tag_check
        CHECK (tag ~ '^[a-z0-9_:-]+$' AND char_length(tag) <= 64);

ALTER TABLE tiers.member_sources
    DROP CONSTRAINT member_sources_channel_check,
    ADD CONSTRAINT member_sources_channel_check
        CHECK (channel ~ '^[a-z0-9_:-]*$' AND char_length(channel) <= 57);
