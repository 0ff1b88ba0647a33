"""Issue 36: every term a reviewer found unexplained has a glossary entry, and each page that says the term
offers its entry (a ``help=`` tooltip through ``glossary.help_for`` or a ``glossary.line`` caption)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard import glossary

REPOSITORY = Path(__file__).resolve().parents[1]
LISTED = ["VGG-GAP", "CycleGAN", "focal loss", "KID", "block5c_add", "Hillis ddf", "OR variance components",
          "threshold of 128 bits"]
# the words a page uses for a term, where they differ from its glossary key
SAID_AS = {"threshold of 128 bits": "of 128 bits", "focal loss": "focal-loss"}


@pytest.mark.parametrize("term", LISTED)
def test_each_listed_term_has_an_entry(term: str) -> None:
    entry = glossary.TERMS.get(term, "")
    assert len(entry.split()) >= 8, f"{term}: no plain-language entry in dashboard/glossary.py"


def _offered(source: str, term: str) -> bool:
    calls = re.findall(r"glossary\.(?:help_for|line)\(([^)]*)\)", source)
    return any(f'"{term}"' in call for call in calls)


@pytest.mark.parametrize("page", sorted((REPOSITORY / "pages").glob("*.py")), ids=lambda path: path.stem)
def test_a_page_that_says_a_listed_term_offers_its_entry(page: Path) -> None:
    source = page.read_text(encoding="utf-8")
    body = source.split('"""', 2)[-1]  # the module docstring is for programmers
    said = [term for term in LISTED if SAID_AS.get(term, term) in body and term != "block5c_add"]
    missing = [term for term in said if not _offered(source, term)]
    assert missing == [], f"{page.name} says {missing} without its glossary entry"


def test_the_check_notices_a_term_without_its_entry() -> None:
    assert not _offered('st.markdown("a VGG-GAP classifier")', "VGG-GAP")
    assert _offered('st.markdown("a VGG-GAP classifier", help=glossary.help_for("GAP", "VGG-GAP"))', "VGG-GAP")
