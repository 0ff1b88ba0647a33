"""`melanet audit-synthesis` (KID, memorisation and per-image realism of a GAN run's synthetic lesions) and
`melanet audit-shortcuts` (does a classifier read the lesion or its surroundings?)."""

from __future__ import annotations

import argparse
from pathlib import Path

from melanet.cli import common

VERB = "audit-synthesis"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verb to the top-level parser."""
    audit = subparsers.add_parser(
        VERB,
        help="audit a GAN run's synthetic lesions: KID, nearest real images, per-image realism",
        description=(
            "In the training part of the GAN run's own split: KID (cubic-kernel unbiased MMD^2 with a "
            "subset-bootstrap interval) of synthetic vs real malignant and, as a yardstick, real benign vs "
            "real malignant, in the frozen backbone's GAP features and, with --classifier, in a trained "
            "classifier's; each synthetic image's nearest real malignant image against real-to-real "
            "distances; a per-image realism score (held-out probability of 'real malignant' from a grouped, "
            "cross-validated linear probe). Writes GAN_RUN/audit/audit.json, realism.csv and nearest.csv "
            "(read by classifier.synthetic_keep and the Synthesized lesions page)."
        ),
    )
    audit.add_argument("--run", required=True, metavar="GAN_RUN", help="a train-gan run folder after synthesis")
    audit.add_argument("--classifier", metavar="RUN", help="also audit in this trained classifier's GAP features")
    audit.set_defaults(handler=audit_command)
    register_shortcuts(subparsers)


def audit_command(args: argparse.Namespace) -> int:
    from melanet.runs import audit_files
    from melanet.audits import synthesis_stage

    common.announce_run(Path(args.run))
    path = synthesis_stage.audit_run(args.run, args.classifier, progress=common.progress_bar(VERB))
    summary = audit_files.read_summary(args.run)
    print(f"audit: {path} ({summary['counts']['synthetic']} synthetic images)")
    for name, space in summary["feature_spaces"].items():
        for pair, kid in space["kid"].items():
            print(f"  {name}: KID {pair.replace('_', ' ')} {kid['kid']:.4f} "
                  f"({kid['confidence']:.0%} subset interval {kid['low']:.4f} to {kid['high']:.4f})")
        memorisation = space["memorisation"]
        print(f"  {name}: nearest real malignant, median distance {memorisation['synthetic_to_real']['q50']:.3f} "
              f"(real to real {memorisation['real_to_real']['q50']:.3f}); "
              f"{memorisation['share_closer_than_real_q05']:.0%} closer than the closest 5 % of real pairs")
    for name, space in summary["feature_spaces"].items():
        if "probe" in space:  # audits written before 2026-12-07 lack the per-space probes
            print(f"  {name}: probe AUC synthetic vs real malignant {space['probe']['synthetic_vs_real_malignant']:.3f} "
                  f"(real benign vs real malignant {space['probe']['real_benign_vs_real_malignant']:.3f})")
    probe = summary["realism"]["probe"]
    realism = summary["realism"]
    yardstick = f"; real benign vs real malignant {realism['yardstick']['auc']:.3f}" if "yardstick" in realism else ""
    print(f"  realism probe ({realism['features']} features): held-out AUC {probe['auc']:.3f} "
          f"(0.5 = synthetic indistinguishable from real malignant{yardstick})", flush=True)
    if "pixel_probe" in realism:  # audits written before the pixel probe lack it
        print(f"  pixel probe (hand-made colour, gradient and spectrum features, no network): held-out AUC "
              f"{realism['pixel_probe']['auc']:.3f} (real benign vs real malignant "
              f"{realism['pixel_yardstick']['auc']:.3f})", flush=True)
    return 0


SHORTCUTS_VERB = "audit-shortcuts"


def register_shortcuts(subparsers: argparse._SubParsersAction) -> None:
    """Add ``audit-shortcuts`` to the top-level parser."""
    audit = subparsers.add_parser(
        SHORTCUTS_VERB,
        help="shortcut audit of a classifier: AUC with the lesion hidden or alone, and under perturbations",
        description=(
            "On the test split of the run's data folder (or of --data DIR): the AUC with its DeLong interval "
            "on the full images, on lesion-only images (everything outside an Otsu lesion mask set to mid "
            "grey) and on background-only images (the lesion painted in the surrounding skin's median "
            "colour), each masked view with its paired DeLong difference from the full images; images "
            "whose mask fails are listed and left out of the masked views only. Robustness: the AUC and "
            "the mean and largest change of each probability under JPEG quality 75, a 10-degree rotation, "
            "a horizontal flip and +-10 %% brightness. Writes RUN/shortcuts/shortcuts.json (with --data: "
            "RUN/external/<name>/shortcuts.json). It reads the test split: run it on a final model."
        ),
    )
    audit.add_argument("--run", required=True, metavar="RUN", help="a finished train-classifier run folder")
    audit.add_argument("--data", metavar="DIR", help="audit on the test split of this data folder instead")
    audit.set_defaults(handler=shortcuts_command)


def shortcuts_command(args: argparse.Namespace) -> int:
    from melanet.audits import shortcut_stage, shortcuts
    from melanet.reports import model_card

    common.announce_run(Path(args.run))
    path = shortcut_stage.audit_run(args.run, data_root=args.data, progress=common.progress_bar(SHORTCUTS_VERB))
    if args.data is None:
        model_card.refresh(args.run)  # the card quotes the audit of the run's own test images
    summary = shortcuts.read_summary(path)
    if isinstance(summary, str):
        raise RuntimeError(summary)
    print(f"shortcut audit: {path}")
    for line in shortcuts.summary_lines(summary):
        print(f"  {line}", flush=True)
    return 0
