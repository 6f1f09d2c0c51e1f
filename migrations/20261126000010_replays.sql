-- `polaris admin replay` bookkeeping: one row per replay schema, its position in the event store (committed with
-- each batch it applies, so a killed replay resumes) and its verdict.
CREATE TABLE replays
(
    schema_name    text PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_xid       xid8        NOT NULL DEFAULT '0',
    last_position  bigint      NOT NULL DEFAULT 0,
    events_applied bigint      NOT NULL DEFAULT 0,
    finished_at    timestamptz,
    identical      boolean
);
