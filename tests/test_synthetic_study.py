"""Real-or-synthetic reader studies (issue 34 item 5): the scoring against hand-computed values and a slow
reference, a study made from a real smoke GAN run, read by two code-authenticated readers through the page's
save function and scored; its blinding; the reading screen and the Synthesized lesions page."""

from __future__ import annotations

import base64
import csv
import itertools
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from melanet.studies import access, responses, results, synthetic_results, synthetic_study
from melanet.studies import study as study_module

from dashboard import study_reading

REPO = Path(__file__).resolve().parents[1]
Z = 1.959963984540054  # the 95 % normal quantile
UNAIDED = study_module.PHASES[0]


# -- scoring, by hand -------------------------------------------------------------------------------


def tiny_study(tmp_path: Path, labels: list[int]) -> study_module.Study:
    """A real-or-synthetic Study value with ``labels`` (1 = synthetic); its cases need no files to be scored."""
    cases = tuple(study_module.Case(case=f"c{index:03d}", image=f"image{index}", label=label, prob_malignant=math.nan,
                                    model_decision="", file=f"images/c{index:03d}.png")
                  for index, label in enumerate(labels, start=1))
    return study_module.Study(path=tmp_path, cases=cases, info={"kind": study_module.REAL_OR_SYNTHETIC,
                                                                "phases": [UNAIDED], "seed": 0})


def answer_rows(study: study_module.Study, reader: str, ratings: list[int]) -> list[dict]:
    """Answer rows giving ``ratings`` (1..10) to the study's cases in order."""
    rows = []
    for case, value in zip(study.cases, ratings):
        decision, confidence = ("synthetic", value - 5) if value > 5 else ("real", 6 - value)
        rows.append({"case": case.case, "image": case.image, "reader": reader, "phase": UNAIDED,
                     "decision": decision, "confidence": confidence, "seconds": 2.0, "note": ""})
    return rows


def test_the_rating_runs_from_certain_real_to_certain_synthetic() -> None:
    assert [synthetic_results.rating("real", c) for c in (5, 4, 3, 2, 1)] == [1, 2, 3, 4, 5]
    assert [synthetic_results.rating("synthetic", c) for c in (1, 2, 3, 4, 5)] == [6, 7, 8, 9, 10]


def test_a_reader_scored_by_hand(tmp_path) -> None:
    """Cases: synthetic, synthetic, real, real. Reader "right" rates them 10, 6, 5, 1 (all right); reader
    "half" rates them 10, 1, 6, 5 (right on the first and the last)."""
    study = tiny_study(tmp_path, [1, 1, 0, 0])
    right = synthetic_results.reader_figures(study, responses.answers_of(answer_rows(study, "right", [10, 6, 5, 1]),
                                                                         "right", UNAIDED))
    assert right["correct"] == 4 and right["accuracy"] == 1.0
    # Wilson at 4 of 4: low = 1 / (1 + z^2/4), high = 1
    assert right["accuracy_ci"] == pytest.approx([1 / (1 + Z * Z / 4), 1.0], abs=1e-9)
    assert right["auc"] == 1.0 and right["auc_se"] == 0.0 and right["auc_ci"] == [1.0, 1.0]
    half = synthetic_results.reader_figures(study, responses.answers_of(answer_rows(study, "half", [10, 1, 6, 5]),
                                                                        "half", UNAIDED))
    assert half["correct"] == 2 and half["accuracy"] == 0.5
    # Wilson at 2 of 4: centre 0.5, half-width z sqrt(1/16 + z^2/64) / (1 + z^2/4)
    width = Z * math.sqrt(1 / 16 + Z * Z / 64) / (1 + Z * Z / 4)
    assert half["accuracy_ci"] == pytest.approx([0.5 - width, 0.5 + width], abs=1e-9)
    assert half["sensitivity"] == 0.5 and half["specificity"] == 0.5
    # AUC: the synthetic 10 beats both real (6, 5), the synthetic 1 beats none: 2 of 4 pairs
    assert half["auc"] == 0.5
    # DeLong: synthetic components [1, 0] (sample variance 1/2), real components [1/2, 1/2] (0):
    # var = (1/2)/2 + 0/2 = 1/4, SE 1/2; the CI 0.5 -+ 0.98 is clipped to [0, 1]
    assert half["auc_se"] == pytest.approx(0.5, abs=1e-12)
    assert half["auc_ci"] == [0.0, 1.0]
    assert "includes 0.5" in half["sentence"] and "0.5 means indistinguishable" in half["sentence"]


