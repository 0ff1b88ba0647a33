"""`melanet reproduce --seeds N`: one complete reproduce folder per seed, resumable, then a summary.

The children are a small stand-in for the melanet CLI (each stage's files in a moment, real child
processes), as in tests/test_reproduce.py; its evaluation writes real predictions.csv files whose
scores depend on the seed, so the summary's DeLong p-values and wins are computed from real files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.reproduce import reproduction, repeated_seeds
from melanet.runs import runs
from melanet.evaluation import delong
from melanet.reproduce import seeds_summary

REPOSITORY = Path(__file__).resolve().parents[1]

STAND_IN = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {repository!r})
    from melanet import config as config_module; from melanet.runs import runs

    arguments = [value for value in sys.argv[1:] if value not in ("-q", "-v")]
    verb, options, overrides = arguments[0], {{}}, []
    for flag, value in zip(arguments[1::2], arguments[2::2]):
        if flag == "--set":
            overrides.append(value)
        else:
            options[flag] = value
    folder = Path(options.get("--run") or options["--resume"])
    with open(os.environ["STAND_IN_LOG"], "a") as log:
        log.write(json.dumps({{"verb": verb, "folder": str(folder), "sets": overrides}}) + "\\n")
    if verb in ("train-gan", "train-classifier"):
        run = runs.Run.open(folder) if "--resume" in options else runs.Run.create(
            folder, config_module.load_config(options["--config"], overrides), verb)
        if os.environ.get("STAND_IN_FAIL") == f"{{verb}} {{folder.parent.name}}/{{folder.name}}":
            run.update_status(stage=verb, state="failed")
            sys.exit(1)
        name = "generator_benign_to_malignant.keras" if verb == "train-gan" else "model.keras"
        (folder / name).write_bytes(b"weights")
        if verb == "train-classifier":
            (folder / "validation_predictions.csv").write_text(
                "image,label,prob_malignant\\na,0,0.1\\nb,0,0.6\\nc,1,0.4\\nd,1,0.9\\n")
        run.update_status(stage=verb, state="done", progress=1.0)
    elif verb == "synthesize":
        (folder / "synthetic").mkdir(exist_ok=True)
        (folder / "synthetic" / "manifest.csv").write_text("synthetic_id,source_id,path,reconstruction_path\\n")
        runs.Run(folder).update_status(stage="synthesize", state="done")
    elif verb == "evaluate":
        import numpy as np  # only here: the other stand-in stages start faster without it
        from melanet.evaluation import evaluate, predictions
        run = runs.Run.open(folder)
        config = run.config()
        strength = {{"baseline": 1.0, "augment5x": 1.2, "augment10x": 1.1, "synthetic": 1.6}}
        generator = np.random.default_rng(config.seed)
        labels = np.array([0] * 40 + [1] * 20)
        noise = generator.normal(size=labels.size)
        scores = 1 / (1 + np.exp(-(noise + strength[config.classifier.training_set] * (labels - 0.5) * 2)))
        ids = [f"ISIC_{{index:07d}}" for index in range(labels.size)]
        predictions.write_predictions(folder, ids, labels, scores)
        report = evaluate.report_for_predictions(labels, scores, config.evaluation, config.seed,
                                                 folder / "validation_predictions.csv")
        runs.atomic_write_json(folder / "metrics.json", report)
        run.update_status(evaluation={{"state": "done"}})
    """
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stand_in")
    program = folder / "stand_in_melanet.py"
    program.write_text(STAND_IN.format(repository=str(REPOSITORY)))
    return {"program": program, "log": folder / "calls.jsonl", "folder": folder}


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def smoke() -> config_module.Config:
    return config_module.load_config(REPOSITORY / "configs" / "smoke.yaml", ["seed=42"])


