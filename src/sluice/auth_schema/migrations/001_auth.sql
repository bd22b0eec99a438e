-- Workspaces and their API keys. A key is stored as the sha256 of its secret (for lookup) and a
-- bcrypt of the secret (the NATS password hash of user key_id); the secret itself never is.
CREATE TABLE auth.workspaces (
    workspace text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    webhook_secret text NOT NULL
);

CREATE TABLE auth.api_keys (
    key_id text PRIMARY KEY,
    workspace text NOT NULL REFERENCES auth.workspaces (workspace),
    name text NOT NULL DEFAULT '',
    key_hash text UNIQUE NOT NULL,
    nats_password_hash text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX api_keys_workspace ON auth.api_keys (workspace, created_at);