def test_two_readers_pooled_by_hand(tmp_path) -> None:
    """The same two readers, pooled. Jackknife AUCs leaving out each case in turn: "right" 1, 1, 1, 1;
    "half" 0, 1, 1/2, 1/2. Their covariance (3/4 sum of products of deviations): var(right) = 0, var(half)
    = 3/4 (1/4 + 1/4) = 3/8, Cov2 = 0. MS(R) = (1/4)^2 + (1/4)^2 = 1/8 on 1 df; SE^2 = (1/8 + 2 * 0) / 2 =
    1/16; df = (1/8)^2 / ((1/8)^2 / 1) = 1; t = (3/4 - 1/2) / (1/4) = 1, and on 1 df (Cauchy) p = 1/2."""
    study = tiny_study(tmp_path, [1, 1, 0, 0])
    rows = answer_rows(study, "right", [10, 6, 5, 1]) + answer_rows(study, "half", [10, 1, 6, 5])
    pooled = synthetic_results.pooled(study, ["half", "right"], rows, [0.5, 1.0])
    assert pooled["available"]
    assert pooled["reader_aucs"] == [0.5, 1.0] and pooled["auc"] == 0.75
    assert pooled["variance_components"]["cov2"] == pytest.approx(0.0, abs=1e-12)
    assert pooled["variance_components"]["var_error"] == pytest.approx(3 / 16, abs=1e-12)  # mean of 0 and 3/8
    assert pooled["variance_components"]["ms_r"] == pytest.approx(1 / 8, abs=1e-12)
    assert pooled["auc_se"] == pytest.approx(0.25, abs=1e-12) and pooled["df"] == pytest.approx(1.0, abs=1e-12)
    t_critical = 12.706204736174707  # Student's t, 0.975 quantile, 1 df (tables: 12.706)
    assert pooled["auc_ci"] == pytest.approx([0.75 - t_critical * 0.25, 0.75 + t_critical * 0.25], abs=1e-9)
    assert pooled["t_vs_chance"] == pytest.approx(1.0) and pooled["p_vs_chance"] == pytest.approx(0.5, abs=1e-12)
    assert pooled["mean_accuracy"] == 0.75
    # one finished reader is not pooled
    assert not synthetic_results.pooled(study, ["right"], rows, [1.0])["available"]


def slow_auc(labels: list[int], scores: list[float]) -> float:
    """Mann-Whitney by counting pairs (ties one half)."""
    positives = [s for s, y in zip(scores, labels) if y == 1]
    negatives = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_pooled_auc_matches_a_slow_jackknife_of_three_readers(tmp_path) -> None:
    """A reference written out loop by loop: leave each case out, recount every reader's AUC, take the
    jackknife covariance, Cov2 as the mean off-diagonal entry, and the single-treatment formulas."""
    generator = np.random.default_rng(11)
    labels = [1] * 9 + [0] * 11
    study = tiny_study(tmp_path, labels)
    ratings = {reader: [int(np.clip(round(5.5 + 2.2 * (y - 0.5) * skill + generator.normal(0, 2)), 1, 10))
                        for y in labels] for reader, skill in (("a", 1.0), ("b", 2.0), ("c", 0.3))}
    rows = [row for reader, values in ratings.items() for row in answer_rows(study, reader, values)]
    pooled = synthetic_results.pooled(study, ["a", "b", "c"], rows, [0.6, 0.7, 0.5])
    readers = ["a", "b", "c"]
    c, r = len(labels), len(readers)
    aucs = [slow_auc(labels, ratings[reader]) for reader in readers]
    left_out = [[slow_auc(labels[:k] + labels[k + 1:], ratings[reader][:k] + ratings[reader][k + 1:])
                 for k in range(c)] for reader in readers]
    means = [sum(values) / c for values in left_out]
    covariance = [[(c - 1) / c * sum((left_out[i][k] - means[i]) * (left_out[j][k] - means[j]) for k in range(c))
                   for j in range(r)] for i in range(r)]
    cov2 = sum(covariance[i][j] for i in range(r) for j in range(r) if i != j) / (r * (r - 1))
    mean = sum(aucs) / r
    ms_r = sum((value - mean) ** 2 for value in aucs) / (r - 1)
    term = ms_r + r * max(cov2, 0.0)
    se, df = math.sqrt(term / r), term ** 2 / (ms_r ** 2 / (r - 1))
    half = stats.t.ppf(0.975, df) * se
    assert pooled["reader_aucs"] == pytest.approx(aucs, abs=1e-12)
    assert pooled["variance_components"]["cov2"] == pytest.approx(cov2, abs=1e-12)
    assert cov2 > 0  # the reference exercises the Cov2 term
    assert pooled["auc_se"] == pytest.approx(se, abs=1e-12) and pooled["df"] == pytest.approx(df, rel=1e-9)
    assert pooled["auc_ci"] == pytest.approx([mean - half, mean + half], abs=1e-9)


