-- A completion whose payment failed waits before the next attempt, longer after each failure,
-- so completions that cannot be paid (a perk out of stock) never keep the periodic payer from
-- the others; due ones are taken in the order they fell due.
ALTER TABLE rewards.task_progress
    ADD COLUMN pay_attempts int NOT NULL DEFAULT 0 CHECK (pay_attempts >= 0),
    ADD COLUMN pay_after    timestamptz;

DROP INDEX rewards.task_progress_unpaid;
CREATE INDEX task_progress_unpaid ON rewards.task_progress ((coalesce(pay_after, completed_at)))
    WHERE completed_at IS NOT NULL AND rewarded_at IS NULL;
