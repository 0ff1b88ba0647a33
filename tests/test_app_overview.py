"""The Overview page in AppTest: no grey 'None' cells, results-only rows labelled, each Table 1 once (copies
of the same results named beside it) with only the newest expanded, and a next step for every page."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_fixture

REPOSITORY = Path(__file__).resolve().parents[1]
APP = str(REPOSITORY / "app.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    demo = app_fixture.write_results(folder / "demo", with_model=False)
    shutil.copytree(demo, folder / "copy")  # the same results again (as a seed folder of the demo is)
    newer = folder / "newer"
    shutil.copytree(demo, newer)
    table = newer / "table.md"
    table.write_text(table.read_text() + "\n(another reproduction)\n")
    stamp = time.time() + 60
    os.utime(table, (stamp, stamp))
    return folder


@pytest.fixture()
def overview(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(APP, default_timeout=90)
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def runs_table(app: AppTest):
    return next(frame.value for frame in app.dataframe if "run" in frame.value.columns and "state" in frame.value.columns)


def test_no_cell_is_none_and_results_rows_are_labelled(overview: AppTest) -> None:
    table = runs_table(overview)
    assert not table.isna().any().any(), table[table.isna().any(axis=1)]
    assert not table.astype(str).isin(["None", "nan", ""]).any().any()
    gan = table.set_index("run").loc["models/demo/gan"]
    assert gan["AUC"] == gan["sensitivity"] == "–"
    assert table.set_index("run").loc["models/demo"]["kind"] == "results only (tables, no model)"
    assert re.fullmatch(r"0\.\d{3}", table.set_index("run").loc["models/demo/melanet"]["AUC"])


def test_each_table_once_and_only_the_newest_expanded(overview: AppTest) -> None:
    expanders = [expander for expander in overview.expander if expander.label.startswith("Table 1 of")]
    labels = [expander.label for expander in expanders]
    assert labels == ["Table 1 of models/newer", "Table 1 of models/copy (same results in models/demo)"] or \
        labels == ["Table 1 of models/newer", "Table 1 of models/demo (same results in models/copy)"], labels
    assert [expander.proto.expanded for expander in expanders] == [True, False]


def test_what_to_do_next_names_every_page(overview: AppTest) -> None:
    # distinct titles: the reading-only server names the Reader study page a second time
    titles = list(dict.fromkeys(re.findall(r'st.Page\([^)]*title="([^"]+)"', (REPOSITORY / "app.py").read_text())))
    assert len(titles) == 9
    steps = next(markdown.value for markdown in overview.markdown if markdown.value.startswith("1. "))
    missing = [title for title in titles if title != "Overview" and f"**{title}**" not in steps]
    assert missing == [], steps
