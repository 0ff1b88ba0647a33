"""The dashboard's navigation: every page opens at its file name (``/predict`` for ``pages/predict.py``)
and at the path it had before (``/prediction``), which moves on to the file-name path.

Two Streamlit 1.67 behaviours shape this module:

- ``st.Page`` takes one ``url_path``, so each earlier path is a second, hidden page whose only work is
  ``st.switch_page`` to the real one (the address bar then shows the file-name path and the sidebar
  marks the page).
- While a folder named ``pages/`` sits beside ``app.py``, the *first* script run of a server process
  follows Streamlit's old folder-based navigation (``PagesManager.uses_pages_directory`` stays true
  until some run calls ``st.navigation``): a first request to ``/predict`` then runs ``pages/predict.py``
  alone, without ``app.py`` (no page config, no navigation). Every page therefore opens with
  :func:`through_app`, which runs ``app.py`` instead when the page was started that way.
"""

from __future__ import annotations

import runpy
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[1] / "app.py"

ROOT_PATH = "start"  # the hidden default page's own (reserved) path
_inside = threading.local()  # a script run is one thread: true while app.py's navigation runs a page


def _forward(target: st.Page):
    def forward() -> None:
        st.switch_page(target)

    return forward


def aliases(pages: Sequence[st.Page], other_paths: Mapping[str, Sequence[str]]) -> list[st.Page]:
    """Hidden pages at ``other_paths`` ({page title: [url path, ...]}) that each switch to that page."""
    by_title = {page.title: page for page in pages}
    unknown = sorted(set(other_paths) - set(by_title))
    if unknown:
        raise ValueError(f"other paths name pages that do not exist: {unknown}; pages: {sorted(by_title)}")
    return [st.Page(_forward(by_title[title]), title=title, url_path=path, visibility="hidden")
            for title, paths in other_paths.items() for path in paths]


def run(pages: Sequence[st.Page], other_paths: Mapping[str, Sequence[str]], root_script: str) -> None:
    """``st.navigation`` over ``pages`` (plus the hidden ``other_paths``) and run the chosen page.

    The app's root ``/`` is a hidden default page that runs ``root_script`` (the first page's file) itself:
    Streamlit serves its default page at ``/`` only and reserves, without serving, that page's own path,
    so a default ``pages/overview.py`` would never open at ``/overview``. (Not a switch to the first page:
    a click in the sidebar while that switch is under way could be lost.)
    """
    root = st.Page(root_script, title=pages[0].title, url_path=ROOT_PATH, default=True, visibility="hidden")
    page = st.navigation([*pages, root, *aliases(pages, other_paths)])
    _inside.value = True
    try:
        page.run()
    finally:
        _inside.value = False


def run_alone(page: st.Page) -> None:
    """``st.navigation`` over ``page`` alone, with no sidebar entry (the reading-only server): every path
    of the app then serves that page."""
    _inside.value = True
    try:
        st.navigation([page], position="hidden").run()
    finally:
        _inside.value = False


def through_app() -> None:
    """First call of every page: when Streamlit ran this page without ``app.py`` (see the module's
    docstring), run ``app.py`` (which runs this page within the app's navigation) and stop here."""
    if getattr(_inside, "value", False):
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()
