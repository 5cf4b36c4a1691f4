-- Worker heartbeats: every worker process (`fuli worker`, or the one `fuli up` runs) records
-- here, every FULI_WORKER_HEARTBEAT_S, that its parts are running. /health/ready reads the age
-- of the newest beat; `fuli worker --check` (a liveness probe) the newest beat of its own host.
-- Times are the database's, so the clocks of the hosts do not matter.
CREATE TABLE fuli.worker_heartbeats (
    worker_id    text        PRIMARY KEY,  -- host:pid
    host         text        NOT NULL,
    pid          int         NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_beat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_heartbeats_host ON fuli.worker_heartbeats (host, last_beat_at);
