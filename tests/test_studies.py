"""Reader studies: creation from the shipped demo run (read only), answers saved atomically, and the
results against hand-computed values and scikit-learn."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sklearn_metrics

from melanet.cli import main as cli_main
from melanet.explain import overlay
from melanet.studies import access, create, responses, results, study as study_module

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "models" / "demo" / "melanet"
Z = 1.959963984540054  # the 95 % normal quantile
UNAIDED, AIDED = study_module.PHASES
READERS = ("Dr Unit", "first", "second", "third", "learner", "perfect", "random", "worried", "A", "A, the second",
           "B", "Dr A", "killed")


@pytest.fixture
def demo_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> study_module.Study:
    """A 12-case study of the shipped demo MelaNet run, in a temporary root (the run is only read)."""
    monkeypatch.chdir(REPO)  # the run's data.root, data/sample, is relative to the repository
    return create.create_study(DEMO_RUN, "demo-12", root=tmp_path / "studies",
                               options=create.CreateOptions(cases=12, seed=5, readers=READERS),
                               codes_out=tmp_path / "codes" / "demo-12.txt")


def codes_of(study: study_module.Study) -> dict[str, str]:
    """Name (or 'organiser') -> code, from the codes file the fixture wrote beside the studies root."""
    found = {}
    for line in (study.path.parents[1] / "codes" / f"{study.name}.txt").read_text().splitlines()[1:]:
        parts = line.split("\t")
        found[parts[0] if parts[0] == "organiser" else parts[1]] = parts[-1]
    return found


def answer_all(study: study_module.Study, reader: str, phase: str, choose) -> None:
    """Answer every case in the reader's order; ``choose(case) -> (decision, confidence)``."""
    for case_id in study_module.case_order(study, reader, phase):
        decision, confidence = choose(study.case(case_id))
        responses.record_answer(study, reader=reader, phase=phase, case=case_id, decision=decision,
                                confidence=confidence, seconds=3.5)


def entry(result: dict, reader: str, phase: str = UNAIDED) -> dict:
    return next(item for item in result["readers"] if item["reader"] == reader and item["phase"] == phase)


def labels_and_probabilities(study: study_module.Study) -> tuple[list[int], list[float]]:
    return [case.label for case in study.cases], [case.prob_malignant for case in study.cases]


# -- creation ------------------------------------------------------------------------------------


def test_create_draws_a_stratified_seeded_subset_with_the_runs_outputs(demo_study, tmp_path) -> None:
    predictions = {row["image"]: row for row in csv.DictReader((DEMO_RUN / "predictions.csv").open())}
    metrics = json.loads((DEMO_RUN / "metrics.json").read_text())
    threshold = metrics["operating_point"]["threshold"]
    assert demo_study.threshold == threshold and "validation" in demo_study.info["threshold"]["source"]
    assert len(demo_study.cases) == 12
    # 39 of the 73 test images are malignant: round(12 * 39 / 73) = 6
    assert sum(case.label for case in demo_study.cases) == round(12 * 39 / 73)
    for case in demo_study.cases:
        assert case.label == int(predictions[case.image]["label"])
        assert case.prob_malignant == pytest.approx(float(predictions[case.image]["prob_malignant"]), abs=1e-6)
        assert case.model_decision == ("malignant" if case.prob_malignant > threshold else "benign")
        assert demo_study.image_path(case, REPO).is_file()
        assert demo_study.overlay_path(case).is_file()
    assert [case.case for case in demo_study.cases] == [f"c{n:03d}" for n in range(1, 13)]
    again = create.create_study(DEMO_RUN, "again", root=tmp_path / "studies",
                                options=create.CreateOptions(cases=12, seed=5))
    other = create.create_study(DEMO_RUN, "other", root=tmp_path / "studies",
                                options=create.CreateOptions(cases=12, seed=6, aided=False))
    assert [case.image for case in again.cases] == [case.image for case in demo_study.cases]
    assert [case.image for case in other.cases] != [case.image for case in demo_study.cases]
    assert other.phases == (UNAIDED,) and not (other.path / study_module.OVERLAYS_FOLDER).exists()


def test_stratified_subset_keeps_each_class_share() -> None:
    labels = np.array([1] * 39 + [0] * 34)
    chosen = create.stratified_subset(labels, 7, seed=0)
    assert len(set(chosen.tolist())) == 7 and labels[chosen].sum() == round(7 * 39 / 73) == 4
    rare = np.array([1] * 2 + [0] * 98)
    assert rare[create.stratified_subset(rare, 5, seed=0)].sum() == 1  # at least one of each class
    assert (create.stratified_subset(labels, 7, seed=3) == create.stratified_subset(labels, 7, seed=3)).all()
    with pytest.raises(study_module.StudyError, match="between 2 and 73"):
        create.stratified_subset(labels, 1, seed=0)


def test_the_runs_predictions_are_reused_only_for_the_data_they_were_made_on(tiny_isic, monkeypatch) -> None:
    from melanet.runs.runs import Run

    monkeypatch.chdir(REPO)
    ids = [path.stem for path in sorted((tiny_isic / "ISBI2016_ISIC_Part3_Test_Data").glob("*.jpg"))]
    saved = create._saved_probabilities(Run(DEMO_RUN), "data/sample", ids)
    predictions = {row["image"]: float(row["prob_malignant"]) for row in csv.DictReader((DEMO_RUN / "predictions.csv").open())}
    assert saved.tolist() == [predictions[image_id] for image_id in ids]
    assert create._saved_probabilities(Run(DEMO_RUN), str(tiny_isic), ids) is None  # same ids, other files


def test_case_order_is_seeded_per_reader_and_phase(demo_study) -> None:
    first = study_module.case_order(demo_study, "Dr A", UNAIDED)
    assert first == study_module.case_order(demo_study, "Dr A", UNAIDED)
    assert sorted(first) == sorted(case.case for case in demo_study.cases)
    assert first != study_module.case_order(demo_study, "Dr B", UNAIDED)
    assert first != study_module.case_order(demo_study, "Dr A", AIDED)


