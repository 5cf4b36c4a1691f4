-- Tasks: definitions (audited like boxes), members' progress per task and period, the local
-- days with a matching action of streak tasks, and the reward of each completion.
--
-- A period is the tenant-local day (2026-12-06), ISO week (2026-W49), month (2026-12), 'once',
-- or for a streak the local date of the first day of the run that completed it.

CREATE TABLE rewards.tasks (
    tenant_id        text        NOT NULL,
    task_id          text        NOT NULL,
    name             text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    kind             text        NOT NULL
                                 CHECK (kind IN ('once', 'daily', 'weekly', 'monthly', 'streak')),
    action           text        NOT NULL,
    target           int         NOT NULL CHECK (target >= 1),
    min_amount_cents bigint      CHECK (min_amount_cents >= 1),
    attributes       jsonb,
    streak_days      int         CHECK (streak_days >= 2),
    starts_at        timestamptz,
    ends_at          timestamptz,
    tiers            text[],
    after_task       text,
    reward           jsonb       NOT NULL,
    claim            text        NOT NULL CHECK (claim IN ('auto', 'manual')),
    enabled          boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, task_id),
    CHECK ((kind = 'streak') = (streak_days IS NOT NULL)),
    CHECK (ends_at > starts_at),
    CHECK (after_task <> task_id)
);
CREATE INDEX tasks_by_action ON rewards.tasks (tenant_id, action);
CREATE INDEX tasks_by_after ON rewards.tasks (tenant_id, after_task)
    WHERE after_task IS NOT NULL;

CREATE TABLE rewards.task_audit (
    tenant_id  text        NOT NULL,
    task_id    text        NOT NULL,
    change_id  bigint      GENERATED ALWAYS AS IDENTITY,
    key_id     text,
    definition jsonb       NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, task_id, change_id)
);

-- A member's progress in one period of a task. progress never passes the target it was counted
-- against; completed_at is set once, with the reward and claim mode of that moment, so a later
-- change of the definition does not change what a completion pays. A manual task's row is
-- claimed (claim_id, unique per tenant) before it is paid; rewarded_at is set with the payment.
CREATE TABLE rewards.task_progress (
    tenant_id    text        NOT NULL,
    task_id      text        NOT NULL,
    member_id    text        NOT NULL,
    period       text        NOT NULL,
    progress     int         NOT NULL CHECK (progress >= 0),
    last_day     date,
    completed_at timestamptz,
    reward       jsonb,
    manual       boolean,
    claim_id     text,
    claimed_at   timestamptz,
    rewarded_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, task_id, member_id, period),
    UNIQUE (tenant_id, claim_id),
    CHECK ((completed_at IS NULL) = (reward IS NULL)),
    CHECK ((completed_at IS NULL) = (manual IS NULL)),
    CHECK (claimed_at IS NULL OR completed_at IS NOT NULL),
    CHECK ((claim_id IS NULL) = (claimed_at IS NULL)),
    CHECK (rewarded_at IS NULL OR completed_at IS NOT NULL),
    CHECK (rewarded_at IS NULL OR NOT manual OR claimed_at IS NOT NULL)
);
CREATE INDEX task_progress_by_member ON rewards.task_progress (tenant_id, member_id);
CREATE INDEX task_progress_unpaid ON rewards.task_progress (completed_at)
    WHERE completed_at IS NOT NULL AND rewarded_at IS NULL;

-- The local days on which a member had a matching action, per streak task.
CREATE TABLE rewards.task_streak_days (
    tenant_id text NOT NULL,
    task_id   text NOT NULL,
    member_id text NOT NULL,
    day       date NOT NULL,
    PRIMARY KEY (tenant_id, task_id, member_id, day)
);
