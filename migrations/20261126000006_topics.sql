-- Topics read model, projected from the topic aggregate's events.
CREATE TABLE topics
(
    id                  uuid PRIMARY KEY,
    org_id              uuid        NOT NULL,
    cluster_id          uuid        NOT NULL,
    name                text        NOT NULL,
    partitions          integer     NOT NULL,
    replication_factor  integer     NOT NULL,
    config              jsonb       NOT NULL,
    deletion_protection boolean     NOT NULL,
    status              text        NOT NULL,
    version             bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    UNIQUE (cluster_id, name)
);
