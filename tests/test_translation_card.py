"""The model card of a MelaNet run says whether its GAN's synthetic "malignant" images look malignant."""

from __future__ import annotations

from pathlib import Path

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.reports import rescore

JUDGES = {"backbone": {"share": -0.0485, "share_low": -0.2961, "share_high": 0.1152, "above_source": 0.4279},
          "pixel": {"share": 0.0417, "share_low": -0.1201, "share_high": 0.1886, "above_source": 0.5109}}


def _predictions(path: Path, prefix: str) -> None:
    rows = [f"{prefix}_{index},{index % 2},{0.2 + 0.6 * (index % 2) + 0.01 * index}" for index in range(12)]
    path.write_text("image,label,prob_malignant\n" + "\n".join(rows) + "\n")


def _card(tmp_path: Path, audit: dict | None) -> str:
    gan = tmp_path / "gan"
    runs.Run.create(gan, config_module.load_config(None, [f"data.root={tmp_path / 'no-data'}"]), "train-gan")
    runs.atomic_write_csv(gan / layout.SYNTHETIC_MANIFEST_FILE, [{"synthetic_id": "syn_a", "source_id": "a",
                          "path": "synthetic/images/syn_a.png", "reconstruction_path": ""}],
                          ("synthetic_id", "source_id", "path", "reconstruction_path"))
    if audit is not None:
        runs.atomic_write_json(gan / layout.AUDIT_FILE, audit)
    folder = tmp_path / "melanet"
    config = config_module.load_config(None, ["evaluation.bootstrap_samples=100", "classifier.training_set=synthetic",
                                              f"classifier.gan_run={gan}", f"data.root={tmp_path / 'no-data'}"])
    runs.Run.create(folder, config, "train-classifier").update_status(state="done")
    _predictions(folder / layout.VALIDATION_PREDICTIONS_FILE, "val")
    _predictions(folder / layout.PREDICTIONS_FILE, "ISIC")
    rescore.rescore_run(folder)
    return (folder / layout.MODEL_CARD_FILE).read_text()


def test_the_card_carries_the_gan_audits_translation_share_and_probes(tmp_path: Path) -> None:
    audit = {"translation": {"judges": JUDGES},
             "feature_spaces": {"backbone": {"probe": {"synthetic_vs_real_malignant": 0.936}}},
             "realism": {"pixel_probe": {"auc": 0.944}}}
    lines = [line for line in _card(tmp_path, audit).splitlines() if line.startswith("- Translation of the synthetic")]
    assert len(lines) == 1
    line = lines[0]
    assert "barely move towards melanoma (-5% and 4% of the way, by two judges)" in line
    assert "probe AUC 0.94 and 0.94" in line
    assert "backbone judge -0.05 [-0.30, 0.12] (43% above their source)" in line
    assert "pixel judge 0.04 [-0.12, 0.19] (51% above their source)" in line


def test_without_a_translation_audit_the_card_says_how_to_measure_it(tmp_path: Path) -> None:
    text = _card(tmp_path, None)
    assert "- Translation of the synthetic images: not measured (`melanet audit-synthesis" in text
