"""The `auth` schema: workspaces and API keys, shared by every service of an installation.

Staging and the scheduler both apply its migrations at start
(`sluice.db.migrate(pool, "auth", "sluice.auth_schema")`); the advisory lock of `migrate` keeps
them from applying one twice. Queries live in `sluice.workspaces`.
"""

SCHEMA = "auth"
PACKAGE = __name__
