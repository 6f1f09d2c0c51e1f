-- Policy bundles: versioned per org, never updated in place. Version 0 (no row) is the empty bundle.
CREATE TABLE policy_bundles
(
    org_id     uuid        NOT NULL REFERENCES orgs (id),
    version    bigint      NOT NULL CHECK (version > 0),
    rules      jsonb       NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, version)
);

-- Idempotency keys. A command that appends events inserts its key in the same transaction as the events
-- (the event repository does it), so a key is never recorded without its events nor events without their key;
-- the response is filled in right after. `request_hash` is the SHA-256 of method, path and body.
CREATE TABLE idempotency_keys
(
    org_id          uuid        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    aggregate_type  text,
    aggregate_id    text,
    sequence        bigint,
    response_status integer,
    response_body   jsonb,
    response_location text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

-- One entry per mutating request: accepted, rejected, deduplicated or dry run.
CREATE TABLE audit_entries
(
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    org_id          uuid        NOT NULL,
    actor           text        NOT NULL,
    channel         text        NOT NULL,
    at              timestamptz NOT NULL,
    request_id      text        NOT NULL,
    method          text        NOT NULL,
    resource        text        NOT NULL,
    command         text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'deduplicated', 'dry_run', 'error')),
    status          integer     NOT NULL,
    code            text,
    policy_version  bigint,
    violations      jsonb       NOT NULL DEFAULT '[]',
    idempotency_key text
);
CREATE INDEX audit_entries_org_at ON audit_entries (org_id, at, position);
