-- A changed tier policy re-evaluates every member of the tenant in the background. This row is
-- the record of that work, so it survives a worker crash: the worker takes the row, evaluates
-- the next batch of members after `after_member`, and moves the cursor and the count in the
-- same transaction. A new policy resets the row (a run under way starts over for the new one).
CREATE TABLE tiers.reevaluations (
    tenant_id     text        PRIMARY KEY,
    state         text        NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    after_member  text        NOT NULL DEFAULT '',
    members_done  bigint      NOT NULL DEFAULT 0 CHECK (members_done >= 0),
    members_total bigint      CHECK (members_total >= 0),
    requested_at  timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX reevaluations_unfinished ON tiers.reevaluations (requested_at)
    WHERE state <> 'done';
