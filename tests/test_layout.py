"""The run-folder contract lives in one place: ``melanet.runs.layout``.

- No run-folder file name is spelled in the code outside ``melanet/runs/layout.py`` (the package, the
  pages, the dashboard helpers and ``app.py`` are parsed; prose such as help text and docstrings,
  which has spaces, may name files).
- ``docs/run-folders.md`` names every file of the layout, and every file it names is in the layout.
- ``RunLayout`` paths agree with the constants.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from melanet.runs import layout, runs

REPOSITORY = Path(__file__).resolve().parents[1]
CODE = [*sorted((REPOSITORY / "melanet").rglob("*.py")), *sorted((REPOSITORY / "pages").glob("*.py")),
        *sorted((REPOSITORY / "dashboard").glob("*.py")), REPOSITORY / "app.py"]
HOME = REPOSITORY / "melanet" / "runs" / "layout.py"
FILE_NAME = re.compile(r"^[\w.-]+\.(json|csv|yaml|keras|npz|png|md|log|npy)$")


def _layout_strings() -> set[str]:
    values: set[str] = set()
    for name in dir(layout):
        value = getattr(layout, name)
        if name.isupper() and isinstance(value, str):
            values.add(value)
        elif name.isupper() and isinstance(value, (tuple, list)):
            values.update(item for item in value if isinstance(item, str))
    return values


def known_file_names() -> set[str]:
    """The leaf file names of the layout (``manifest.csv``, ``model.keras``, ...) and ``checkpoints``."""
    leaves = {value.rsplit("/", 1)[-1] for value in _layout_strings()}
    return {leaf for leaf in leaves if FILE_NAME.match(leaf)} | {layout.CHECKPOINTS_FOLDER}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_names(path: Path, names: set[str]) -> list[str]:
    """``file:line: 'literal'`` for every path-like string literal in ``path`` that names a layout file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = _docstring_nodes(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        text = node.value
        if not text.strip() or any(character.isspace() for character in text):
            continue  # prose (messages, help) may name a file; code must not spell one
        parts = [part for part in re.split(r"[/\\{}]", text) if part]
        if any(part in names for part in parts):
            hits.append(f"{path.relative_to(REPOSITORY)}:{node.lineno}: {text!r}")
    return hits


def test_the_known_names_cover_the_contract() -> None:
    names = known_file_names()
    assert {"config.yaml", "status.json", "model.keras", "manifest.csv", "index.csv", "umap.csv", "job.json",
            "metrics.json", "validation_predictions.csv", "generator_benign_to_malignant.keras"} <= names


def test_no_run_folder_file_name_is_spelled_outside_melanet_layout() -> None:
    names = known_file_names()
    hits = [hit for path in CODE if path != HOME for hit in spelled_names(path, names)]
    assert not hits, "spell these through melanet.runs.layout:\n" + "\n".join(hits)


def test_the_grep_finds_a_spelled_name(tmp_path: Path) -> None:
    """The check above really looks: a literal in code is found, the same name in prose is not."""
    sample = REPOSITORY / "melanet" / "_layout_grep_sample.py"
    sample.write_text('"""Writes synthetic/manifest.csv."""\nPATH = "synthetic/manifest.csv"\n'
                      'MESSAGE = "see metrics.json for more"\nOTHER = f"{1}/index.csv"\n')
    try:
        hits = spelled_names(sample, known_file_names())
    finally:
        sample.unlink()
    assert [hit.split(": ", 1)[1] for hit in hits] == ["'synthetic/manifest.csv'", "'/index.csv'"]


def test_docs_run_folders_names_every_layout_file_and_no_other() -> None:
    text = (REPOSITORY / "docs" / "run-folders.md").read_text(encoding="utf-8")
    quoted = {item.rstrip("/") for item in re.findall(r"`([^`\s]+)`", text)}

    def documented(name: str) -> bool:  # as itself, or as the folder of a documented path
        return any(item == name or item.startswith(f"{name}/") or item.endswith(f"/{name}") for item in quoted)

    missing = sorted(name for name in layout.DOCUMENTED_NAMES if not documented(name))
    assert not missing, f"docs/run-folders.md does not name {missing}"
    known = known_file_names()
    leaves = {item.rsplit("/", 1)[-1] for item in quoted if not item.startswith(("configs/", "models/"))}
    unknown = sorted(leaf for leaf in leaves if FILE_NAME.match(leaf) and leaf not in known
                     and not leaf.startswith(("samples_epoch_", "syn_")) and "<" not in leaf)
    assert not unknown, f"docs/run-folders.md names files melanet.runs.layout does not define: {unknown}"


@pytest.mark.parametrize("attribute, constant", [
    ("config", layout.CONFIG_FILE), ("status", layout.STATUS_FILE), ("history", layout.HISTORY_FILE),
    ("synthetic_manifest", layout.SYNTHETIC_MANIFEST_FILE), ("model", layout.MODEL_FILE),
    ("metrics", layout.METRICS_FILE), ("predictions", layout.PREDICTIONS_FILE),
    ("umap_csv", layout.UMAP_CSV_FILE), ("separability", layout.SEPARABILITY_FILE),
    ("table_markdown", layout.TABLE_MARKDOWN_FILE), ("job", layout.JOB_FILE),
])
def test_run_layout_paths_are_the_constants(tmp_path: Path, attribute: str, constant: str) -> None:
    assert getattr(runs.Run(tmp_path).files, attribute) == tmp_path / constant


def test_run_layout_paths_of_one_image_or_epoch(tmp_path: Path) -> None:
    files = layout.RunLayout(tmp_path)
    assert files.sample_grid(7) == tmp_path / "figures" / "samples_epoch_007.png"
    assert files.explain_index("other data") == tmp_path / "explain" / "other data" / "index.csv"
    assert files.generator("generator_benign_to_malignant").name == "generator_benign_to_malignant.keras"
    with pytest.raises(ValueError, match="unknown generator"):
        files.generator("generator_a")
