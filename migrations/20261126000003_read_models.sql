-- Read models built by the projector from polaris.events. Disposable: they can be dropped and rebuilt from the
-- event log. `version` is the last applied event sequence of the aggregate; an event at or below it is ignored.
CREATE TABLE clusters
(
    id                   uuid PRIMARY KEY,
    org_id               uuid        NOT NULL,
    name                 text        NOT NULL,
    provider             text        NOT NULL,
    region               text        NOT NULL,
    target_id            uuid,
    kafka_version        text        NOT NULL,
    metadata_version     text        NOT NULL,
    brokers              integer     NOT NULL,
    controllers          integer     NOT NULL,
    storage_gib          integer     NOT NULL,
    config               jsonb       NOT NULL,
    deletion_protection  boolean     NOT NULL,
    status               text        NOT NULL,
    status_reason        text,
    version              bigint      NOT NULL,
    current_operation_id uuid,
    bootstrap_servers    text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX clusters_org_page ON clusters (org_id, created_at, id);

CREATE TABLE operations
(
    id           uuid PRIMARY KEY,
    org_id       uuid        NOT NULL,
    kind         text        NOT NULL,
    cluster_id   uuid        NOT NULL,
    topic_id     uuid,
    state        text        NOT NULL,
    steps        jsonb       NOT NULL DEFAULT '[]',
    error        text,
    requested_by text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX operations_cluster ON operations (cluster_id, started_at);

-- The projector's position per consumer group and partition, committed with the read-model change it covers.
CREATE TABLE projector_offsets
(
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