def test_the_sentence_says_what_the_interval_says() -> None:
    assert "better than chance" in synthetic_results.sentence(0.9, [0.8, 0.97], "the readers")
    assert "includes 0.5" in synthetic_results.sentence(0.55, [0.4, 0.7], "the readers")
    assert "below chance" in synthetic_results.sentence(0.2, [0.1, 0.4], "the readers")


# -- a study from a real smoke GAN run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_gan(tmp_path_factory) -> Path:
    """A smoke CycleGAN run (configs/smoke.yaml, 32 px) trained and synthesized through the command line."""
    run = tmp_path_factory.mktemp("gan") / "smoke-gan"
    for verb in (["train-gan", "--config", "configs/smoke.yaml"], ["synthesize"]):
        done = subprocess.run([sys.executable, "-m", "melanet", "-q", *verb, "--run", str(run)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture
def made(smoke_gan, tmp_path, monkeypatch) -> tuple[study_module.Study, dict[str, str]]:
    """A 20-case study of the smoke run made by the command line, and its codes (name -> code)."""
    monkeypatch.chdir(REPO)
    codes_file = tmp_path / "codes.txt"
    done = subprocess.run([sys.executable, "-m", "melanet", "-q", "reader-study", "create", "--synthetic-from",
                           str(smoke_gan), "--name", "real-or-not", "--readers", "A,B", "--codes-out", str(codes_file),
                           "--cases", "20", "--seed", "4", "--root", str(tmp_path / "studies")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "10 real training melanomas, 10 synthetic" in done.stdout
    codes = {}
    for line in codes_file.read_text().splitlines()[1:]:
        parts = line.split("\t")
        codes[parts[0] if parts[0] == "organiser" else parts[1]] = parts[-1]
    return study_module.open_study(tmp_path / "studies" / "real-or-not"), codes


def png_chunks(path: Path) -> list[str]:
    """The chunk types of a PNG file, in order."""
    data, position, chunks = path.read_bytes(), 8, []
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.append(kind.decode("ascii"))
        position += 12 + length
    return chunks


def test_the_study_is_blinded_and_its_images_differ_only_in_content(made, smoke_gan) -> None:
    from melanet import config as config_module
    from melanet.data import splits
    from melanet.gan import synthesis

    study, _ = made
    assert study.kind == study_module.REAL_OR_SYNTHETIC and study.phases == (UNAIDED,)
    assert sum(case.label for case in study.cases) == 10 and len(study.cases) == 20
    files = sorted(path.name for path in (study.path / study_module.IMAGES_FOLDER).iterdir())
    # file names and case ids are the case number and nothing else
    assert files == sorted(f"{case.case}.png" for case in study.cases)
    assert all(re.fullmatch(r"images/c\d{3}\.png", case.file) for case in study.cases)
    assert all(re.fullmatch(r"c\d{3}", case.case) for case in study.cases)
    # nothing of an image's origin in any name in the study folder, besides cases.csv's own columns
    names = " ".join(str(path.relative_to(study.path)) for path in study.path.rglob("*"))
    assert "syn" not in names.lower() and "ISIC" not in names
    # one size, one mode, one format, one set of PNG chunks (no metadata on either kind)
    shapes, chunk_sets = set(), set()
    for case in study.cases:
        with Image.open(study.image_path(case)) as image:
            shapes.add((image.format, image.mode, image.size))
        chunk_sets.add(tuple(sorted(set(png_chunks(study.image_path(case))))))
    assert shapes == {("PNG", "RGB", (32, 32))} and chunk_sets == {("IDAT", "IEND", "IHDR")}
    # the real cases are the run's own training melanomas as synthesis saw its sources; the synthetic ones
    # are the manifest's PNGs, pixel for pixel
    config = config_module.load_config(smoke_gan / "config.yaml")
    training, _ = splits.training_and_validation(config.data, config.seed)
    by_id = {image_id: index for index, image_id in enumerate(training.ids)}
    manifest = {row["synthetic_id"]: row for row in synthesis.read_manifest(smoke_gan)}
    for case in study.cases:
        pixels = np.asarray(Image.open(study.image_path(case)))
        if case.label:
            expected = np.asarray(Image.open(smoke_gan / manifest[case.image]["path"]).convert("RGB"))
        else:
            assert training.labels[by_id[case.image]] == 1  # a real melanoma of the training split
            expected = np.asarray(training.images[by_id[case.image]])
        assert np.array_equal(pixels, expected), case
    # the labels are mixed in the case order, not in two blocks
    labels = [case.label for case in study.cases]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)
    info = json.loads((study.path / study_module.STUDY_FILE).read_text())
    assert info["kind"] == "real-or-synthetic" and info["images"]["size_px"] == [32, 32]


def test_two_readers_read_it_through_the_page_and_it_is_scored(made) -> None:
    study, codes = made
    a = access.sign_in(study, codes["A"], "browser-a")
    b = access.sign_in(study, codes["B"], "browser-b")
    with pytest.raises(access.AccessError):
        access.sign_in(study, "AAAAA-AAAAA", "browser-c")
    # reader A is always right and sure; reader B calls everything real with confidence 3
    for case_id in study_module.case_order(study, "A", UNAIDED):
        decision = "synthetic" if study.case(case_id).label else "real"
        study_reading.save_answer(study, a, phase=UNAIDED, case=case_id, decision=decision, confidence=5, seconds=4)
    with pytest.raises(study_module.StudyError, match="decision must be one of"):
        study_reading.save_answer(study, b, phase=UNAIDED, case=study.cases[0].case, decision="malignant",
                                  confidence=3, seconds=1)
    order_b = study_module.case_order(study, "B", UNAIDED)
    for case_id in order_b[:-1]:
        study_reading.save_answer(study, b, phase=UNAIDED, case=case_id, decision="real", confidence=3, seconds=4)
    # B has not finished: no figures for B, none for anyone without a code, all for the organiser
    organiser = access.sign_in(study, codes["organiser"], "browser-o")
    with pytest.raises(access.AccessError, match="answered every case"):
        results.results_for(study, b)
    with pytest.raises(access.AccessError):
        results.shown_results(study, None)
    early = results.shown_results(study, organiser)
    assert not early["pooled"]["available"] and early["incomplete_readers"] == ["B"]
    study_reading.save_answer(study, b, phase=UNAIDED, case=order_b[-1], decision="real", confidence=3, seconds=4)

    done = subprocess.run([sys.executable, "-m", "melanet", "reader-study", "results", str(study.path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    scored = json.loads((study.path / study_module.RESULTS_FILE).read_text())
    by_reader = {entry["reader"]: entry for entry in scored["readers"]}
    assert by_reader["A"]["accuracy"] == 1.0 and by_reader["A"]["auc"] == 1.0
    assert by_reader["A"]["accuracy_ci"][0] == pytest.approx(20 / (20 + Z * Z), abs=1e-9)  # Wilson at 20 of 20
    assert by_reader["B"]["accuracy"] == 0.5 and by_reader["B"]["auc"] == 0.5  # one rating for all: ties
    assert by_reader["B"]["sensitivity"] == 0.0 and by_reader["B"]["specificity"] == 1.0
    # pooled by hand: jackknife AUCs are constant for both (1 and 1/2), so Cov2 = 0; MS(R) = 1/8,
    # SE = sqrt(1/8 / 2) = 1/4 on 1 df
    pooled = scored["pooled"]
    assert pooled["available"] and pooled["auc"] == 0.75
    assert pooled["auc_se"] == pytest.approx(0.25) and pooled["df"] == pytest.approx(1.0)
    assert scored["sentence"].startswith("The 2 readers together told synthetic from real melanomas at AUC 0.75")
    assert "AUC 0.75" in done.stdout and "accuracy 100.0%" in done.stdout
    # everyone has finished: figures for anyone, readers unnamed; a reader's own view holds only theirs
    public = results.shown_results(study, None)
    assert sorted(entry["reader"] for entry in public["readers"]) == ["reader 1", "reader 2"]
    assert "A" not in json.dumps(public["pooled"]["readers"])
    own = results.results_for(study, b)
    assert [entry["reader"] for entry in own["readers"]] == ["B"] and "pooled" not in own


# -- the reading screen and the Synthesized lesions page ------------------------------------------------


def page_elements(node) -> list:
    found = []
    for child in getattr(node, "children", {}).values():
        found.append(child)
        found += page_elements(child)
    return found


def open_page(monkeypatch, page: str, studies: Path, runs_dir: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MELANET_STUDIES_DIR", str(studies))
    monkeypatch.setenv("MELANET_MODELS_DIR", str(studies.parent / "no-models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(runs_dir))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    app.run()
    app.switch_page(page)
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def test_the_reading_screen_asks_real_or_synthetic_and_shows_no_model(made, monkeypatch) -> None:
    study, codes = made
    access.set_experience(study, "A", 9, "dermatologist", 200)
    app = open_page(monkeypatch, "pages/reader_study.py", study.path.parent, study.path.parent / "no-runs")
    app.text_input(key="reader_code").input(codes["A"])
    next(button for button in app.button if button.label == "Start reading").click().run()
    assert not app.exception, [item.value for item in app.exception]
    assert "Case 1 of 20" in [item.value for item in app.subheader]
    question = next(radio for radio in app.radio if radio.label == "Real or synthetic?")
    assert list(question.options) == ["real", "synthetic"]
    assert not [radio for radio in app.radio if "decision" in radio.label.lower()]
    viewers = [element.proto.srcdoc for element in page_elements(app.main) if getattr(element, "type", "") == "iframe"]
    shown = " ".join(str(element.value) for kind in ("markdown", "caption", "info", "subheader", "text")
                     for element in getattr(app, kind)) + " ".join(viewers)
    assert "P(malignant)" not in shown and "Model:" not in shown and "heat map" not in shown
    assert "benign" not in shown.lower() and "malignant" not in " ".join(r.label for r in app.radio).lower()
    assert len(viewers) == 1 and 'id="show-heat"' not in viewers[0]
    first = study.case(study_module.case_order(study, "A", UNAIDED)[0])
    assert first.image not in shown and "syn_" not in shown  # nothing of the case's origin reaches the browser
    source = re.search(r'id="lesion" alt="lesion" src="data:image/png;base64,([^"]+)"', viewers[0]).group(1)
    assert base64.b64decode(source) == study.image_path(first).read_bytes()
    question.set_value("synthetic")
    next(radio for radio in app.radio if radio.label.startswith("Confidence")).set_value(4)
    next(button for button in app.button if button.label == "Save and next").click().run()
    assert "Case 2 of 20" in [item.value for item in app.subheader]
    saved = responses.read_responses(study)
    assert [(row["reader"], row["case"], row["decision"], row["confidence"]) for row in saved] == [
        ("A", first.case, "synthetic", 4)]


def test_the_lesions_page_shows_the_study_only_to_the_organiser_until_everyone_finished(made, smoke_gan,
                                                                                       monkeypatch) -> None:
    study, codes = made
    for reader in ("A", "B"):
        for case_id in study_module.case_order(study, reader, UNAIDED)[: 20 if reader == "A" else 5]:
            responses.record_answer(study, reader=reader, phase=UNAIDED, case=case_id,
                                    decision="synthetic" if study.case(case_id).label else "real", confidence=5,
                                    seconds=1)
    app = open_page(monkeypatch, "pages/lesions.py", study.path.parent, smoke_gan.parent)
    text = lambda: " ".join(str(item.value) for kind in ("markdown", "caption", "info") for item in getattr(app, kind))
    assert f"Study {study.name}" in text() and "No figures" in text() and "told synthetic from real" not in text()
    app.text_input(key=f"lesions_code_{study.name}").input(codes["organiser"])
    next(button for button in app.button if button.label == "Show the figures").click().run()
    assert not app.exception, [item.value for item in app.exception]
    assert "The one reader who finished told synthetic from real melanomas at AUC 1.00" in text()
    # a fresh session without a code, after B finishes too: the pooled figures, readers unnamed
    for case_id in study_module.case_order(study, "B", UNAIDED)[5:]:
        responses.record_answer(study, reader="B", phase=UNAIDED, case=case_id, decision="real", confidence=5,
                                seconds=1)
    app = open_page(monkeypatch, "pages/lesions.py", study.path.parent, smoke_gan.parent)
    assert "The 2 readers together told synthetic from real melanomas" in text()
    table = app.table[0].value
    assert list(table.index) == ["reader 1", "reader 2", "pooled (2 readers)"]
