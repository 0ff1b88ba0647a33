"""`melanet reader-study create|results|mrmc`: readers against a classifier run on the same test cases."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from melanet.common import formatting
from melanet.cli import common
from melanet.studies import study as study_module


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the top-level parser."""
    parser = subparsers.add_parser(
        "reader-study",
        help="reader studies: dermatologists read a run's test cases blind (and aided); compare with the model",
        description=(
            "A reader study lives in ROOT/NAME/ (ROOT = --root, default studies/). Readers answer on the "
            "dashboard's Reader study page; 'results' compares them with the model."
        ),
    )
    verbs = parser.add_subparsers(dest="study_command", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create",
        help="make a study from an evaluated classifier run",
        description=(
            "Write ROOT/NAME/ with study.json, cases.csv (case, image, label, prob_malignant, model_decision, "
            "file, overlay) and overlays/ (the run's Grad-CAM maps drawn over each original image in its own framing, for the aided phase). Cases: the test "
            "split of the run's data or of --data DIR; --cases N draws a stratified random subset with --seed. "
            "The model's decisions use the operating threshold the run chose on its validation split. "
            "With --synthetic-from GAN_RUN instead: a real-or-synthetic study (cases.csv: case, image, label "
            "1 = synthetic, file; images/<case>.png), --cases N even, half real, half synthetic."
        ),
    )
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN", help="an evaluated train-classifier run folder (benign or malignant?)")
    source.add_argument("--synthetic-from", metavar="GAN_RUN",
                        help="a synthesized train-gan run: a real-or-synthetic study of equal numbers of its real "
                             "training melanomas and its synthetic ones (one phase, no model)")
    create.add_argument("--name", required=True, metavar="NAME", help="study name (letters, digits, - _ . /)")
    create.add_argument("--data", metavar="DIR", help="use the test split of this labelled data folder")
    create.add_argument("--cases", type=int, default=0, metavar="N",
                        help="a stratified random subset of N cases (--synthetic-from: N even, half of each)")
    create.add_argument("--seed", type=int, default=0, help="seed of the subset and of the readers' case orders")
    create.add_argument("--no-aided", action="store_true", help="unaided phase only (no model output shown)")
    create.add_argument("--readers", metavar="NAME,NAME,...",
                        help="the readers: each gets a random code, and the organiser one, written once to --codes-out")
    create.add_argument("--codes-out", metavar="FILE", help="new file (mode 600, outside the study folder) for the codes")
    create.add_argument("--washout-days", type=float, default=0.0, metavar="DAYS",
                        help="days between a reader's last unaided answer and the aided phase (default 0)")
    _add_root(create)
    create.set_defaults(handler=_create)

    add = verbs.add_parser(
        "add-reader", help="give readers codes (a study made before codes existed also gets an organiser code)",
        description=("Issue one random code per new reader, written once to --codes-out (mode 600, outside the "
                     "study folder) and printed once; the study keeps only salted scrypt hashes. A study outside "
                     "--root (one shipped under models/) is copied to --root first."))
    add.add_argument("study", metavar="STUDY", help="a study name under --root, or a study folder")
    add.add_argument("--readers", required=True, metavar="NAME,NAME,...", help="the new readers' names")
    add.add_argument("--codes-out", required=True, metavar="FILE", help="new file for the codes")
    _add_root(add)
    add.set_defaults(handler=_add_reader)
    revoke = verbs.add_parser("revoke-reader", help="a reader's code no longer signs in (answers are kept)")
    revoke.add_argument("study", metavar="STUDY")
    revoke.add_argument("--reader", required=True, metavar="NAME")
    _add_root(revoke)
    revoke.set_defaults(handler=_revoke_reader)
    void = verbs.add_parser("void-reader", help="leave a reader's answers out of the analysis (kept on disk)")
    void.add_argument("study", metavar="STUDY")
    void.add_argument("--reader", required=True, metavar="NAME")
    void.add_argument("--reason", required=True, help="why (kept in results.json)")
    _add_root(void)
    void.set_defaults(handler=_void_reader)
    for verb, text in (("close", "no more answers"), ("reopen", "take answers again")):
        closing = verbs.add_parser(verb, help=f"{verb} a study: {text}")
        closing.add_argument("study", metavar="STUDY")
        _add_root(closing)
        closing.set_defaults(handler=_close if verb == "close" else _reopen)

    results = verbs.add_parser(
        "results",
        help="compute readers vs model and write STUDY/results.json",
        description=(
            "Per reader and phase: sensitivity, specificity (Wilson CIs), AUC of the reader's rating, Cohen's "
            "kappa against the model, the model's figures on the same cases, a paired DeLong test; for "
            "aided vs unaided: answers changed right->wrong and wrong->right. Writes STUDY/results.json."
        ),
    )
    results.add_argument("study", metavar="STUDY", help="a study name under --root, or a study folder")
    _add_root(results)
    results.set_defaults(handler=_results)

    mrmc = verbs.add_parser(
        "mrmc",
        help="multi-reader multi-case analysis (Obuchowski-Rockette, Hillis ddf) of a ratings table",
        description=(
            "FILE.csv: a long table with columns reader,treatment,case,truth,rating (truth 1 = positive; any "
            "ordinal or continuous rating, higher = more likely positive); every reader rates every case under "
            "both treatments. Prints per treatment the mean AUC and CI, the random-readers F test (Hillis ddf) "
            "with the difference A - B, its SE and 95% CI, and the fixed-readers chi-square test."
        ),
    )
    mrmc.add_argument("file", metavar="FILE.csv", help="the ratings table")
    mrmc.add_argument("--treatments", nargs=2, metavar=("A", "B"),
                      help="the two treatments to compare, difference = A - B (default: the file's two)")
    mrmc.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                      help="error covariances of the reader AUCs (default: jackknife over cases)")
    mrmc.add_argument("--out", metavar="FILE.json", help="also write the whole analysis as JSON")
    mrmc.add_argument("--power-for", type=float, metavar="DELTA",
                      help="sample size of the next study: for each number of readers (--readers), the cases needed "
                           "to detect an AUC difference DELTA (random readers and cases, Hillis, Obuchowski & Berbaum 2011), "
                           "with this table as the pilot")
    mrmc.add_argument("--readers", type=int, nargs="+", metavar="R",
                      help="numbers of readers for --power-for (default: 3 4 5 6 8 10 12 15 20)")
    mrmc.add_argument("--power", type=float, default=0.8, help="target power for --power-for (default 0.8)")
    mrmc.add_argument("--alpha", type=float, default=0.05, help="test size for --power-for (default 0.05)")
    mrmc.set_defaults(handler=_mrmc)


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=str(study_module.DEFAULT_STUDIES_DIR), metavar="DIR",
                        help="folder holding the studies (default: studies/)")


