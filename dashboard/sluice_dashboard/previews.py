"""Previews of a page of a batch's objects, from staging's GetThumbnails, cached.

The cache key holds the workspace (batch ids repeat across workspaces), the batch, the names and
the size; a failed call raises and is not cached. Objects never change under a name while a
batch lives, so ten minutes of reuse shows nothing stale.
"""

from __future__ import annotations

import streamlit as st

from sluice.v1 import staging_pb2
from sluice_dashboard.client import STAGING, Services

TTL_S = 600
TIMEOUT_S = 20.0

Preview = tuple[str, bytes, str]
"""(name, jpeg, error): the JPEG is empty when error says why there is no preview."""


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=500)
def previews(
    _svc: Services, workspace: str, batch_id: str, names: tuple[str, ...], side: int
) -> list[Preview]:
    found = _svc.call(
        STAGING,
        "GetThumbnails",
        staging_pb2.GetThumbnailsRequest(batch_id=batch_id, names=list(names), max_side=side),
        timeout_s=TIMEOUT_S,
    )
    return [(t.name, bytes(t.jpeg), t.error) for t in found.thumbnails]
