"""Block plugins: one folder per block, one module per version (`<name>/v1.py`).

Each version module exposes `MANIFEST` (a `BlockManifest`). The built-in set is listed in
`sluice.workflow.registry`; plugin packages add theirs through the `sluice.workflow_blocks`
entry point group (see `sluice.workflow.plugins`).
"""