def _create(args: argparse.Namespace) -> int:
    from melanet.studies import create

    if args.synthetic_from:
        return _create_synthetic(args)
    readers = _names(args.readers)
    options = create.CreateOptions(data_root=args.data, cases=args.cases, seed=args.seed, aided=not args.no_aided,
                                   readers=readers, washout_days=args.washout_days)
    checked = create.check_request(args.run, args.name, root=Path(args.root), options=options)
    for warning in create.request_warnings(checked, options):
        print(f"warning: {warning}", file=sys.stderr)
    if not readers:
        print("warning: no --readers: nobody can answer until `melanet reader-study add-reader` gives codes",
              file=sys.stderr)
    study = create.create_study(args.run, args.name, root=Path(args.root), options=options,
                                progress=common.progress_bar("test images"), codes_out=args.codes_out)
    print(f"study folder: {study.path}")
    if readers:
        _print_codes(Path(args.codes_out))
    overlays = study.info.get("overlays") or {}
    print(f"{len(study.cases)} cases ({study.info['n_malignant']} malignant), phases {', '.join(study.phases)}, "
          f"threshold {study.threshold:.4g} ({study.info['threshold']['source']})"
          + (f", overlays: {overlays.get('from_run_explain', 0)} from the run's explain/, "
             f"{overlays.get('computed', 0)} computed" if overlays else ""))
    return 0


def _create_synthetic(args: argparse.Namespace) -> int:
    from melanet.studies import synthetic_study

    for option, given in (("--data", args.data is not None), ("--no-aided", args.no_aided),
                          ("--washout-days", bool(args.washout_days))):
        if given:
            raise study_module.StudyError(f"{option} does not apply to --synthetic-from (one phase, the GAN run's "
                                          "own training data)")
    readers = _names(args.readers)
    options = synthetic_study.SyntheticOptions(cases=args.cases, seed=args.seed, readers=readers)
    checked = synthetic_study.check_request(args.synthetic_from, args.name, root=Path(args.root), options=options)
    for warning in synthetic_study.design_warnings(checked.per_class, len(readers)):
        print(f"warning: {warning}", file=sys.stderr)
    if not readers:
        print("warning: no --readers: nobody can answer until `melanet reader-study add-reader` gives codes",
              file=sys.stderr)
    study = synthetic_study.create_synthetic_study(args.synthetic_from, args.name, root=Path(args.root),
                                                   options=options, progress=common.progress_bar("training images"),
                                                   codes_out=args.codes_out)
    print(f"study folder: {study.path}")
    if readers:
        _print_codes(Path(args.codes_out))
    width, height = study.info["images"]["size_px"]
    print(f"{len(study.cases)} cases ({study.info['n_real']} real training melanomas, {study.info['n_synthetic']} "
          f"synthetic), real or synthetic?, one phase, every image a {width}x{height} px PNG")
    return 0


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _print_codes(path: Path) -> None:
    """The codes, once, from the file just written."""
    print(f"codes written to {path.resolve()} (mode 600); shown here once:")
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        print("  " + line.replace("\t", " "))


def _study_for_change(args: argparse.Namespace) -> study_module.Study:
    return study_module.find_study(args.study, Path(args.root))


