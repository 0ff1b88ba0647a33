"""`melanet explain` (Grad-CAM of test images) and `melanet embed` (UMAP of GAP features)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from melanet.common import choices
from melanet.runs import layout
from melanet.cli import common


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the top-level parser."""
    explain = subparsers.add_parser(
        "explain",
        help="Grad-CAM maps and overlays of a classifier run's test images (misclassified first)",
        description=(
            "Grad-CAM of the malignant class for the test split of a trained classifier run. Writes "
            "RUN/explain/index.csv (image, label, prob_malignant, outcome, method, layer and paths), "
            "maps/*.npy (H, W) in [0, 1], overlays/*.png and inputs/*.png; with --data DIR, the test "
            "split of DIR goes to RUN/explain/<DIR's folder name>/. Outcomes use the threshold of the "
            "run's metrics.json (after `melanet evaluate`), else evaluation.threshold. Rerunning with "
            "another --method adds rows, so methods can be compared on the same image."
        ),
    )
    explain.add_argument("--run", required=True, metavar="RUN", help="a finished train-classifier run folder")
    explain.add_argument(
        "--data", metavar="DIR", help="explain the test split of this data folder instead of the run's own"
    )
    explain.add_argument(
        "--outcomes",
        "--which",
        dest="outcomes",
        metavar="LIST",
        help="outcomes to explain: comma list of fn,fp,tp,tn or 'all' (default: explain.outcomes of the run's config)",
    )
    explain.add_argument(
        "--method",
        choices=choices.GRADCAM_METHODS,
        help="activation-map method (default: explain.method of the run's config)",
    )
    explain.add_argument(
        "--layer", metavar="NAME", help="target layer (default: explain.layer of the run's config, block5_conv3)"
    )
    explain.add_argument(
        "--threshold",
        metavar="VALUE",
        help=(
            "decision threshold for TP/FP/TN/FN: a number in (0, 1), or 'operating' for the point "
            "`melanet evaluate` chose on the validation split (default: metrics.json's threshold)"
        ),
    )
    explain.add_argument("--limit", type=int, default=0, metavar="N", help="at most N images, mistakes first (0 = all)")
    explain.set_defaults(handler=explain_command)

    embed = subparsers.add_parser(
        "embed",
        help="UMAP of a classifier run's GAP features: originals vs originals + synthetic (Figure 9)",
        description=(
            "Global-average-pooled features of the run's training split (panel 'original') and of "
            "those images plus the synthetic malignant images of classifier.gan_run (panel "
            "'balanced'; left out when the run names no stage-1 run), each embedded in 2-D with UMAP "
            "(seed = the run's seed; explain.umap_neighbors, explain.umap_min_dist). Writes "
            "RUN/embedding/umap.csv (panel, image, tag, x, y) and RUN/embedding/umap.png."
        ),
    )
    embed.add_argument("--run", required=True, metavar="RUN", help="a finished train-classifier run folder")
    embed.set_defaults(handler=embed_command)


def explain_command(args: argparse.Namespace) -> int:
    from melanet.explain import explain_stage
    from melanet.reports import model_card

    common.announce_run(Path(args.run))
    index_path = explain_stage.explain_run(
        args.run,
        data_root=args.data,
        method=args.method,
        layer=args.layer,
        outcomes=args.outcomes,
        limit=args.limit,
        threshold=args.threshold,
        progress=common.progress_bar(explain_stage.STAGE),
    )
    if args.data is None:
        model_card.refresh(args.run)  # the card quotes explain/lesion_focus.json of the run's own test images
    rows = explain_stage.read_index(index_path)
    counts = ", ".join(f"{name} {sum(row['outcome'] == name for row in rows)}" for name in explain_stage.OUTCOMES)
    print(f"index: {index_path} ({len(rows)} rows: {counts})", flush=True)
    return 0


def embed_command(args: argparse.Namespace) -> int:
    from melanet.explain import embed_stage
    from melanet.reports import model_card

    common.announce_run(Path(args.run))
    csv_path = embed_stage.embed_run(args.run, progress=common.progress_bar(embed_stage.STAGE))
    model_card.refresh(args.run)  # the card's domain-gap lines come from separability.json
    files = layout.RunLayout(Path(args.run))
    print(f"embedding: {csv_path} and {files.umap_figure}", flush=True)
    gap_path = files.separability
    if gap_path.is_file():
        gap = json.loads(gap_path.read_text(encoding="utf-8"))
        print("domain gap (cross-validated AUC of a linear read-out of the features; 0.5 = indistinguishable):")
        for name, entry in gap.items():
            if isinstance(entry, dict):
                print(f"  {name.replace('_', ' ')}: {entry['auc']:.3f} ({entry['n_first']} vs {entry['n_second']})")
        print(f"  written to {gap_path}", flush=True)
    return 0
