"""``melanet data check``: per-split, per-class counts and every problem of a data folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from melanet.data import parallel, preprocess, sources
from melanet.data.errors import BadImageError, describe_problem, problem


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """Usable images per split and class, and every problem (dicts: file, line, reason, split)."""

    root: Path
    layout: str  # as sources.DataIndex.layout ("isic2016", "isic2018", "folders", ...)
    counts: dict[str, tuple[int, int]]  # split -> (benign, malignant) usable images, for the splits present
    problems: list[dict[str, Any]]
    title: str = ""  # the layout as people name it
    notes: tuple[str, ...] = ()  # grouping, class convention

    @property
    def usable(self) -> bool:
        """True when the stages can use the data as it is (no problems, both classes in both splits)."""
        return not self.problems and all(min(pair) > 0 for pair in self.counts.values())

    @property
    def evaluation_only(self) -> bool:
        """True for a test-only download (e.g. the ISIC-2017 test part alone): the training part is simply
        absent (its folder and CSV missing, nothing else wrong) and the test split is clean, with both
        classes. ``melanet evaluate --data`` can use it; training cannot."""
        if self.usable or "test" not in self.counts or min(self.counts["test"]) == 0:
            return False
        absent = {"image folder missing", "ground-truth CSV missing"}
        others = [item for item in self.problems if not (item["split"] == "train" and item["reason"] in absent)]
        return not others and self.counts.get("train", (0, 0)) == (0, 0)


def check_data(root: str | Path, *, max_pixels: int = 100_000_000, workers: int = 0,
               progress: parallel.Progress | None = None, malignant_classes: str = "") -> CheckReport:
    """Index ``root`` (any layout) and decode every image (cheaply) to find the problems loading would meet."""
    root = Path(root)
    index = sources.read_index(root, malignant_classes=malignant_classes)
    samples = [sample for split in index.splits for sample in index.samples(split)]
    reasons = parallel.map_chunks(inspect_chunk, [str(sample.path) for sample in samples], max_pixels,
                                  workers=workers, progress=progress, message="checking images")
    problems = list(index.problems)
    bad = set()
    for sample, reason in zip(samples, reasons):
        if reason is not None:
            problems.append(problem(sample.path, reason, split=sample.split))
            bad.add(sample.path)
    counts = {}
    for split in index.splits:
        labels = [sample.label for sample in index.samples(split) if sample.path not in bad]
        counts[split] = (labels.count(0), labels.count(1))
        for label, class_name in enumerate(sources.CLASS_NAMES):
            already = any(item["split"] == split and item["reason"].startswith("empty class") for item in problems)
            if index.samples(split) and counts[split][label] == 0 and not already:
                problems.append(problem(root, f"empty class: the {split} split has no usable {class_name} images",
                                        split=split))
    return CheckReport(root=root, layout=index.layout, counts=counts, problems=problems, title=index.title,
                       notes=tuple(index.notes))


def inspect_chunk(paths: list[str], max_pixels: int) -> list[str | None]:
    """Worker: None per good image, the reason per bad one."""
    reasons: list[str | None] = []
    for path in paths:
        try:
            preprocess.inspect_image(path, max_pixels)
            reasons.append(None)
        except BadImageError as error:
            reasons.append(error.reason)
    return reasons


def format_report(report: CheckReport) -> str:
    """A counts table (the paper's Figure 4 as numbers), then every problem, then the verdict."""
    rows = [("split", "benign", "malignant", "total")]
    for split, (benign, malignant) in report.counts.items():
        rows.append((split, str(benign), str(malignant), str(benign + malignant)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [f"{report.root} ({report.layout} layout{': ' + report.title if report.title else ''})"]
    for position, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[0]) if column == 0 else cell.rjust(widths[column])
                               for column, cell in enumerate(row)))
        if position == 0:
            lines.append("  ".join("-" * width for width in widths))
    if "test" not in report.counts:
        lines.append("no labelled test split: evaluating on this folder uses all its labelled images")
    lines += [f"note: {note}" for note in report.notes]
    if report.problems:
        lines.append(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}:")
        lines += [f"  [{item['split']}] {describe_problem(item)}" for item in report.problems]
    if report.usable:
        lines.append("OK: the data can be used")
    elif report.evaluation_only:
        lines.append("usable for evaluation; no training split (melanet evaluate --run RUN --data "
                     f"{report.root}); the training part's files above are simply absent")
    else:
        lines.append("NOT USABLE as it is: fix the problems above, or pass --skip-bad to the stages to skip bad items")
    return "\n".join(lines)