def test_bad_inputs_get_one_clear_line_and_exit_2(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    root = str(tmp_path / "studies")
    unlabelled = tmp_path / "unlabelled" / "ISBI2016_ISIC_Part3_Test_Data"
    unlabelled.mkdir(parents=True)
    (unlabelled / "ISIC_0000001.jpg").write_bytes((REPO / "data/sample/ISBI2016_ISIC_Part3_Test_Data").glob("*.jpg")
                                                  .__next__().read_bytes())
    unevaluated = Path(shutil.copytree(DEMO_RUN, tmp_path / "unevaluated"))
    (unevaluated / "metrics.json").unlink()
    cases = {
        "unknown run": (["create", "--run", str(tmp_path / "nope"), "--name", "s"], "run folder not found"),
        "name with ..": (["create", "--run", str(DEMO_RUN), "--name", "../escape"], "study name '../escape'"),
        "absolute name": (["create", "--run", str(DEMO_RUN), "--name", "/tmp/x"], "absolute paths are not allowed"),
        "no labels": (["create", "--run", str(DEMO_RUN), "--name", "s", "--data", str(unlabelled.parent)],
                      "no labelled test images"),
        "too many cases": (["create", "--run", str(DEMO_RUN), "--name", "s", "--cases", "500"],
                           "--cases must be between 2 and 73"),
        "a stage-1 run": (["create", "--run", str(REPO / "models" / "demo" / "gan"), "--name", "s"],
                          "holds a train-gan run"),
        "unevaluated run": (["create", "--run", str(unevaluated), "--name", "s"], "not evaluated"),
        "unknown study": (["results", "nothing-here"], "study 'nothing-here' not found"),
    }
    for what, (arguments, message) in cases.items():
        assert cli_main(["reader-study", *arguments, "--root", root]) == 2, what
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in lines[0], (what, lines)
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())
    assert not (tmp_path / "escape").exists()


def test_an_existing_study_is_never_overwritten(demo_study, tmp_path) -> None:
    responses.record_answer(demo_study, reader="A", phase=UNAIDED, case="c001", decision="benign", confidence=2,
                            seconds=1)
    with pytest.raises(study_module.StudyError, match="exists already"):
        create.create_study(DEMO_RUN, "demo-12", root=tmp_path / "studies")
    assert len(responses.read_responses(study_module.open_study(demo_study.path))) == 1


# -- answers -------------------------------------------------------------------------------------


def test_answers_resume_where_the_reader_stopped_and_aided_waits_for_unaided(demo_study) -> None:
    order = study_module.case_order(demo_study, "Dr A", UNAIDED)
    for case_id in order[:5]:
        responses.record_answer(demo_study, reader="  Dr   A ", phase=UNAIDED, case=case_id, decision="malignant",
                                confidence=4, seconds=2)
    reopened = study_module.open_study(demo_study.path)  # a server restart: nothing but the files
    progress = responses.reader_progress(reopened, responses.read_responses(reopened), "Dr A")
    assert (progress.phase, progress.done, progress.total, progress.next_case) == (UNAIDED, 5, 12, order[5])
    with pytest.raises(study_module.StudyError, match="answered 5 of 12 cases unaided"):
        responses.record_answer(reopened, reader="Dr A", phase=AIDED, case=order[0], decision="benign",
                                confidence=1, seconds=1)
    # a resubmitted form keeps the first answer
    again = responses.record_answer(reopened, reader="Dr A", phase=UNAIDED, case=order[0], decision="benign",
                                    confidence=1, seconds=9)
    assert again["decision"] == "malignant" and len(responses.read_responses(reopened)) == 5
    for case_id in order[5:]:
        responses.record_answer(reopened, reader="Dr A", phase=UNAIDED, case=case_id, decision="benign",
                                confidence=3, seconds=2)
    progress = responses.reader_progress(reopened, responses.read_responses(reopened), "Dr A")
    assert (progress.phase, progress.done, progress.next_case) == (AIDED, 0,
                                                                    study_module.case_order(reopened, "Dr A", AIDED)[0])


@pytest.mark.parametrize("field, value, message", [
    ("decision", "maybe", "decision must be one of"),
    ("confidence", 6, "confidence must be an integer 1-5"),
    ("confidence", True, "confidence must be an integer 1-5"),
    ("seconds", -1.0, "seconds must be a finite number"),
    ("phase", "later", "phase must be one of"),
    ("case", "c999", "no case 'c999'"),
    ("reader", "   ", "reader name is empty"),
])
def test_bad_answers_are_refused(demo_study, field, value, message) -> None:
    answer = {"reader": "A", "phase": UNAIDED, "case": "c001", "decision": "benign", "confidence": 3, "seconds": 1.0}
    answer[field] = value
    with pytest.raises(study_module.StudyError, match=message):
        responses.record_answer(demo_study, **answer)
    assert not demo_study.responses_path.exists()


def test_notes_stay_on_one_line(demo_study) -> None:
    responses.record_answer(demo_study, reader="A, the second", phase=UNAIDED, case="c001", decision="benign",
                            confidence=3, seconds=1, note='irregular,\n"blue-white" veil')
    text = demo_study.responses_path.read_text()
    assert len(text.splitlines()) == 2
    row = responses.read_responses(demo_study)[0]
    assert row["note"] == 'irregular, "blue-white" veil' and row["reader"] == "A, the second"


WRITER = textwrap.dedent("""
    import sys
    from melanet.studies import responses, study
    opened = study.open_study(sys.argv[1])
    start = int(sys.argv[2])
    for number in range(start, start + 100000):
        for case in opened.cases:
            responses.record_answer(opened, reader=f"reader-{number:05d}", phase="unaided", case=case.case,
                                    decision="malignant", confidence=3, seconds=1.5, note="x" * 300)
            print("saved", flush=True)
""")


def test_a_killed_writer_never_leaves_a_torn_line_or_loses_a_saved_answer(demo_study) -> None:
    generator = random.Random(14)
    saved = 0
    access.add_readers(demo_study, [f"reader-{attempt * 1000 + number:05d}" for attempt in range(6)
                                    for number in range(8)])  # 12 answers each: 96 per attempt at most
    for attempt in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(demo_study.path), str(attempt * 1000)],
                                  stdout=subprocess.PIPE, text=True, cwd=REPO)
        wanted = generator.randint(20, 60)
        confirmed = 0
        while confirmed < wanted:
            assert writer.stdout.readline() == "saved\n", "the writer died"
            confirmed += 1
        time.sleep(generator.uniform(0, 0.05))  # let it get into the middle of the next save
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        confirmed += sum(1 for line in writer.stdout if line == "saved\n")
        saved += confirmed
        text = demo_study.responses_path.read_text(encoding="utf-8")
        assert text.endswith("\n")
        lines = text.splitlines()
        assert lines[0] == ",".join(responses.RESPONSE_COLUMNS)
        for number, line in enumerate(lines[1:], start=2):
            fields = next(csv.reader(io.StringIO(line)))
            assert len(fields) == len(responses.RESPONSE_COLUMNS) and fields[-1] == "x" * 300, number
        rows = responses.read_responses(demo_study)
        # every answer the writer confirmed is on disk; at most the one in flight besides
        assert saved <= len(rows) <= saved + attempt + 1


