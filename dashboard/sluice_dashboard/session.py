"""Who is signed in: the API key of this browser session, kept in its session state only
(never in the URL, a log or a file), and the Services that act with it."""

from __future__ import annotations

import streamlit as st

from sluice.v1 import admin_pb2
from sluice_dashboard.client import ADMIN, Addresses, ServiceError, Services, addresses_from_env

API_KEY = "sluice_api_key"
WORKSPACE = "sluice_workspace"
ADDRESSES = "sluice_addresses"


def addresses() -> Addresses:
    """The services' addresses: the session's (tests set them), else the environment's."""
    found = st.session_state.get(ADDRESSES)
    return found if isinstance(found, Addresses) else addresses_from_env()


def services() -> Services | None:
    """The signed-in session's Services, or None."""
    key = st.session_state.get(API_KEY)
    return Services(addresses(), key) if key else None


def sign_in(api_key: str) -> str | None:
    """Check `api_key` with the scheduler; None once signed in, else why not."""
    candidate = Services(addresses(), api_key.strip())
    try:
        workspace = candidate.call(ADMIN, "GetWorkspace", admin_pb2.GetWorkspaceRequest())
    except ServiceError as error:
        if error.code.name == "UNAUTHENTICATED":
            return "That API key is not known (or was revoked)."
        return str(error)
    st.session_state[API_KEY] = api_key.strip()
    st.session_state[WORKSPACE] = workspace.workspace
    return None


def sign_out() -> None:
    for name in (API_KEY, WORKSPACE):
        st.session_state.pop(name, None)


def require_services() -> Services:
    """The session's Services; shows the sign-in form and stops the page when signed out."""
    found = services()
    if found is not None:
        return found
    st.title("Sign in to Sluice")
    st.write(
        "Paste an API key. The local stack's key is in `.sluice/credentials.json`; "
        "`sluice admin create-api-key` makes one for a workspace."
    )
    with st.form("sign_in"):
        key = st.text_input("API key", type="password", key="sign_in_key")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        why = sign_in(key or "")
        if why is None:
            st.rerun()
        st.error(why)
    st.stop()
    raise AssertionError("unreachable")  # st.stop raises