def _add_reader(args: argparse.Namespace) -> int:
    from melanet.studies import access, create

    study = _study_for_change(args)
    root = Path(args.root).resolve()
    if root not in study.path.resolve().parents:  # a shipped study: readers answer a copy under --root
        study = create.copy_study(study, root)
        print(f"copied to {study.path} (the study under {args.study} stays untouched)")
    names = _names(args.readers)
    if not names:
        raise study_module.StudyError("--readers: give at least one name")
    access.check_codes_path(args.codes_out, study.path)
    codes = access.add_readers(study, names)
    access.write_codes_file(args.codes_out, study, codes)
    _print_codes(Path(args.codes_out))
    return 0


def _revoke_reader(args: argparse.Namespace) -> int:
    from melanet.studies import access

    access.revoke_reader(_study_for_change(args), args.reader)
    print(f"the code of {args.reader} is revoked; their answers stay")
    return 0


def _void_reader(args: argparse.Namespace) -> int:
    from melanet.studies import access

    access.void_reader(_study_for_change(args), args.reader, args.reason)
    print(f"{args.reader}'s answers are left out of the analysis ({args.reason}); responses.csv keeps them")
    return 0


def _close(args: argparse.Namespace) -> int:
    from melanet.studies import access

    access.set_closed(_study_for_change(args), True)
    print("closed: no more answers")
    return 0


def _reopen(args: argparse.Namespace) -> int:
    from melanet.studies import access

    access.set_closed(_study_for_change(args), False)
    print("reopened: readers may answer again")
    return 0


def _results(args: argparse.Namespace) -> int:
    from melanet.studies import mrmc
    from melanet.studies import results as results_module

    study = study_module.find_study(args.study, Path(args.root))
    results, path = results_module.write_results(study)
    if study.real_or_synthetic:
        return _synthetic_results(results, path)
    model = results["model"]
    print(f"model on {results['n_cases']} cases: AUC {model['auc']:.3f}, sensitivity {formatting.percent(model['sensitivity'])}, "
          f"specificity {formatting.percent(model['specificity'])} at threshold {study.threshold:.4g}")
    if not results["readers"]:
        print("no responses yet")
    for entry in results["readers"]:
        auc = "n/a" if entry["auc"] is None else f"{entry['auc']:.3f}"
        p_value = entry["delong"].get("p")
        print(f"{entry['reader']} ({entry['phase']}, {entry['n']} of {results['n_cases']}): sensitivity "
              f"{formatting.percent(entry['sensitivity'])}, specificity {formatting.percent(entry['specificity'])}, rating AUC {auc}"
              + ("" if p_value is None else f" (DeLong vs model {formatting.p_value(p_value)})")
              + ("" if entry["complete"] else " [incomplete: left out of pooled tests]"))
    for name, section in results.get("mrmc", {}).items():
        if section["available"]:
            print(f"MRMC {name.replace('_', ' ')}: {mrmc.difference_sentence(section)}")
        else:
            print(f"MRMC {name.replace('_', ' ')}: {section['reason']} ({len(section['complete_readers'])} "
                  f"complete readers; needs {section['minimum']['readers']} and "
                  f"{section['minimum']['cases_per_class']} cases of each class)")
    print(f"results written to {path}")
    return 0


def _synthetic_results(results: dict, path: Path) -> int:
    """A real-or-synthetic study's figures, one line per reader, then the pooled sentence."""
    if not results["readers"]:
        print("no responses yet")
    for entry in results["readers"]:
        auc = "n/a" if entry["auc"] is None else f"{entry['auc']:.3f}"
        interval = "" if entry["auc"] is None else f" [{entry['auc_ci'][0]:.3f}, {entry['auc_ci'][1]:.3f}]"
        print(f"{entry['reader']} ({entry['n']} of {results['n_cases']}): accuracy "
              f"{formatting.percent(entry['accuracy'])}{formatting.percent_bounds(*entry['accuracy_ci'])}, "
              f"AUC synthetic vs real {auc}{interval}"
              + ("" if entry["complete"] else " [incomplete: left out of the pooled AUC]"))
    print(results["sentence"])
    print(f"results written to {path}")
    return 0


def _mrmc(args: argparse.Namespace) -> int:
    from melanet.runs import runs
    from melanet.studies import mrmc, sample_size

    table = mrmc.read_table(args.file, args.treatments)
    result = mrmc.analyse(table, covariance=args.covariance)
    for line in mrmc.summary_lines(result):
        print(line)
    if args.power_for is not None:
        pilot = sample_size.Pilot.from_analysis(result)
        readers = tuple(args.readers or sample_size.DEFAULT_READERS)
        rows = sample_size.sample_size_table(pilot, args.power_for, readers, target=args.power, alpha=args.alpha)
        for line in sample_size.summary_lines(pilot, args.power_for, rows, target=args.power, alpha=args.alpha):
            print(line)
        result["sample_size"] = {"delta": args.power_for, "power": args.power, "alpha": args.alpha,
                                 "method": "Hillis, Obuchowski & Berbaum (2011), random readers and random cases",
                                 "pilot_cases": pilot.n_cases, "rows": rows}
    if args.out:
        runs.atomic_write_bytes(Path(args.out), mrmc.json_bytes(result))
        print(f"analysis written to {args.out}")
    return 0
