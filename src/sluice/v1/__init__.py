"""Code generated from protos/sluice/v1 by scripts/gen_protos.py. Do not edit."""
