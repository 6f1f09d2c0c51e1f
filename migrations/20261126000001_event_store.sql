-- The event store (postgres-es layout) doubling as the transactional outbox.
-- postgres-es inserts only the first seven columns; the outbox columns below are filled by their defaults inside
-- the same transaction, so an event and its outbox identity can never exist without each other.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    -- Global position: a sequence, so it is assigned at insert time and can commit out of order.
    position       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- The inserting transaction's id. The relay only reads rows whose xid is below the oldest running
    -- transaction (pg_snapshot_xmin), so a transaction that took a lower position and commits late is never
    -- skipped: its events stay invisible to the relay until it has finished.
    xid            xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid                         NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_relay_order ON events (xid, position);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Durable relay progress: the (xid, position) of the last event known to be acknowledged by Kafka.
CREATE TABLE relay_progress
(
    relay           text PRIMARY KEY,
    last_xid        xid8        NOT NULL,
    last_position   bigint      NOT NULL,
    published_total bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
