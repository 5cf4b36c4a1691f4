-- The tables the lifecycle, tags and segments features share: each member's AIPL stage (and
-- the stage history the funnel reads) and each member's tags. The lifecycle feature writes
-- the stages, the tags feature the tags; segments read both. Their functions and the rest of
-- each feature's tables come in the features' own migrations.

CREATE TABLE tiers.lifecycle_models (
    tenant_id  text        PRIMARY KEY,
    model      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A member's current stage: since when, and the local day of the computation that set it.
CREATE TABLE tiers.member_stages (
    tenant_id    text        NOT NULL,
    member_id    text        NOT NULL,
    stage        text        NOT NULL
                 CHECK (stage IN ('aware', 'interested', 'purchased', 'loyal')),
    since        timestamptz NOT NULL,
    computed_day date        NOT NULL,
    PRIMARY KEY (tenant_id, member_id),
    CHECK (NOT tiers.is_escrow(member_id))
);
CREATE INDEX member_stages_by_stage ON tiers.member_stages (tenant_id, stage);

-- Every change of stage (from_stage NULL: the member's first stage).
CREATE TABLE tiers.stage_history (
    tenant_id  text        NOT NULL,
    member_id  text        NOT NULL,
    change_id  bigint      GENERATED ALWAYS AS IDENTITY,
    from_stage text,
    to_stage   text        NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, member_id, change_id)
);
CREATE INDEX stage_history_by_time ON tiers.stage_history (tenant_id, at);

-- Tag groups: a tag named `group:value` belongs to the group `group`, which must exist.
CREATE TABLE tiers.tag_groups (
    tenant_id   text        NOT NULL,
    tag_group   text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, tag_group)
);

-- A member's tags: set by an operator (manual) or by the daily rules (rule).
CREATE TABLE tiers.member_tags (
    tenant_id text        NOT NULL,
    member_id text        NOT NULL,
    tag       text        NOT NULL CHECK (tag ~ '^[a-z0-9_:-]{1,64}$'),
    source    text        NOT NULL CHECK (source IN ('manual', 'rule')),
    since     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, member_id, tag),
    CHECK (NOT tiers.is_escrow(member_id))
);
CREATE INDEX member_tags_by_tag ON tiers.member_tags (tenant_id, tag, member_id);
