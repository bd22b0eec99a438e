"""The jobs page (being built)."""

from __future__ import annotations

import streamlit as st

from sluice_dashboard import session


def render() -> None:
    session.require_services()
    st.title("jobs")
