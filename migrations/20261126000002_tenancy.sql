-- Organizations and API tokens. Tokens are stored as SHA-256 hashes only; the secret is shown once.
CREATE TABLE orgs
(
    id         uuid PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens
(
    id             uuid PRIMARY KEY,
    org_id         uuid        NOT NULL REFERENCES orgs (id),
    name           text        NOT NULL,
    role           text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    platform_admin boolean     NOT NULL DEFAULT false,
    token_hash     bytea       NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
