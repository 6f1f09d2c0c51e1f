-- Kafka users read model, projected from the user aggregate's events. No credential is ever stored here: only
-- the generation of the credentials in force (the password lives in the user's Kubernetes Secret).
CREATE TABLE kafka_users
(
    id             uuid PRIMARY KEY,
    org_id         uuid        NOT NULL,
    cluster_id     uuid        NOT NULL,
    name           text        NOT NULL,
    authentication text        NOT NULL,
    acls           jsonb       NOT NULL,
    quotas         jsonb       NOT NULL,
    generation     integer     NOT NULL,
    status         text        NOT NULL,
    version        bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (cluster_id, name)
);

-- The user an operation changes (user_apply, user_rotate, user_delete).
ALTER TABLE operations ADD COLUMN user_id uuid;
