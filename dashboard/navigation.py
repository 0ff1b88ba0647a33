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

A deep link such as ``/predict`` makes the browser log two 404s (``/predict/_stcore/health`` and
``/predict/_stcore/host-config``) before the page connects. Nothing this app can do under
``streamlit run app.py`` removes them without breaking the app (checked in Streamlit 1.67's installed
source, ``streamlit/`` below):

- The frontend decides where the server is before any script runs. ``static/static/js/index.DormvYxC.js``
  (minified, line 32): ``PD()`` takes ``window.__streamlit.BACKEND_BASE_URL`` or else the page's own URL and
  returns the path and its parent (``[/predict, /]``); ``VD()`` pings ``<base>/_stcore/health`` and
  ``<base>/_stcore/host-config`` for each in turn and moves to the next on any failure, so ``/predict/...``
  is always asked first.
- Answering those two with 200 would be worse than the 404: the first base that answers becomes the
  server's address (line 35: ``pingServer`` keeps its index and ``connectToWebSocket`` opens
  ``/predict/_stcore/stream`` from it) and page links would be built under ``/predict``
  (line 39, ``maybeUpdatePageUrl`` uses the connected base's pathname). A redirect is followed by
  ``fetch`` and counts as a success the same way.
- The only switch that skips the probe is ``window.__streamlit`` (read once, when the bundle loads:
  ``var gD=``, line 32), which must be set by a script in ``index.html`` before the bundle. Streamlit
  serves ``static/index.html`` as a plain file (``web/server/starlette/starlette_static_routes.py``
  line 179, ``FileResponse(self._index_path)``); no config option adds to it (``server.baseUrlPath``
  only moves every path under a prefix, so ``/<base>/predict`` probes ``/<base>/predict/_stcore/...``).
  The 404 itself is deliberate: the same file, lines 44-54 and 185-196, reserves paths ending in
  ``_stcore/health`` / ``_stcore/host-config`` so they never fall back to ``index.html``.
- Code in ``app.py`` cannot add a route or rewrite ``index.html`` in time: a script first runs when a
  browser session connects, i.e. after the probe, so the first deep link of every fresh server would
  still log both 404s; and the running Starlette app is reachable only through private objects
  (``web/bootstrap.py`` line 501 keeps ``Server`` in a local; ``web/server/starlette/starlette_server.py``
  line 393 builds the app inside ``UvicornServer.start``).
- ``st.App`` could do it (a middleware that puts ``window.__streamlit = {BACKEND_BASE_URL: ...}`` into
  the served ``index.html``; ``web/cli.py`` lines 419-427 make ``streamlit run app.py`` start such an
  app). That turns the dashboard into an ASGI app under uvicorn, imports ``app.py`` as a module as well
  as running it as the script, and depends on ``window.__streamlit``, an undocumented frontend setting
  meant for hosts that serve the page apart from the server; we do not take that on for two console lines.

Upstream: streamlit/streamlit#7074 (open; a maintainer, 2026-07-16: expected behaviour while the
frontend discovers its base URL, "the initial 404 checks can be ignored"); PR #9485 (base path in the
initial HTML) was closed unmerged; PR #11537 (``MAIN_PAGE_BASE_URL``) notes that removing these 404s
needs a non-static ``index.html``, which Streamlit has not built. The browser test
``tests/test_browser_paths_and_decision.py`` therefore allows exactly these two 404s for the path just
opened, and no other 4xx.
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
    if not _in_script_run():
        return
    root = st.Page(root_script, title=pages[0].title, url_path=ROOT_PATH, default=True, visibility="hidden")
    page = st.navigation([*pages, root, *aliases(pages, other_paths)])
    _inside.value = True
    try:
        page.run()
    finally:
        _inside.value = False


def _in_script_run() -> bool:
    """Whether Streamlit is running this script for a session. Not so when a process pool's spawned worker
    re-imports the parent's ``__main__``, which Streamlit sets to the script it runs (``app.py`` or a page):
    the import must then do nothing."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


def run_alone(page: st.Page) -> None:
    """``st.navigation`` over ``page`` alone, with no sidebar entry (the reading-only server): every path
    of the app then serves that page."""
    if not _in_script_run():
        return
    _inside.value = True
    try:
        st.navigation([page], position="hidden").run()
    finally:
        _inside.value = False


def through_app() -> None:
    """First call of every page: when Streamlit ran this page without ``app.py`` (see the module's
    docstring), run ``app.py`` (which runs this page within the app's navigation) and stop here."""
    if getattr(_inside, "value", False) or not _in_script_run():
        return
    # not run as "__main__": runpy would swap sys.modules["__main__"] for app.py while it runs, and a process
    # pool spawned meanwhile (data decoding) would re-run app.py in each worker
    runpy.run_path(str(APP), run_name="melanet_dashboard_app")
    st.stop()
