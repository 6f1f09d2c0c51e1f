-- Drift read model (issue #15), projected from the drift aggregate's events: one row per (cluster, object,
-- field), its latest episode. A Secret's values are only ever hashes; nothing here is a secret.
CREATE TABLE drifts
(
    id           uuid PRIMARY KEY,
    org_id       uuid        NOT NULL,
    cluster_id   uuid        NOT NULL,
    object       text        NOT NULL,
    field        text        NOT NULL,
    expected     jsonb,
    actual       jsonb,
    changed_by   text,
    -- open, reverted, adopted or ignored
    status       text        NOT NULL,
    -- When this episode was first detected, and when the live value was last seen.
    detected_at  timestamptz NOT NULL,
    observed_at  timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolved_by  text,
    reason       text,
    -- The revert (or adoption) operation, while it runs and after.
    operation_id uuid,
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX drifts_open ON drifts (cluster_id, detected_at) WHERE status = 'open';
CREATE INDEX drifts_cluster ON drifts (cluster_id, detected_at);

-- The cluster as the API shows it: a READY cluster with an open drift is DEGRADED, its reason the first open
-- drift. Operation statuses win (SCALING stays SCALING), and the stored status stays what the cluster's own
-- events say, so replay compares the tables and this view composes them.
CREATE VIEW clusters_shown AS
SELECT c.id, c.org_id, c.name, c.namespace, c.provider, c.region, c.target_id, c.kafka_version, c.metadata_version,
       c.brokers, c.controllers, c.storage_gib, c.config, c.deletion_protection,
       CASE WHEN c.status = 'READY' AND d.object IS NOT NULL THEN 'DEGRADED' ELSE c.status END AS status,
       CASE WHEN c.status = 'READY' AND d.object IS NOT NULL
            THEN 'drift: ' || d.object || CASE WHEN d.field = '' THEN '' ELSE ' ' || d.field END
                 || CASE WHEN d.n > 1 THEN ' (and ' || (d.n - 1) || ' more)' ELSE '' END
            ELSE c.status_reason END AS status_reason,
       c.version, c.current_operation_id, c.bootstrap_servers, c.created_at, c.updated_at,
       coalesce(d.n, 0)::int AS open_drifts
FROM clusters c
LEFT JOIN LATERAL (
    SELECT count(*) AS n,
           (array_agg(object ORDER BY detected_at, id))[1] AS object,
           (array_agg(field ORDER BY detected_at, id))[1] AS field
    FROM drifts WHERE drifts.cluster_id = c.id AND drifts.status = 'open'
    HAVING count(*) > 0
) d ON true;