MID_WRITE_KILLER = textwrap.dedent("""
    import builtins, os, signal, sys
    from melanet.studies import responses, study
    opened = study.open_study(sys.argv[1])
    folder = os.path.realpath(sys.argv[1])
    armed = False

    class HalfThenDie:
        # a file whose next write puts half its bytes on disk, then the process is SIGKILLed
        def __init__(self, stream):
            self.stream = stream
        def write(self, data):
            if not armed:
                return self.stream.write(data)
            self.stream.write(data[: len(data) // 2])
            self.stream.flush()
            os.fsync(self.stream.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        def __getattr__(self, name):
            return getattr(self.stream, name)
        def __enter__(self):
            return self
        def __exit__(self, *details):
            return self.stream.__exit__(*details)

    def trapped(opener):
        def open_for_writing(file, mode="r", *args, **kwargs):
            stream = opener(file, mode, *args, **kwargs)
            inside = isinstance(file, int) or os.path.realpath(str(file)).startswith(folder)
            return HalfThenDie(stream) if inside and any(flag in mode for flag in "wax+") else stream
        return open_for_writing

    builtins.open, os.fdopen = trapped(builtins.open), trapped(os.fdopen)
    for number, case in enumerate(opened.cases):
        armed = number == int(sys.argv[2])
        responses.record_answer(opened, reader="killed", phase="unaided", case=case.case, decision="benign",
                                confidence=2, seconds=1.0)
        print("saved", flush=True)
""")


