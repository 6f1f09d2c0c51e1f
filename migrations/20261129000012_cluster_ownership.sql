-- Tenant isolation on a target (issue: one org's cluster could take over another's namespace).
--
-- Each cluster owns a namespace of its own, recorded in ClusterRequested v3. Clusters requested before carry the
-- old rule's namespace, `polaris-<name>` (their events are upcast with it), so the backfill below is what a replay
-- of their events writes.
ALTER TABLE clusters ADD COLUMN namespace text;
UPDATE clusters SET namespace = 'polaris-' || name;
ALTER TABLE clusters ALTER COLUMN namespace SET NOT NULL;

-- Invariants enforced in the command's own transaction (never only against a read model that may lag): the
-- event store writes these rows in the transaction that appends ClusterRequested and removes them in the one
-- that appends ClusterDeleted. A second request of a taken name fails on the primary key and appends nothing.
CREATE TABLE cluster_names
(
    org_id     uuid NOT NULL,
    name       text NOT NULL,
    cluster_id uuid NOT NULL UNIQUE,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE cluster_namespaces
(
    target_id  uuid NOT NULL,
    namespace  text NOT NULL,
    cluster_id uuid NOT NULL UNIQUE,
    PRIMARY KEY (target_id, namespace)
);
-- Existing clusters, not deleted: the first of each name keeps it (earlier builds let duplicates in; those keep
-- working, but their names are not reserved twice).
INSERT INTO cluster_names (org_id, name, cluster_id)
SELECT DISTINCT ON (org_id, name) org_id, name, id FROM clusters WHERE status <> 'DELETED' ORDER BY org_id, name, created_at
ON CONFLICT DO NOTHING;
INSERT INTO cluster_namespaces (target_id, namespace, cluster_id)
SELECT DISTINCT ON (target_id, namespace) target_id, namespace, id FROM clusters
WHERE status <> 'DELETED' AND target_id IS NOT NULL ORDER BY target_id, namespace, created_at
ON CONFLICT DO NOTHING;
