-- Targets are platform infrastructure: platform admins register them (org_id NULL) from credentials the platform
-- installed (a kubeconfig path relative to the server's targets directory, or a Secret reference), and grant
-- orgs their use. Targets registered by an org in earlier builds keep working: they are granted to that org.
ALTER TABLE targets ALTER COLUMN org_id DROP NOT NULL;
-- `namespace/name` of a Kubernetes Secret (key `kubeconfig`) the workers read with their own credentials.
ALTER TABLE targets ADD COLUMN kubeconfig_secret text;
CREATE UNIQUE INDEX targets_platform_name ON targets (name) WHERE org_id IS NULL;

CREATE TABLE target_grants
(
    target_id  uuid        NOT NULL REFERENCES targets (id),
    org_id     uuid        NOT NULL REFERENCES orgs (id),
    granted_by text        NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_id, org_id)
);
CREATE INDEX target_grants_org ON target_grants (org_id);
INSERT INTO target_grants (target_id, org_id, granted_by)
SELECT id, org_id, 'migration: registered by the org' FROM targets WHERE org_id IS NOT NULL;
