"""The dashboard's entry script (`streamlit run`): the pages, and who is signed in."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from sluice_dashboard import session

PAGES = Path(__file__).parent / "page_scripts"  # not pages/, which Streamlit would serve on its own

st.set_page_config(page_title="Sluice", page_icon=":material/water:", layout="wide")

navigation = st.navigation(
    {
        "Jobs": [
            st.Page(
                PAGES / "jobs.py", title="Jobs", icon=":material/list_alt:", url_path="jobs", default=True
            ),
            st.Page(PAGES / "job.py", title="Job", icon=":material/search:", url_path="job"),
            st.Page(PAGES / "new_job.py", title="New job", icon=":material/add:", url_path="new-job"),
        ],
        "Data": [
            st.Page(PAGES / "batches.py", title="Batches", icon=":material/folder:", url_path="batches"),
            st.Page(PAGES / "batch.py", title="Batch", icon=":material/photo_library:", url_path="batch"),
        ],
        "Workflows": [
            st.Page(
                PAGES / "workflows.py",
                title="Workflows",
                icon=":material/account_tree:",
                url_path="workflows",
            ),
            st.Page(PAGES / "models.py", title="Models", icon=":material/model_training:", url_path="models"),
        ],
        "Account": [st.Page(PAGES / "usage.py", title="Usage", icon=":material/payments:", url_path="usage")],
    }
)
if session.services() is not None:
    with st.sidebar:
        st.caption(f"workspace **{st.session_state.get(session.WORKSPACE, '?')}**")
        if st.button("Sign out"):
            session.sign_out()
            st.rerun()
navigation.run()