def test_a_writer_killed_in_the_middle_of_writing_leaves_the_previous_answers_whole(demo_study) -> None:
    writer = subprocess.run([sys.executable, "-c", MID_WRITE_KILLER, str(demo_study.path), "4"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    assert writer.stdout.count("saved") == 4
    text = demo_study.responses_path.read_text(encoding="utf-8")
    assert text.endswith("\n") and len(text.splitlines()) == 5  # the header and the four saved answers
    assert len(responses.read_responses(demo_study)) == 4
    responses.record_answer(demo_study, reader="killed", phase=UNAIDED, case=demo_study.cases[4].case,
                            decision="malignant", confidence=5, seconds=2.0)  # the reader carries on
    assert [row["decision"] for row in responses.read_responses(demo_study)] == ["benign"] * 4 + ["malignant"]


# -- results -------------------------------------------------------------------------------------


def wilson(successes: int, trials: int) -> list[float]:
    """Wilson's interval written out again (closed forms are checked below)."""
    p = successes / trials
    centre = (p + Z * Z / (2 * trials)) / (1 + Z * Z / trials)
    half = Z * math.sqrt(p * (1 - p) / trials + Z * Z / (4 * trials * trials)) / (1 + Z * Z / trials)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def test_a_perfect_reader(demo_study) -> None:
    answer_all(demo_study, "perfect", UNAIDED, lambda case: (("benign", "malignant")[case.label], 5))
    result = results.compute_results(demo_study)
    figures = entry(result, "perfect")
    labels, probabilities = labels_and_probabilities(demo_study)
    malignant, benign = sum(labels), len(labels) - sum(labels)
    assert (figures["tp"], figures["fn"], figures["tn"], figures["fp"]) == (malignant, 0, benign, 0)
    assert figures["sensitivity"] == 1 and figures["specificity"] == 1 and figures["auc"] == 1
    # all successes: Wilson's lower bound is n / (n + z^2), the upper bound 1
    assert figures["sensitivity_ci"] == pytest.approx([malignant / (malignant + Z * Z), 1.0])
    assert figures["specificity_ci"] == pytest.approx([benign / (benign + Z * Z), 1.0])
    # kappa against the model, from the 2x2 table by hand
    model = [case.model_decision == "malignant" for case in demo_study.cases]
    agree = sum(m == bool(label) for m, label in zip(model, labels)) / len(labels)
    chance = (malignant / len(labels)) * (sum(model) / len(labels)) + (benign / len(labels)) * (1 - sum(model) / len(labels))
    assert figures["kappa_vs_model"] == pytest.approx((agree - chance) / (1 - chance))
    # at specificity 1 the model catches the malignant cases scored above every benign case
    top_benign = max(p for p, label in zip(probabilities, labels) if label == 0)
    assert figures["model_sensitivity_at_reader_specificity"] == pytest.approx(
        sum(p > top_benign for p, label in zip(probabilities, labels) if label == 1) / malignant)
    lowest_malignant = min(p for p, label in zip(probabilities, labels) if label == 1)
    assert figures["model_specificity_at_reader_sensitivity"] == pytest.approx(
        sum(p < lowest_malignant for p, label in zip(probabilities, labels) if label == 0) / benign)
    assert figures["delong"]["auc_reader"] == 1
    assert figures["delong"]["delta_auc"] == pytest.approx(1 - figures["model"]["auc"])
    assert figures["model"]["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities))
    assert figures["complete"] and result["mean_reader"][UNAIDED]["sensitivity"] == 1


def test_an_always_malignant_reader(demo_study) -> None:
    answer_all(demo_study, "worried", UNAIDED, lambda case: ("malignant", 3))
    figures = entry(results.compute_results(demo_study), "worried")
    labels, _ = labels_and_probabilities(demo_study)
    benign = len(labels) - sum(labels)
    assert figures["sensitivity"] == 1 and figures["specificity"] == 0
    assert figures["specificity_ci"] == pytest.approx([0.0, Z * Z / (benign + Z * Z)])  # no successes
    assert figures["auc"] == 0.5  # one rating for every case
    assert figures["kappa_vs_model"] == pytest.approx(0.0)  # a constant rater agrees only by chance
    assert figures["model_sensitivity_at_reader_specificity"] == 1.0  # specificity 0 allows every threshold
    assert figures["fp"] == benign and figures["tn"] == 0


def test_a_random_reader_against_scikit_learn(demo_study) -> None:
    generator = random.Random(14)
    answer_all(demo_study, "random", UNAIDED,
               lambda case: (generator.choice(["benign", "malignant"]), generator.randint(1, 5)))
    figures = entry(results.compute_results(demo_study), "random")
    answers = responses.answers_of(responses.read_responses(demo_study), "random", UNAIDED)
    cases = [demo_study.case(case_id) for case_id in sorted(answers)]
    truth = [case.label for case in cases]
    said = [int(answers[case.case]["decision"] == "malignant") for case in cases]
    ratings = [results.rating(answers[c.case]["decision"], answers[c.case]["confidence"]) for c in cases]
    model = [int(case.model_decision == "malignant") for case in cases]
    tn, fp, fn, tp = sklearn_metrics.confusion_matrix(truth, said, labels=[0, 1]).ravel()
    assert tp != fn and tn != fp  # so that a swapped count cannot pass unnoticed
    assert (figures["tp"], figures["fp"], figures["tn"], figures["fn"]) == (tp, fp, tn, fn)
    assert figures["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert figures["specificity_ci"] == pytest.approx(wilson(tn, tn + fp))
    assert figures["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(truth, ratings))
    assert figures["kappa_vs_model"] == pytest.approx(sklearn_metrics.cohen_kappa_score(said, model))
    assert figures["delong"]["auc_reader"] == pytest.approx(figures["auc"])
    assert 0 <= figures["delong"]["p"] <= 1 and figures["delong"]["ci"][0] < figures["delong"]["delta_auc"]


def test_kappa_and_rating_match_scikit_learn_on_fixed_arrays() -> None:
    first = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
    second = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 1])
    assert results.cohen_kappa(first, second) == pytest.approx(sklearn_metrics.cohen_kappa_score(first, second))
    assert [results.rating("benign", level) for level in (5, 4, 3, 2, 1)] == [1, 2, 3, 4, 5]
    assert [results.rating("malignant", level) for level in (1, 2, 3, 4, 5)] == [6, 7, 8, 9, 10]


def test_aided_versus_unaided_changes(demo_study) -> None:
    answer_all(demo_study, "learner", UNAIDED, lambda case: ("benign", 2))  # every malignant case wrong
    answer_all(demo_study, "learner", AIDED, lambda case: (case.model_decision, 4))  # follows the model
    result = results.compute_results(demo_study)
    change = result["aided_vs_unaided"][0]
    labels = [case.label for case in demo_study.cases]
    model = [case.model_decision == "malignant" for case in demo_study.cases]
    assert change["n"] == 12 and change["reader"] == "learner"
    assert change["wrong_to_right"] == sum(label == 1 and m for label, m in zip(labels, model))
    assert change["right_to_wrong"] == sum(label == 0 and m for label, m in zip(labels, model))
    assert change["changed"] == change["changed_towards_model"] == sum(model)
    assert change["changed_away_from_model"] == 0
    aided = entry(result, "learner", AIDED)
    assert change["delta_sensitivity"] == pytest.approx(aided["sensitivity"] - 0.0)
    assert change["delta_specificity"] == pytest.approx(aided["specificity"] - 1.0)
    assert aided["kappa_vs_model"] == pytest.approx(1.0)


def test_results_command_writes_what_compute_returns(demo_study, capsys) -> None:
    answer_all(demo_study, "perfect", UNAIDED, lambda case: (("benign", "malignant")[case.label], 5))
    root = str(demo_study.path.parent)
    assert cli_main(["reader-study", "results", "demo-12", "--root", root]) == 0
    written = (demo_study.path / study_module.RESULTS_FILE).read_bytes()
    assert written == results.results_bytes(results.compute_results(demo_study))
    assert "perfect (unaided, 12 of 12): sensitivity 100.0%" in capsys.readouterr().out


# -- a run without the outputs a study can reuse; shipped studies ---------------------------------


@pytest.mark.slow
def test_create_predicts_and_computes_grad_cam_when_the_run_has_not(tmp_path, monkeypatch, tiny_isic) -> None:
    """app_fixture's classifier run: a real tiny model, explain/ outputs for 12 test images only."""
    import app_fixture
    from melanet.classifier import predict
    from melanet.data import prepare
    from melanet.runs.runs import Run

    monkeypatch.chdir(REPO)
    run_path = app_fixture.write_results(tmp_path / "results") / "melanet"
    explained = {row["image"] for row in csv.DictReader((run_path / "explain" / "index.csv").open())}
    study = create.create_study(run_path, "own-data", root=tmp_path / "studies",
                                options=create.CreateOptions(cases=20, seed=0))
    images = [case.image for case in study.cases]
    assert study.info["overlays"] == {"from_run_explain": sum(image in explained for image in images),
                                      "computed": sum(image not in explained for image in images)}
    assert 0 < study.info["overlays"]["computed"] < 20
    config = Run(run_path).config()
    for case in study.cases:
        # drawn over the original in its own framing: the original's size, not the model's square
        with Image.open(study.image_path(case)) as original:
            assert Image.open(study.overlay_path(case)).size == original.size
            assert original.size != (config.data.image_size, config.data.image_size)
        if case.image in explained:  # the run's own saved map, drawn by hand here over the original
            map_file = run_path / next(row["map_path"] for row in csv.DictReader((run_path / "explain" / "index.csv")
                                                                                 .open()) if row["image"] == case.image)
            original = np.asarray(Image.open(study.image_path(case)).convert("RGB"), dtype=np.float32)
            values, _ = overlay.map_on_original(np.load(map_file), original.shape[1], original.shape[0],
                                                config.data.image_size, config.data.resize)
            expected = (1 - config.explain.opacity) * original + \
                config.explain.opacity * overlay.apply_colour_map(values).astype(np.float32)
            shown = np.asarray(Image.open(study.overlay_path(case)).convert("RGB"), dtype=np.float32)
            assert np.abs(shown - expected).mean() < 4  # JPEG's loss only
    # another labelled folder: the model predicts every case, and every overlay is computed
    other = create.create_study(run_path, "other-data", root=tmp_path / "studies",
                                options=create.CreateOptions(data_root=str(tiny_isic)))
    assert other.info["overlays"] == {"from_run_explain": 0, "computed": 6} and len(other.cases) == 6
    image_set = prepare.load_split(dataclasses.replace(config.data, root=str(tiny_isic)), "test")
    expected = dict(zip(image_set.ids, predict.predict_probabilities(predict.load_model(run_path), image_set.images)))
    for case in other.cases:
        assert case.prob_malignant == pytest.approx(expected[case.image], abs=1e-5)
        assert other.image_path(case).parent.parent == tiny_isic
    assert not (run_path / "explain" / tiny_isic.name).exists()  # the run is only read


def test_a_shipped_study_is_read_through_a_copy(demo_study, tmp_path, monkeypatch) -> None:
    from dashboard import study_views

    models = tmp_path / "models"
    shipped = create.copy_study(demo_study, models / "demo" / "studies")  # as the lead would ship it
    responses.record_answer(demo_study, reader="A", phase=UNAIDED, case="c001", decision="benign", confidence=1,
                            seconds=1)
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_STUDIES_DIR", str(tmp_path / "mine"))
    assert [(entry.label, entry.shipped) for entry in study_views.discover()] == [("models/demo/studies/demo-12", True)]
    assert not (shipped.path / access.ACCESS_FILE).exists()  # a copy never carries the codes' hashes
    with pytest.raises(access.AccessError, match="made before reader codes existed and is read-only"):
        responses.record_answer(shipped, reader="B", phase=UNAIDED, case="c002", decision="benign", confidence=1,
                                seconds=1)
    # add-reader on the shipped folder: a copy under --root gets the codes; the shipped folder stays as it was
    codes_file = tmp_path / "outside" / "codes.txt"
    assert cli_main(["reader-study", "add-reader", str(shipped.path), "--readers", "B,C", "--codes-out",
                          str(codes_file), "--root", str(tmp_path / "mine")]) == 0
    copy = study_module.open_study(tmp_path / "mine" / "demo-12")
    assert not copy.responses_path.exists()
    assert [case.case for case in copy.cases] == [case.case for case in demo_study.cases]
    assert sorted(path.name for path in (copy.path / study_module.OVERLAYS_FOLDER).iterdir()) == \
        [f"c{n:03d}.jpg" for n in range(1, 13)]
    responses.record_answer(copy, reader="B", phase=UNAIDED, case="c002", decision="benign", confidence=1, seconds=1)
    assert create.copy_study(shipped, study_views.studies_dir()).responses_path.is_file()  # the copy is kept
    assert [(entry.label, entry.shipped) for entry in study_views.discover()] == [("studies/demo-12", False)]
    assert sorted(path.name for path in shipped.path.iterdir()) == [study_module.CASES_FILE,
                                                                    study_module.OVERLAYS_FOLDER,
                                                                    study_module.STUDY_FILE]


def test_the_page_without_studies_says_how_to_make_one(tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    for name, folder in (("MODELS", "no-models"), ("RUNS", "no-runs"), ("STUDIES", "no-studies")):
        monkeypatch.setenv(f"MELANET_{name}_DIR", str(tmp_path / folder))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/reader_study.py")
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    assert "melanet reader-study create --run" in " ".join(str(item.value) for item in app.info)


def page_elements(node) -> list:
    """Every element of an AppTest tree in page order (blocks opened)."""
    found = []
    for child in getattr(node, "children", {}).values():
        found.append(child)
        found += page_elements(child)
    return found


def viewer_pages(app) -> list[str]:
    """The HTML of each iframe on the page (the reading screen's image viewer)."""
    return [element.proto.srcdoc for element in page_elements(app.main) if getattr(element, "type", "") == "iframe"]


def open_reader_page(monkeypatch: pytest.MonkeyPatch, studies: Path, models: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MELANET_STUDIES_DIR", str(studies))
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/reader_study.py")
    app.run()
    return app


def sign_in(app, code: str) -> None:
    """Type a code into the page's code box and press Start, as a reader does."""
    app.text_input(key="reader_code").input(code)
    next(button for button in app.button if button.label == "Start reading").click().run()


def with_experience(study: study_module.Study, *readers: str) -> None:
    for reader in readers:
        access.set_experience(study, reader, 7, "dermatologist", 150)


def test_the_page_reads_a_study_without_sending_its_secrets(demo_study, monkeypatch) -> None:
    """The unaided reading screen's elements (the same values the browser gets) hold no label or
    probability; the title and the study picker give way to the image, the original file itself."""
    with_experience(demo_study, "Dr Unit")
    app = open_reader_page(monkeypatch, demo_study.path.parent, demo_study.path.parent / "no-models")
    assert "Readers against the model" in " ".join(str(item.value) for item in app.caption)
    sign_in(app, codes_of(demo_study)["Dr Unit"].lower().replace("-", " "))  # case, spaces and dash don't matter
    assert "Case 1 of 12 (unaided)" in [item.value for item in app.subheader]
    assert not [item for item in app.markdown if "this is case" in str(item.value)]  # one case number only
    pages = viewer_pages(app)
    shown = " ".join(str(element.value) for kind in ("markdown", "caption", "info", "subheader", "text")
                     for element in getattr(app, kind)) + " ".join(pages)
    assert "Readers against the model" not in shown and not app.title and not app.selectbox  # collapsed
    assert "P(malignant)" not in shown and "Model:" not in shown and study_module.OVERLAYS_FOLDER not in shown
    assert not [case for case in demo_study.cases if f"{case.prob_malignant:.3f}" in shown]
    first = demo_study.case(study_module.case_order(demo_study, "Dr Unit", UNAIDED)[0])
    assert len(pages) == 1 and 'id="heat"' in pages[0] and "<img id=\"heat\"" not in pages[0]
    source = re.search(r'id="lesion" alt="lesion" src="data:image/jpeg;base64,([^"]+)"', pages[0]).group(1)
    assert base64.b64decode(source) == demo_study.image_path(first, REPO).read_bytes()


def test_the_aided_viewer_lays_the_heat_map_over_the_same_original(demo_study, monkeypatch) -> None:
    answer_all(demo_study, "Dr Unit", UNAIDED, lambda case: ("benign", 3))
    with_experience(demo_study, "Dr Unit")
    app = open_reader_page(monkeypatch, demo_study.path.parent, demo_study.path.parent / "no-models")
    sign_in(app, codes_of(demo_study)["Dr Unit"])
    assert "Case 1 of 12 (aided)" in [item.value for item in app.subheader]
    case = demo_study.case(study_module.case_order(demo_study, "Dr Unit", AIDED)[0])
    page = viewer_pages(app)[0]
    lesion = re.search(r'id="lesion" alt="lesion" src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    # the heat map starts hidden behind its (unticked) box
    heat = re.search(r'<img id="heat" alt="heat map over the image" style="display: none" '
                     r'src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    assert '<input type="checkbox" id="show-heat">' in page
    assert base64.b64decode(lesion) == demo_study.image_path(case, REPO).read_bytes()
    assert base64.b64decode(heat) == demo_study.overlay_path(case).read_bytes()
    original, heat_map = Image.open(demo_study.image_path(case, REPO)), Image.open(demo_study.overlay_path(case))
    assert abs(original.width / original.height - heat_map.width / heat_map.height) < 0.01  # the same framing


def test_a_name_in_the_url_or_a_wrong_code_signs_nobody_in_and_results_are_asked_on_every_run(
        demo_study, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MELANET_STUDIES_DIR", str(demo_study.path.parent))
    monkeypatch.setenv("MELANET_MODELS_DIR", str(demo_study.path.parent / "no-models"))
    with_experience(demo_study, "Dr Unit")
    responses.record_answer(demo_study, reader="Dr Unit", phase=UNAIDED, decision="benign", confidence=2, seconds=1,
                            case=study_module.case_order(demo_study, "Dr Unit", UNAIDED)[0])
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.query_params["reader"] = "Dr Unit"
    app.query_params["study"] = "demo-12"
    app.run()
    app.switch_page("pages/reader_study.py")
    app.run()
    assert not [item for item in app.subheader if "Case" in str(item.value)]
    sign_in(app, "Dr Unit")  # a name is not a code
    assert "Not signed in: unknown code for this study." in [item.value for item in app.error]
    app.session_state["study_view"] = "Results"
    app.run()
    assert "Readers and the model" not in [item.value for item in app.subheader]
    assert any("results are for the organiser code" in str(item.value) for item in app.info)
    app.session_state["study_view"] = "Read"
    app.run()
    sign_in(app, codes_of(demo_study)["Dr Unit"])
    assert "Case 2 of 12 (unaided)" in [item.value for item in app.subheader]
    app.session_state["study_view"] = "Results"
    app.run()
    shown = " ".join(str(element.value) for kind in ("subheader", "markdown", "caption")
                     for element in getattr(app, kind))
    assert "Readers and the model" not in shown and "Case 2 of 12 (unaided)" in shown
    assert not [element for element in page_elements(app.main) if getattr(element, "type", "") == "button_group"]
    answer_all(demo_study, "first", UNAIDED, lambda case: ("malignant", 3))
    answer_all(demo_study, "Dr Unit", UNAIDED, lambda case: ("benign", 3))
    answer_all(demo_study, "Dr Unit", AIDED, lambda case: ("benign", 3))
    app.run()  # finished: the same session may now open the results: its own figures and the model's
    app.session_state["study_view"] = "Results"
    app.run()
    assert "Readers and the model" in [item.value for item in app.subheader]
    table = app.table[0].value.reset_index()
    assert set(table["reader"]) == {"Dr Unit", "model"}  # not "first"
    assert not [item for item in app.subheader if "Multi-reader" in str(item.value)]
    access.revoke_reader(demo_study, "Dr Unit")
    app.run()  # asked again on this run: a revoked code signs the session out
    assert "Readers and the model" not in [item.value for item in app.subheader]


def test_results_for_decides_who_sees_what(demo_study) -> None:
    codes = codes_of(demo_study)
    organiser = access.sign_in(demo_study, codes["organiser"], "test")
    reader = access.sign_in(demo_study, codes["first"], "test")
    assert organiser.role == access.ORGANISER and (reader.role, reader.reader) == (access.READER, "first")
    for identity in (None, reader):
        with pytest.raises(access.AccessError):
            results.results_for(demo_study, identity)
    answer_all(demo_study, "first", UNAIDED, lambda case: ("malignant", 3))
    with pytest.raises(access.AccessError, match="12 of 24 answered"):  # the aided phase is still open
        results.results_for(demo_study, reader)
    answer_all(demo_study, "first", AIDED, lambda case: ("malignant", 4))
    answer_all(demo_study, "second", UNAIDED, lambda case: ("benign", 4))
    own = results.results_for(demo_study, reader)
    assert {entry["reader"] for entry in own["readers"]} == {"first"} and "mrmc" not in own
    assert "mean_reader" not in own and own["model"] == results.compute_results(demo_study)["model"]
    everything = results.results_for(demo_study, organiser)
    assert {entry["reader"] for entry in everything["readers"]} == {"first", "second"}
    access.void_reader(demo_study, "second", "read on a phone screen")
    after = results.results_for(demo_study, organiser)
    assert {entry["reader"] for entry in after["readers"]} == {"first"}
    assert after["voided"] == [{"reader": "second", "reason": "read on a phone screen", "answers": 12}]
    assert len(responses.read_responses(demo_study)) == 36  # voided answers stay on disk
    access.set_closed(demo_study, True)
    with pytest.raises(access.AccessError, match="closed"):
        responses.record_answer(demo_study, reader="third", phase=UNAIDED, case="c001", decision="benign",
                                confidence=1, seconds=1)
    access.set_closed(demo_study, False)
    responses.record_answer(demo_study, reader="third", phase=UNAIDED, case="c001", decision="benign",
                            confidence=1, seconds=1)
    access.revoke_reader(demo_study, "third")
    with pytest.raises(access.AccessError, match="revoked"):
        access.sign_in(demo_study, codes["third"], "test")
    with pytest.raises(access.AccessError, match="not a reader"):
        responses.record_answer(demo_study, reader="somebody", phase=UNAIDED, case="c001", decision="benign",
                                confidence=1, seconds=1)


def test_codes_are_random_hashed_with_scrypt_and_written_once_outside_the_study(demo_study, tmp_path) -> None:
    codes = codes_of(demo_study)
    assert len(codes) == len(READERS) + 1 and len(set(codes.values())) == len(codes)
    for code in codes.values():
        assert re.fullmatch(r"[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}", code)  # 10 of 32 letters: 50 bits
    assert len(access.CODE_ALPHABET) == 32 == len(set(access.CODE_ALPHABET))
    codes_file = tmp_path / "codes" / "demo-12.txt"
    assert os.stat(codes_file).st_mode & 0o777 == 0o600
    stored = json.loads((demo_study.path / access.ACCESS_FILE).read_text())
    record = stored["readers"]["first"]
    salt = bytes.fromhex(record["salt"])
    expected = hashlib.scrypt(codes["first"].replace("-", "").encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    assert record["hash"] == expected.hex() and len(salt) == 16
    assert len({item["salt"] for item in stored["readers"].values()}) == len(READERS)  # a salt per code
    with pytest.raises(study_module.StudyError, match="exists already"):
        access.write_codes_file(codes_file, demo_study, {"x": "y"})
    with pytest.raises(study_module.StudyError, match="inside the study folder"):
        access.write_codes_file(demo_study.path / "codes.txt", demo_study, {"x": "y"})
    assert not (demo_study.path / "codes.txt").exists()


def test_ten_wrong_codes_make_the_client_wait_a_minute(demo_study) -> None:
    codes = codes_of(demo_study)
    start = 1_000_000.0
    for attempt in range(access.MAX_FAILURES):
        with pytest.raises(access.AccessError, match="unknown code"):
            access.sign_in(demo_study, "WRONG-CODE2", "browser-1", now=start + attempt)
    last = start + access.MAX_FAILURES - 1
    with pytest.raises(access.RateLimited, match="try again in 60 s"):
        access.sign_in(demo_study, codes["first"], "browser-1", now=last + 0.5)  # even the right code waits
    assert access.sign_in(demo_study, codes["first"], "browser-2", now=last + 1).reader == "first"  # another client
    with pytest.raises(access.RateLimited):
        access.sign_in(demo_study, codes["first"], "browser-1", now=last + 59)
    assert access.sign_in(demo_study, codes["first"], "browser-1", now=last + 61).reader == "first"
    # the log keeps neither the codes nor the address
    log = (demo_study.path / access.FAILURES_FILE).read_text()
    assert "browser-1" not in log and "WRONG" not in log and codes["first"] not in log


def test_twenty_processes_saving_through_the_page_keep_every_answer_under_its_reader(demo_study, tmp_path) -> None:
    names = [f"parallel-{number:02d}" for number in range(20)]
    codes = access.add_readers(demo_study, names)
    script = textwrap.dedent("""
        import sys
        from melanet.studies import access, study
        from dashboard import study_reading
        opened = study.open_study(sys.argv[1])
        identity = access.sign_in(opened, sys.argv[2], "process")
        for position, case in enumerate(study.case_order(opened, identity.reader, "unaided")):
            study_reading.save_answer(opened, identity, phase="unaided", case=case,
                                      decision="malignant" if position % 2 else "benign",
                                      confidence=1 + position % 5, seconds=float(position))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    workers = [subprocess.Popen([sys.executable, "-c", script, str(demo_study.path), codes[name]], cwd=REPO, env=env,
                                stderr=subprocess.PIPE, text=True) for name in names]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    rows = responses.read_responses(demo_study)
    assert len(rows) == 20 * 12
    for name in names:
        order = study_module.case_order(demo_study, name, UNAIDED)
        mine = {row["case"]: row for row in rows if row["reader"] == name}
        assert len(mine) == 12
        for position, case in enumerate(order):
            assert (mine[case]["decision"], mine[case]["confidence"], mine[case]["seconds"]) == (
                "malignant" if position % 2 else "benign", 1 + position % 5, float(position))


def test_creation_warns_about_a_study_too_small(tmp_path, monkeypatch, capsys) -> None:
    from melanet.studies import sample_size

    monkeypatch.chdir(REPO)
    warnings = create.design_warnings(6, 6, 3)
    assert any("needs at least 10 of each class" in line for line in warnings)
    # the reference pilot's case count for 8 readers, from the Van Dyke components recomputed in
    # tests/test_sample_size.py; a study that large gets no sample-size warning
    needed = sample_size.cases_needed(sample_size.REFERENCE_PILOT, 8, 0.05)["cases"]
    assert any(f"need about {needed} cases" in line for line in create.design_warnings(30, 30, 8))
    assert not create.design_warnings(needed // 2 + 1, needed // 2 + 1, 8)
    assert any("no number of cases reaches power" in line for line in create.design_warnings(100, 100, 3))
    code = cli_main(["reader-study", "create", "--run", str(DEMO_RUN), "--name", "small", "--cases", "12",
                     "--readers", "X,Y,Z", "--codes-out", str(tmp_path / "c.txt"), "--root", str(tmp_path / "s")])
    captured = capsys.readouterr()
    assert code == 0 and "warning:" in captured.err and "needs at least 10 of each class" in captured.err
    printed = [line.split()[-1] for line in captured.out.splitlines() if line.startswith("  ")]
    assert len(printed) == 4 and all(code in (tmp_path / "c.txt").read_text() for code in printed)


def test_a_study_without_codes_opens_read_only_and_says_how_to_add_them(demo_study, tmp_path, monkeypatch) -> None:
    create.copy_study(demo_study, tmp_path / "models" / "demo" / "studies")  # shipped: no codes
    app = open_reader_page(monkeypatch, tmp_path / "mine", tmp_path / "models")
    assert app.selectbox(key="study_pick").value == "models/demo/studies/demo-12"
    assert not app.exception, [item.value for item in app.exception]
    message = " ".join(str(item.value) for item in app.info)
    assert "read-only" in message and "melanet reader-study add-reader" in message
    assert not [widget for widget in app.text_input if widget.key == "reader_code"]


def error_after(app, key: str) -> str | None:
    """The text of the error element right after the widget ``key`` (None when the next one is no error)."""
    elements = [element for element in page_elements(app.main) if getattr(element, "type", "") not in ("", None)]
    for index, element in enumerate(elements):
        if getattr(element, "key", None) == key:
            following = elements[index + 1] if index + 1 < len(elements) else None
            return str(following.value) if following is not None and following.type == "error" else None
    raise AssertionError(f"no widget {key!r} on the page")


def test_the_new_study_form_shows_the_command_lines_errors_beside_each_field(demo_study, tmp_path, monkeypatch) -> None:
    app = open_reader_page(monkeypatch, demo_study.path.parent, REPO / "models")
    app.session_state["study_view"] = "New study"
    app.run()
    assert app.selectbox(key="create_run").value == "models/demo/augment10x"  # classifier runs only
    assert "models/demo/gan" not in app.selectbox(key="create_run").options

    widgets = {"create_run": "selectbox", "create_name": "text_input", "create_cases": "number_input",
               "create_seed": "number_input", "create_aided": "checkbox", "create_readers": "text_input",
               "create_codes_out": "text_input"}

    def submit(**values) -> None:
        for key, value in values.items():
            getattr(app, widgets[key])(key=key).set_value(value)
        next(button for button in app.button if button.label == "Create study").click().run()

    codes_file = tmp_path / "private" / "fresh-codes.txt"
    submit(create_run="models/demo/melanet", create_name="../escape", create_cases=12, create_seed=1,
           create_readers="Dr X, Dr Y", create_codes_out=str(codes_file))
    assert "study name '../escape'" in error_after(app, "create_name")
    assert error_after(app, "create_cases") is None and error_after(app, "create_run") is None
    submit(create_name="demo-12")  # the fixture's study
    assert "exists already" in error_after(app, "create_name")
    submit(create_name="fresh", create_cases=500)
    assert "--cases must be between 2 and 73" in error_after(app, "create_cases")
    assert error_after(app, "create_name") is None
    submit(create_cases=12, create_seed=-3)
    assert "--seed must be a whole number >= 0" in error_after(app, "create_seed")
    unevaluated = Path(shutil.copytree(DEMO_RUN, tmp_path / "models" / "demo" / "unevaluated"))
    (unevaluated / "metrics.json").unlink()
    monkeypatch.setenv("MELANET_MODELS_DIR", str(tmp_path / "models"))
    app.run()
    submit(create_run="models/demo/unevaluated", create_seed=2)
    assert "not evaluated" in error_after(app, "create_run")
    assert not (demo_study.path.parent / "fresh").exists()
    monkeypatch.setenv("MELANET_MODELS_DIR", str(REPO / "models"))
    app.run()
    submit(create_run="models/demo/melanet", create_aided=False, create_codes_out=str(demo_study.path.parent / "fresh" / "c.txt"))
    assert "inside the study folder" in error_after(app, "create_codes_out")
    submit(create_codes_out=str(codes_file))
    # 12 cases: warned before anything is made; a second click creates it
    assert any("needs at least 10 of each class" in str(item.value) for item in app.warning)
    assert not (demo_study.path.parent / "fresh").exists()
    next(button for button in app.button if button.label == "Create anyway").click().run()
    assert not app.exception, [item.value for item in app.exception]
    made = study_module.open_study(demo_study.path.parent / "fresh")
    assert os.stat(codes_file).st_mode & 0o777 == 0o600
    issued = [line.split("\t")[-1] for line in codes_file.read_text().splitlines()[1:]]
    assert len(issued) == 3 and [record["reader"] for record in access.public_readers(made)] == ["Dr X", "Dr Y"]
    shown = " ".join(str(element.value) for element in page_elements(app.main) if hasattr(element, "value"))
    assert not [code for code in issued if code in shown]  # the page never shows the codes
    same = create.create_study(DEMO_RUN, "fresh-cli", root=tmp_path / "cli",
                               options=create.CreateOptions(cases=12, seed=2, aided=False))
    assert [case.image for case in made.cases] == [case.image for case in same.cases] and made.phases == ("unaided",)
    assert app.selectbox(key="study_pick").value == "studies/fresh"  # the new study is opened for reading


# -- MRMC over readers -----------------------------------------------------------------------------


def test_mrmc_says_not_enough_readings_below_the_minimum_and_leaves_incomplete_readers_out(
        demo_study, monkeypatch) -> None:
    answer_all(demo_study, "first", UNAIDED, lambda case: ("malignant", 3) if case.label else ("benign", 2))
    result = results.compute_results(demo_study)
    for section in result["mrmc"].values():
        assert section == {"available": False, "reason": "not enough readings",
                           "complete_readers": section["complete_readers"],
                           "minimum": {"readers": 2, "cases_per_class": 10}}
    assert all('"p"' not in json.dumps(section) for section in result["mrmc"].values())
    # with the class minimum lowered for this 12-case study: 2 complete readers, a third one incomplete
    monkeypatch.setattr(results, "MINIMUM_CASES_PER_CLASS", 2)
    answer_all(demo_study, "second", UNAIDED, lambda case: ("malignant", 1) if case.prob_malignant > 0.5
               else ("benign", 1))
    first_case = study_module.case_order(demo_study, "third", UNAIDED)[0]
    responses.record_answer(demo_study, reader="third", phase=UNAIDED, case=first_case, decision="benign",
                            confidence=3, seconds=2.0)
    result = results.compute_results(demo_study)
    section = result["mrmc"]["unaided_vs_model"]
    assert section["available"] and section["readers"] == ["first", "second"]
    assert result["incomplete_readers"] == ["third"]
    assert section["treatments"] == ["unaided", "model"]
    labels, probabilities = labels_and_probabilities(demo_study)
    assert section["auc"]["model"]["first"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities))
    assert section["auc"]["unaided"]["first"] == 1.0
    assert result["mrmc"]["aided_vs_unaided"]["reason"] == "not enough readings"  # nobody read aided


def test_the_results_view_says_not_enough_readings(demo_study, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    answer_all(demo_study, "first", UNAIDED, lambda case: ("benign", 2))
    monkeypatch.setenv("MELANET_STUDIES_DIR", str(demo_study.path.parent))
    monkeypatch.setenv("MELANET_MODELS_DIR", str(demo_study.path.parent / "no-models"))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/reader_study.py")
    app.run()
    sign_in(app, codes_of(demo_study)["organiser"])
    app.session_state["study_view"] = "Results"
    app.run()
    shown = " ".join(str(element.value) for kind in ("markdown", "caption") for element in getattr(app, kind))
    assert "not enough readings" in shown and "post hoc" in shown
    assert "p = 0.000" not in shown


def test_the_results_view_tables_the_sample_size_of_the_next_study(demo_study, monkeypatch) -> None:
    from melanet.studies import sample_size

    monkeypatch.setattr(results, "MINIMUM_CASES_PER_CLASS", 2)
    generator = random.Random(3)
    for reader in ("first", "second", "third"):
        for phase in (UNAIDED, AIDED):
            answer_all(demo_study, reader, phase, lambda case: (("malignant" if generator.random() < 0.3 + 0.4 * case.label
                                                                 else "benign"), generator.randint(1, 5)))
    section = results.compute_results(demo_study)["mrmc"]["aided_vs_unaided"]
    assert section["available"]
    app = open_reader_page(monkeypatch, demo_study.path.parent, demo_study.path.parent / "no-models")
    sign_in(app, codes_of(demo_study)["organiser"])
    app.session_state["study_view"] = "Results"
    app.run()
    caution = " ".join(str(item.value) for item in app.warning)
    assert "the pilot has 3 readers and 12 cases" in caution  # under 4 readers and 50 cases
    app.number_input(key="sample_size_delta").set_value(0.1).run()
    assert not app.exception, [item.value for item in app.exception]
    assert app.selectbox(key="sample_size_pilot").value == "aided_vs_unaided"
    expected = sample_size.sample_size_table(sample_size.Pilot.from_analysis(section), 0.1)
    table = next(element for element in app.table if "cases needed" in element.value.columns)
    shown = table.value.reset_index()
    assert list(shown["readers"]) == [str(row["readers"]) for row in expected]
    assert list(shown["cases needed"]) == ["not reachable" if row["cases"] is None else str(row["cases"])
                                           for row in expected]
    assert any(row["cases"] is not None for row in expected)


def test_a_bad_row_of_cases_csv_is_named_by_its_line_and_a_missing_column_by_line_1(tmp_path: Path) -> None:
    """Line 1 is the header, so the second data row is line 3 (counted here by hand), in both kinds of study."""
    from melanet.studies import study as study_module

    plain = tmp_path / "plain.csv"
    plain.write_text("case,image,label,prob_malignant,model_decision\n"
                     "c1,ISIC_1,1,0.7,malignant\nc2,ISIC_2,1,2.5,malignant\n", encoding="utf-8")
    with pytest.raises(study_module.StudyError, match=r"plain\.csv: line 3: "):
        study_module._read_cases(plain)
    synthetic = tmp_path / "synthetic.csv"
    synthetic.write_text("case,image,label,file\nc1,ISIC_1,0,images/c1.png\nc2,syn_2,1,../c2.png\n", encoding="utf-8")
    with pytest.raises(study_module.StudyError, match=r"synthetic\.csv: line 3: "):
        study_module._read_synthetic_cases(synthetic)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("case,image\nc1,ISIC_1\n", encoding="utf-8")
    with pytest.raises(study_module.StudyError, match=r"headerless\.csv: line 1: missing column\(s\) file, label"):
        study_module._read_synthetic_cases(headerless)
