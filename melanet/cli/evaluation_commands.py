"""`melanet evaluate`, `melanet compare` and `melanet reproduce`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from melanet.common import formatting
from melanet.runs import layout, lifecycle, runs
from melanet.cli import common


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the top-level parser."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="predict a test split with a trained classifier; write metrics.json and predictions",
        description=(
            "Predict the test split of the run's data and write metrics.json, predictions.csv and "
            "predictions_isic.csv to the run (or --out DIR). With --data DIR (any ISIC 2016-2020 layout or "
            "plain folders) the results go to RUN/external/<DIR name>/ instead; a folder without a labelled "
            "test split (ISIC 2019, 2020) is evaluated on all its labelled images. "
            "The operating threshold is chosen on the run's validation predictions, never on the test set."
        ),
    )
    evaluate.add_argument("--run", metavar="RUN", required=True, help="finished train-classifier run folder")
    evaluate.add_argument("--data", metavar="DIR",
                          help="external validation on this data folder (results in RUN/external/<DIR name>/)")
    evaluate.add_argument("--out", metavar="DIR", help="write the results here instead of into the run")
    evaluate.add_argument(
        "--from-predictions", action="store_true",
        help="no model, no images: recompute metrics.json (calibration, prevalence-adjusted PPV/NPV, ...) and "
             "model_card.md from the run's predictions.csv and validation_predictions.csv",
    )
    evaluate.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="evaluation.KEY=VALUE",
        help="with --from-predictions: override an evaluation setting, e.g. evaluation.calibration=platt (repeatable)",
    )
    evaluate.set_defaults(handler=_evaluate)

    compare_parser = subparsers.add_parser(
        "compare",
        help="print Table 1 (AUC, sensitivity, specificity, FN, FP with 95%% CIs) for evaluated runs",
        description=(
            "Table 1 of the paper for evaluated classifier runs (a reproduce results folder stands for its "
            "four runs). The NPV column is what the paper calls 'sensitivity'."
        ),
    )
    compare_parser.add_argument("runs", nargs="+", metavar="RUN", help="evaluated run folders")
    style = compare_parser.add_mutually_exclusive_group()
    style.add_argument("--markdown", action="store_true", help="print a Markdown table")
    style.add_argument("--csv", action="store_true", help="print CSV (fractions, CI bounds in their own columns)")
    compare_parser.add_argument(
        "--operating-point", action="store_true",
        help="figures at the threshold chosen on validation instead of 0.5",
    )
    compare_parser.add_argument(
        "--out", metavar="DIR",
        help="also write comparison.json + comparison.md (paired DeLong, Holm, McNemar) and table.md/.csv to DIR",
    )
    compare_parser.add_argument(
        "--reference", metavar="RUN",
        help="compare this run (folder, folder name or method name) against each other one instead of all pairs",
    )
    compare_parser.add_argument(
        "--unpaired", action="store_true",
        help="only the table: skip the paired tests (for runs scored on different images)",
    )
    compare_parser.set_defaults(handler=_compare)

    reproduce = subparsers.add_parser(
        "reproduce",
        help="train-gan, synthesize, the four classifiers, evaluate, Table 1 (resumable)",
        description=(
            "Reproduce Table 1: stage 1, synthesis, VGG-GAP / Augment-5x / Augment-10x / MelaNet, their "
            "evaluation on the test split and table.md + table.csv, each stage a child process. Running it "
            "again on the same folder skips finished stages and resumes interrupted ones."
        ),
    )
    common.add_config_arguments(reproduce)
    reproduce.add_argument("--out", "--run", dest="out", metavar="DIR",
                           help="results folder (default: a new timestamped folder under runs/)")
    reproduce.add_argument(
        "--resume", nargs="?", const=True, metavar="DIR",
        help="continue the results folder (DIR or --out) with its saved config",
    )
    reproduce.add_argument(
        "--seeds", type=int, metavar="N",
        help="repeat the whole reproduction with seeds config.seed + 0..N-1, each in DIR/seed-<S>/, "
             "then write seeds.md/.csv/.json (mean +- SD, min/max, per-seed AUCs and DeLong p-values, wins)",
    )
    reproduce.add_argument(
        "--seeds-scope", choices=("all", "classifiers"), default=None,
        help="what a seed varies: 'all' (default: GAN and classifiers) or 'classifiers' (one GAN, the first seed's)",
    )
    reproduce.add_argument(
        "--summarize", metavar="DIR",
        help="only (re)write the seeds summary of DIR's seed-<S>/ folders from their metrics.json and "
             "predictions.csv (no training, no model weights needed)",
    )
    reproduce.set_defaults(handler=_reproduce)


def _evaluate(args: argparse.Namespace) -> int:
    from melanet.evaluation import external
    from melanet.reports import evaluate_stage

    run_path = Path(args.run)
    if args.from_predictions:
        return _rescore(args, run_path)
    if args.overrides:
        raise runs.RunError("--set applies only with --from-predictions (a new evaluation uses the run's config)")
    common.announce_run(run_path)
    report = evaluate_stage.evaluate_run(
        run_path, data_root=args.data, out_dir=args.out, progress=common.progress_bar("test images")
    )
    print(_summary(report))
    written_to = Path(args.out) if args.out else run_path
    if not args.out and args.data and not report["data"]["same_as_training_data"]:
        written_to = external.results_folder(run_path, args.data)
    print(f"results written to {written_to}")
    return 0


def _summary(report: dict) -> str:
    def interval(name: str, source: dict) -> str:
        bounds = (source.get("confidence_intervals") or {}).get(name) or {}
        return formatting.percent_bounds(bounds.get("low"), bounds.get("high"))

    lines = [
        f"{'all labelled images (no labelled test split)' if report['data'].get('all_labelled_images') else 'test images'}: "
        f"{report['n']} ({report['n_malignant']} malignant) from {report['data']['root']}",
        f"AUC {formatting.percent(report['auc'])}{interval('auc', report)}",
        f"threshold {report['threshold']:g}: sensitivity {formatting.percent(report['sensitivity'])}"
        f"{interval('sensitivity', report)}, specificity {formatting.percent(report['specificity'])}"
        f"{interval('specificity', report)}, TP {report['tp']} FP {report['fp']} TN {report['tn']} FN {report['fn']}",
    ]
    operating = report.get("operating_point") or {}
    if operating.get("available"):
        lines.append(
            f"threshold {operating['threshold']:.3f} (validation sensitivity >= "
            f"{operating['validation']['target_sensitivity']:g}): sensitivity {formatting.percent(operating['sensitivity'])}, "
            f"specificity {formatting.percent(operating['specificity'])}, FN {operating['fn']} FP {operating['fp']}"
        )
    else:
        lines.append(f"no operating point: {operating.get('reason', 'unknown')}")
    lines.append(f"NPV {formatting.percent(report['npv'])} (what the paper calls 'sensitivity')")
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    from melanet.evaluation import compare, paired

    rows = compare.load_rows(args.runs, operating_point=args.operating_point)
    comparison = None
    if args.out:
        _check_comparison_folder(Path(args.out))
    unpairable = paired.without_predictions(args.runs)
    if not args.unpaired and len(rows) > 1 and unpairable:
        print(f"melanet compare: no paired tests: no predictions.csv in {', '.join(map(str, unpairable))}",
              file=sys.stderr)
    elif not args.unpaired and len(rows) > 1:
        comparison = paired.compare_runs(args.runs, reference=args.reference)
    if args.csv:
        sys.stdout.write(compare.to_csv(rows))
    elif args.markdown:
        sys.stdout.write(compare.to_markdown(rows))
    else:
        sys.stdout.write(compare.to_text(rows))
    if comparison is not None and not args.csv:
        sys.stdout.write("\n" + paired.to_markdown(comparison))
    if args.out:
        compare.write_tables(rows, args.out)
        if comparison is not None:
            print(f"comparison written to {paired.write_comparison(comparison, args.out)}")
    return 0


def _rescore(args: argparse.Namespace, run_path: Path) -> int:
    from melanet.runs import layout
    from melanet.reports import rescore

    if args.data or args.out:
        raise runs.RunError("--from-predictions rewrites the run's own metrics.json; drop --data/--out")
    report = rescore.rescore_run(run_path, args.overrides)
    print(_summary(report))
    calibration = report["calibration"]
    line = f"Brier {report['brier']:.4f}, ECE {report['ece']:.4f} (raw"
    reference = calibration["raw"].get("ece_if_calibrated")
    if reference:
        line += (f"; a perfectly calibrated model: {reference['mean']:.4f}, 95th percentile {reference['p95']:.4f}, "
                 + ("within" if reference["ece_within"] else "above"))
    line += ")"
    if calibration.get("calibrated"):
        line += (f"; after {calibration['method']} scaling: Brier {calibration['calibrated']['brier']:.4f}, "
                 f"ECE {calibration['calibrated']['ece']:.4f}")
    print(line)
    print(f"{layout.METRICS_FILE} and {layout.MODEL_CARD_FILE} rewritten in {run_path}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from melanet.reproduce import reproduction
    from melanet.evaluation import compare

    if args.summarize:
        return _summarize_seeds(Path(args.summarize))
    resume = args.resume is not None
    if isinstance(args.resume, str):
        if args.out and Path(args.out) != Path(args.resume):
            raise runs.RunError(f"--resume {args.resume} and --out {args.out} name different folders")
        args.out = args.resume
    if resume and not args.out:
        raise runs.RunError("--resume needs the results folder: --resume DIR or --out DIR --resume")
    if resume and (args.config or args.overrides):
        raise runs.RunError("--resume uses the results folder's saved config; drop --config/--set")
    results = Path(args.out) if args.out else runs.default_run_dir("reproduce")
    config = None if resume else common.resolve_config(args)
    common.announce_run(results)
    child_options = ["-q"] if args.quiet else ["-v"] if args.verbose else []
    if args.seeds is not None or args.seeds_scope is not None or _is_seeds_folder(results):
        return _reproduce_seeds(args, results, config, resume, child_options)
    try:
        rows = reproduction.reproduce(results, config, resume=resume, child_options=child_options)
    except lifecycle.StopRequested:
        return common.stopped("reproduce", f"continue with: melanet reproduce --resume {results}")
    sys.stdout.write(compare.to_text(rows))
    files = layout.RunLayout(results)
    print(f"table written to {files.table_markdown} and {files.table_csv}")
    return 0


def _is_seeds_folder(results: Path) -> bool:
    from melanet.reproduce import repeated_seeds

    status_path = results / runs.STATUS_FILE
    return status_path.is_file() and runs.Run(results).status().get("stage") == repeated_seeds.STAGE


def _reproduce_seeds(args: argparse.Namespace, results: Path, config, resume: bool, child_options: list[str]) -> int:
    from melanet.reproduce import repeated_seeds
    from melanet.reproduce import seeds_summary

    if not resume and args.seeds is None:
        raise runs.RunError(f"{results}: holds a repeated reproduction; continue it with "
                            f"`melanet reproduce --resume {results}` or give --seeds N")
    try:
        summary = repeated_seeds.reproduce_seeds(results, config, args.seeds, scope=args.seeds_scope,
                                                  resume=resume, child_options=child_options)
    except lifecycle.StopRequested:
        return common.stopped("reproduce", f"continue with: melanet reproduce --resume {results}")
    sys.stdout.write(seeds_summary.to_markdown(summary))
    print(f"summary written to {', '.join(str(results / name) for name in seeds_summary.SUMMARY_FILES)}")
    return 0


def _summarize_seeds(results: Path) -> int:
    from melanet.reproduce import seeds_summary

    summary = seeds_summary.summarize_folder(results)
    sys.stdout.write(seeds_summary.to_markdown(summary))
    print(f"summary written to {', '.join(str(results / name) for name in seeds_summary.SUMMARY_FILES)}")
    return 0


# folders a comparison may be written into besides a plain one: the results of a reproduction
COMPARISON_FOLDER_STAGES = ("reproduce", "reproduce-seeds")


def _check_comparison_folder(folder: Path) -> None:
    """Refuse ``compare --out`` into a training or evaluation run's folder (it belongs to that stage)."""
    if folder.exists() and not folder.is_dir():
        raise runs.RunError(f"--out {folder}: a file, not a folder")
    run = runs.Run(folder)
    owner = lifecycle.folder_stage(run)
    if owner is not None and owner not in COMPARISON_FOLDER_STAGES:
        raise runs.RunError(f"--out {folder}: holds {lifecycle.describe_folder(run)}; compare writes only into "
                            "a plain folder or a reproduce results folder")
