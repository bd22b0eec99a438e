"""What every page shares: showing a failed call, recovering when a service returns, paging
through a server-side list with its page tokens."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from streamlit.errors import StreamlitAPIException

from sluice_dashboard.client import ServiceError

T = TypeVar("T")
RETRY_S = 2.0
_DOWN_SINCE = "_sluice_down_since"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#$~|:])")


def plain(text: str) -> str:
    """`text` for a markdown element (st.error, st.success) shown as itself: `$` would start
    LaTeX, `:x:` an emoji, `*` emphasis, and workflow errors are full of `$steps.x` selectors."""
    return _MARKDOWN.sub(r"\\\1", text)


# A page's URL path where it differs from its file name in page_scripts/ (app.py's st.navigation).
_URL_PATHS = {"new_job": "new-job"}


def page_link(page: str, label: str, **query: str) -> None:
    """A link to page `page` (its file name in page_scripts/, without .py) with query parameters.

    st.page_link knows only the pages st.navigation registered; where a page runs alone (as
    under AppTest) the same link is drawn as the page's relative URL, which the app resolves.
    """
    try:
        st.page_link(f"page_scripts/{page}.py", label=label, query_params=query)
    except StreamlitAPIException:
        url = _URL_PATHS.get(page, page) + (f"?{urllib.parse.urlencode(query)}" if query else "")
        st.link_button(label, url)


def show_error(error: ServiceError) -> None:
    """A refused call as its reason; a service that is down as a warning, and the page is run
    again every RETRY_S seconds until it answers."""
    if error.down:
        st.warning(plain(str(error)), icon=":material/hourglass_empty:")
        _retry_soon()
    else:
        st.error(plain(str(error)))


@st.fragment(run_every=RETRY_S)
def _retry_soon() -> None:
    # Runs when drawn and then every RETRY_S; once RETRY_S has passed since a service was first
    # seen down in this run of the page, it runs the whole page again (one rerun however many
    # warnings the page drew).
    now = time.monotonic()
    since = st.session_state.setdefault(_DOWN_SINCE, now)
    if now - since >= RETRY_S:
        del st.session_state[_DOWN_SINCE]
        st.rerun(scope="app")


def guarded(render: Callable[[], T]) -> T | None:
    """Run `render`; a ServiceError it raises is shown instead of a traceback."""
    try:
        return render()
    except ServiceError as error:
        show_error(error)
        return None


class Pager:
    """Forward page tokens of one list, kept in the session so Previous works too.

    `token` is the current page's token; after fetching it, `controls(next_token)` draws
    Previous/Next and the page number. `reset()` starts again (a filter changed).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        state = st.session_state.setdefault(key, {"tokens": [""], "index": 0})
        self._state: dict[str, object] = state

    @property
    def _tokens(self) -> list[str]:
        tokens = self._state["tokens"]
        assert isinstance(tokens, list)
        return tokens

    @property
    def index(self) -> int:
        index = self._state["index"]
        assert isinstance(index, int)
        return index

    @property
    def token(self) -> str:
        return self._tokens[self.index]

    def reset(self) -> None:
        self._state["tokens"], self._state["index"] = [""], 0

    def controls(self, next_token: str) -> None:
        previous, label, following = st.columns([1, 2, 1])
        if previous.button("← Previous", key=f"{self.key}_prev", disabled=self.index == 0):
            self._state["index"] = self.index - 1
            st.rerun()
        label.caption(f"page {self.index + 1}")
        if following.button("Next →", key=f"{self.key}_next", disabled=not next_token):
            del self._tokens[self.index + 1 :]
            self._tokens.append(next_token)
            self._state["index"] = self.index + 1
            st.rerun()
