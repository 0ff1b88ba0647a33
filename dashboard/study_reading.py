"""What the Reader study page does with a signed-in person, without Streamlit: the page's one save function
and the checks it makes on every page run (so the tests can drive them from many processes at once).

The identity (``melanet.studies.access.Identity``) lives in the server's session state, put there only by
``access.sign_in`` with a code; the browser holds nothing that names a reader, and the URL carries only
the study's name.
"""

from __future__ import annotations

from typing import Any

from melanet.studies import access, responses
from melanet.studies import study as study_module


def save_answer(study: study_module.Study, identity: access.Identity, *, phase: str, case: str, decision: str,
                confidence: int, seconds: float, note: str = "") -> dict[str, Any]:
    """Save one answer of the signed-in reader (never of a name typed anywhere): AccessError when the identity
    is not a reader of this study any more (revoked, another study) or the study is closed."""
    if identity.role != access.READER or not access.still_valid(study, identity):
        raise access.AccessError("sign in with your reader code to answer")
    return responses.record_answer(study, reader=identity.reader or "", phase=phase, case=case, decision=decision,
                                   confidence=confidence, seconds=seconds, note=note)


def client_of(ip_address: str | None) -> str:
    """The key of the wrong-code limit: the browser's address as the server sees it ("localhost" for a
    browser on the server's own machine, where Streamlit gives no address)."""
    return ip_address or "localhost"
