"""Plain language: every technical term a dermatologist meets has a one-line help (dashboard.glossary) that
the pages show as a (?) tooltip, and every model card opens with a "For clinicians" summary whose figures
come from the run's own predictions."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import glossary
from melanet.reports import model_card

REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED = REPOSITORY / "models" / "demo"
TERMS = ["GAP", "block5_conv3", "KID", "ECE", "Brier", "DeLong", "Holm", "kappa", "rating AUC", "realism", "focal loss"]
# page -> terms its tooltips explain
PAGES = {"compare": ["DeLong", "Holm", "ECE", "Brier", "AUC"], "gradcam": ["GAP", "block5_conv3", "Grad-CAM"],
         "lesions": ["KID", "realism"], "umap": ["UMAP", "domain gap"], "reader_study": ["kappa", "rating AUC"],
         "train": ["focal loss", "GAP"]}


def test_every_term_has_one_plain_line() -> None:
    for term in TERMS:
        line = glossary.TERMS[term]
        assert 20 < len(line) < 260 and "\n" not in line, term


def _help_texts(app: AppTest) -> str:
    """Every help text the page sent (the (?) tooltips of titles, widgets and metrics)."""
    found = []

    def walk(node) -> None:
        text = getattr(getattr(node, "proto", None), "help", None)
        if isinstance(text, str) and text:
            found.append(text)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(app._tree)
    return "\n".join(found)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_each_page_explains_its_terms(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(REPOSITORY / "models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(str(REPOSITORY / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(f"pages/{page}.py")
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    shown = _help_texts(app) + "\n".join(str(caption.value) for caption in app.caption)
    for term in PAGES[page]:
        assert glossary.TERMS[term][:40] in shown, (page, term)


def _missed_at(run: Path, threshold: float) -> tuple[int, int]:
    with open(run / "predictions.csv", newline="") as handle:
        rows = [(int(row["label"]), float(row["prob_malignant"])) for row in csv.DictReader(handle)]
    melanomas = [probability for label, probability in rows if label == 1]
    return sum(probability <= threshold for probability in melanomas), len(melanomas)


@pytest.mark.parametrize("name", ["vgg_gap", "augment5x", "augment10x", "melanet"])
def test_each_shipped_card_opens_for_clinicians_with_its_own_misses(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPOSITORY)
    run = Path("models") / "demo" / name
    shipped = (run / "model_card.md").read_text()
    sections = re.findall(r"^## (.+)$", shipped, flags=re.MULTILINE)
    assert sections[0] == "For clinicians"
    summary = shipped.split("## For clinicians", 1)[1].split("\n## ", 1)[0]
    assert summary == model_card.render(run).split("## For clinicians", 1)[1].split("\n## ", 1)[0]  # regenerated
    missed, melanomas = _missed_at(run, 0.5)  # "malignant when p > threshold": p <= 0.5 is a miss
    assert f"missed {missed} of the {melanomas} melanomas" in summary
    assert "Not a medical device" in summary and "training images of `data/sample`" in summary
