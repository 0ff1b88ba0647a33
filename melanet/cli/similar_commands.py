"""`melanet similar`: build a classifier run's similar-cases index, and list the training images most
similar to an image."""

from __future__ import annotations

import argparse
from pathlib import Path

from melanet.cli import common

VERB = "similar"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verb to the top-level parser."""
    similar = subparsers.add_parser(
        VERB,
        help="the training images most similar to an image in a classifier's own feature space",
        description=(
            "With --build: GAP features of the run's training split (never its validation or test images), "
            "L2-normalised, as RUN/retrieval/index.npz (float16, with ids, labels and ISIC diagnoses where the "
            "data has them); the similar-cases vote (share of malignant among the k nearest training images, "
            "k = 1..15) of every validation and test image in RUN/retrieval/votes.csv; k chosen on validation, "
            "its test AUC beside the classifier's in RUN/retrieval/retrieval.json and metrics.json "
            "(similar_cases). With IMAGE: the K training images most similar to IMAGE (cosine), with label, "
            "diagnosis and similarity. The index is built once; --build reads the test split: run it on a "
            "final model."
        ),
    )
    similar.add_argument("--run", required=True, metavar="RUN", help="a finished train-classifier run folder")
    similar.add_argument("image", nargs="?", metavar="IMAGE", help="a dermoscopy image file (JPEG or PNG)")
    similar.add_argument("--k", type=int, default=6, metavar="K", help="how many similar images to list (default 6)")
    similar.add_argument("--build", action="store_true", help="build (or rebuild) the run's retrieval index first")
    similar.set_defaults(handler=similar_command)


def similar_command(args: argparse.Namespace) -> int:
    from melanet import config as config_module
    from melanet.explain import retrieval_stage
    from melanet.reports import model_card

    if not args.build and not args.image:
        raise config_module.ConfigError("give an IMAGE to look up, or --build to build the run's index")
    if args.k < 1:
        raise config_module.ConfigError(f"--k must be >= 1, got {args.k}")
    common.announce_run(Path(args.run))
    if args.build:
        summary = retrieval_stage.build_run(args.run, progress=common.progress_bar(VERB))
        model_card.refresh(args.run)  # the card quotes metrics.json's similar_cases block
        print(f"index: {summary['n_index']} training images ({summary['n_malignant']} malignant), "
              f"{summary['feature_dimension']} features")
        block = summary["similar_cases"] or {}
        if block.get("test_auc") is not None:
            versus = block.get("versus_classifier") or {}
            beside = (f"; classifier {versus['classifier_auc']:.3f}, difference {versus['delta_auc']:+.3f} "
                      f"(DeLong p = {versus['p']:.3g})") if versus else ""
            print(f"similar-cases vote: k = {block['k']} (validation AUC {block['validation_auc']:.3f}); test AUC "
                  f"{block['test_auc']:.3f} [{block['ci_low']:.3f}, {block['ci_high']:.3f}]{beside}", flush=True)
        elif block.get("reason"):
            print(f"similar-cases vote: not measured ({block['reason']})", flush=True)
    if args.image:
        rows = retrieval_stage.similar_to_file(args.run, args.image, args.k)
        print(f"{'rank':>4}  {'image':<20} {'label':<10} {'diagnosis':<24} similarity")
        for row in rows:
            label = "malignant" if row["label"] == 1 else "benign"
            print(f"{row['rank']:>4}  {row['image']:<20} {label:<10} {row['diagnosis'] or '-':<24} {row['similarity']:.4f}")
    return 0