@pytest.fixture(scope="module")
def three_seeds(stand_in: dict[str, Path]) -> dict:
    """Three seeds, the second failing once in a classifier, then the same command again."""
    results = stand_in["folder"] / "seeds"
    program = [sys.executable, str(stand_in["program"])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STAND_IN_LOG", str(stand_in["log"]))
        patch.setenv("STAND_IN_FAIL", "train-classifier seed-43/augment10x")
        with pytest.raises(reproduction.StageFailed, match="train-classifier augment10x failed") as failure:
            repeated_seeds.reproduce_seeds(results, smoke(), 3, program=program)
        first_status = runs.Run(results).status()
        first_calls = calls(stand_in["log"])
        patch.delenv("STAND_IN_FAIL")
        stand_in["log"].unlink()
        finished_status = (results / "seed-42" / "status.json").read_text()
        summary = repeated_seeds.reproduce_seeds(results, resume=True, program=program)
        second_calls = calls(stand_in["log"])
    return {"results": results, "failure": failure, "first_status": first_status, "first_calls": first_calls,
            "second_calls": second_calls, "summary": summary, "finished_status": finished_status}


def test_three_seeds_each_a_complete_reproduction_then_resume(three_seeds: dict) -> None:
    results, status = three_seeds["results"], three_seeds["first_status"]
    assert status["stage"] == "reproduce-seeds" and status["state"] == "failed"
    assert [entry["state"] for entry in status["runs"]] == ["done", "failed", "pending"]
    # the stand-in models the stages a seed repeats; the synthesis audit step is not modelled (it reruns)
    modelled = ("train-gan", "synthesize", "train-classifier", "evaluate")
    steps = [(step.verb, step.folder.name) for step in reproduction.plan(results / "seed-43") if step.verb in modelled]
    failing = steps.index(("train-classifier", "augment10x"))

    def seen(calls_made: list[dict], seed: int) -> list[tuple[str, str]]:
        return [(call["verb"], Path(call["folder"]).name) for call in calls_made
                if f"/seed-{seed}/" in call["folder"] and call["verb"] in modelled]

    assert seen(three_seeds["first_calls"], 42) == steps
    assert seen(three_seeds["first_calls"], 43) == steps[:failing + 1]
    assert seen(three_seeds["first_calls"], 44) == []
    # again, with the failure gone: seed 42 is not touched, seed 43 continues, seed 44 runs whole
    second = three_seeds["second_calls"]
    assert seen(second, 42) == []
    assert (results / "seed-42" / "status.json").read_text() == three_seeds["finished_status"]  # not even reopened
    assert seen(second, 43) == steps[failing:]
    assert seen(second, 44) == steps
    # every seed trained its own GAN and classifiers with its own seed
    for seed in (42, 43, 44):
        assert runs.Run(results / f"seed-{seed}" / "gan").config().seed == seed
        assert runs.Run(results / f"seed-{seed}" / "baseline").config().seed == seed
        gan_run = runs.Run(results / f"seed-{seed}" / "melanet").config().classifier.gan_run
        assert Path(gan_run) == (results / f"seed-{seed}" / "gan").resolve()
        assert runs.Run(results / f"seed-{seed}").status()["stage"] == "reproduce"
    summary = three_seeds["summary"]
    assert summary["seeds"] == [42, 43, 44] and summary["gan_seeds"] == [42, 43, 44]
    assert summary["scope"].startswith("GAN and classifiers")
    assert runs.Run(results).status()["state"] == "done"
    for name in seeds_summary.SUMMARY_FILES:
        assert (results / name).is_file()
    # each seed's reproduce folder carries its own paired comparison of the four classifiers
    comparison = json.loads((results / "seed-44" / "comparison.json").read_text())
    assert len(comparison["pairs"]) == 6 and comparison["n_images"] == 60


def test_summary_figures_come_from_the_seed_folders(three_seeds: dict) -> None:
    results = three_seeds["results"]
    summary = json.loads((results / "seeds.json").read_text())
    aucs = {name: [json.loads((results / f"seed-{seed}" / name / "metrics.json").read_text())["auc"]
                   for seed in (42, 43, 44)] for name in ("baseline", "augment5x", "augment10x", "melanet")}
    for method in summary["methods"]:
        values = np.array(aucs[method["folder"]])
        assert method["auc"]["mean"] == pytest.approx(values.mean())
        assert method["auc"]["sd"] == pytest.approx(values.std(ddof=1))
        assert (method["auc"]["min"], method["auc"]["max"]) == (pytest.approx(values.min()), pytest.approx(values.max()))
        wins = sum(values[index] == max(aucs[name][index] for name in aucs) for index in range(3))
        assert method["wins"] == wins
    # the per-seed p-value is DeLong's on that seed's predictions.csv files
    seed_folder = results / "seed-43"
    _, labels, melanet_scores = _read(seed_folder / "melanet")
    _, _, baseline_scores = _read(seed_folder / "baseline")
    expected = delong.delong_test(labels, melanet_scores, baseline_scores)
    entry = next(item for item in summary["per_seed"] if item["seed"] == 43)
    assert entry["melanet_vs"]["baseline"]["p"] == pytest.approx(expected["p"])
    assert entry["melanet_vs"]["baseline"]["p_holm"] >= entry["melanet_vs"]["baseline"]["p"]
    assert sorted(entry["melanet_vs"]) == ["augment10x", "augment5x", "baseline"]
    markdown = (results / "seeds.md").read_text()
    assert "GAN and classifiers" in markdown and f"{aucs['melanet'][1]:.3f}" in markdown
    rows = (results / "seeds.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 4


def test_summarize_reads_only_metrics_and_predictions(tmp_path: Path, three_seeds: dict) -> None:
    """`melanet reproduce --summarize DIR` rewrites the summary from seed folders stripped of everything else."""
    built = three_seeds["results"]
    shipped = tmp_path / "shipped"
    for path in built.glob("seed-*/*/"):
        names = ("metrics.json", "predictions.csv", "config.yaml") if (path / "metrics.json").is_file() else \
            ("config.yaml", "status.json") if path.name == "gan" else ()  # the GAN ships its config, no images
        for name in names:
            target = shipped / path.parent.name / path.name / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((path / name).read_bytes())
    built_summary = json.loads((built / "seeds.json").read_text())
    built.rename(tmp_path / "moved")  # the classifiers' saved classifier.gan_run paths now point nowhere
    result = subprocess.run([sys.executable, "-m", "melanet", "reproduce", "--summarize", str(shipped)],
                            capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr
    summary = json.loads((shipped / "seeds.json").read_text())
    assert summary["methods"] == built_summary["methods"]
    # each seed's GAN is still found (beside its classifiers), so the summary knows what the seeds varied
    assert summary["gan_seeds"] == built_summary["gan_seeds"] == [entry["seed"] for entry in summary["per_seed"]]
    assert "GAN and classifiers" in (shipped / "seeds.md").read_text()
    assert "Seeds won" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run([sys.executable, "-m", "melanet", "reproduce", "--summarize", str(empty)],
                            capture_output=True, text=True, cwd=REPOSITORY)
    assert failed.returncode == 2 and "no seed-<S> folder" in failed.stderr


def test_classifier_scope_shares_the_first_seeds_gan(tmp_path: Path, stand_in: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "seeds"
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "calls.jsonl"))
    summary = repeated_seeds.reproduce_seeds(results, smoke(), 2, scope="classifiers",
                                              program=[sys.executable, str(stand_in["program"])])
    verbs = [(call["verb"], Path(call["folder"]).parent.name) for call in calls(tmp_path / "calls.jsonl")]
    assert ("train-gan", "seed-43") not in verbs and ("train-gan", "seed-42") in verbs
    assert not (results / "seed-43" / "gan").exists()
    gan_run = runs.Run(results / "seed-43" / "melanet").config().classifier.gan_run
    assert Path(gan_run) == (results / "seed-42" / "gan").resolve()
    assert summary["scope"].startswith("classifiers only") and summary["gan_seeds"] == [42, 42]
    # the classifiers' seeds differ, their validation split stays the GAN's
    second = runs.Run(results / "seed-43" / "baseline").config()
    assert second.seed == 43 and second.data.split_seed == 42
    assert runs.Run(results / "seed-42" / "gan").config().data.split_seed == 42


def _read(folder: Path):
    from melanet.evaluation import predictions

    return predictions.read_predictions(folder / "predictions.csv")


def test_the_pooled_difference_resamples_the_images_jointly_for_every_seed() -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from melanet.reproduce import seeds_summary as seeds_module

    generator = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 30)
    first = np.vstack([labels * 0.6 + generator.normal(0, 0.5, 60) for _ in range(3)])
    second = np.vstack([labels * 0.2 + generator.normal(0, 0.5, 60) for _ in range(3)])
    result = seeds_module.pooled_difference(labels, first, second, samples=400, seed=1)
    expected = np.mean([roc_auc_score(labels, a) - roc_auc_score(labels, b) for a, b in zip(first, second)])
    assert abs(result["mean_delta_auc"] - expected) < 1e-12
    # a slow reference bootstrap with the same draws (same generator, same redraw rule)
    draws = np.random.default_rng(1)
    means = []
    while len(means) < 400:
        index = draws.integers(0, 60, 60)
        if labels[index].min() == labels[index].max():
            continue
        means.append(np.mean([roc_auc_score(labels[index], a[index]) - roc_auc_score(labels[index], b[index])
                              for a, b in zip(first, second)]))
    assert abs(result["ci_low"] - np.quantile(means, 0.025)) < 1e-9
    assert abs(result["ci_high"] - np.quantile(means, 0.975)) < 1e-9
    assert result["ci_low"] < expected < result["ci_high"] and result["p"] < 0.05
    # identical methods: difference 0, p 1
    same = seeds_module.pooled_difference(labels, first, first, samples=100)
    assert same["mean_delta_auc"] == 0 and same["p"] == 1.0
