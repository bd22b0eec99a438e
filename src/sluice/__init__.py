"""Sluice: the library the services, the CLI and the local stack share."""
