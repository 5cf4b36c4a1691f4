-- The tenants with a task events can count for: the outbox relay sends the task-progress
-- consumer only their events (proto/events.py, TASK_PROGRESS).
CREATE VIEW rewards.task_tenants AS
    SELECT DISTINCT tenant_id FROM rewards.tasks WHERE enabled;
