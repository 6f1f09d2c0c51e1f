-- Kubernetes clusters Polaris deploys into. Placement picks the org's target for a cluster's (provider, region).
CREATE TABLE targets
(
    id           uuid PRIMARY KEY,
    org_id       uuid        NOT NULL REFERENCES orgs (id),
    name         text        NOT NULL,
    provider     text        NOT NULL CHECK (provider IN ('aws', 'gcp', 'azure', 'onprem')),
    region       text        NOT NULL,
    kube_context text,
    -- Path of the kubeconfig file, on the worker's machine, that reaches this target.
    kubeconfig   text,
    status       text        NOT NULL DEFAULT 'active',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, provider, region),
    UNIQUE (org_id, name)
);

-- Brokers of each cluster by Kafka node id, projected from ClusterReady.
CREATE TABLE brokers
(
    cluster_id uuid    NOT NULL,
    node_id    integer NOT NULL,
    role       text    NOT NULL,
    status     text    NOT NULL,
    PRIMARY KEY (cluster_id, node_id)
);
