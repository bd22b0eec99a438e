"""The gRPC metadata keys that say who is calling (the clients send them, sluice.auth reads them)."""

API_KEY_HEADER = "x-api-key"
INTERNAL_TOKEN_HEADER = "x-sluice-internal-token"
WORKSPACE_HEADER = "x-sluice-workspace"
