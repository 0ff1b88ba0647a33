"""``melanet data download | prepare | check``: get, cache and inspect a data folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from melanet import config as config_module
from melanet.cli import common
from melanet.data import challenges, check, download, duplicates, prepare, sources
from melanet.data.errors import DataError, describe_problem


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its verbs to the top-level parser."""
    data = subparsers.add_parser("data", help="download, check and prepare (preprocess + cache) a data folder")
    verbs = data.add_subparsers(dest="data_command", metavar="VERB", required=True)

    fetch = verbs.add_parser("download", help="download the official ISIC challenge files (resumable)")
    fetch.add_argument("dataset", choices=["isic2016", *challenges.LAYOUTS], help="which data set")
    fetch.add_argument("--dest", metavar="DIR", help="folder to fill (default: data/<dataset>)")
    fetch.add_argument("--parts", nargs="+", metavar="PART",
                       help="which parts (default: all): training, validation, test (2017, 2018); training (2019, 2020)")
    fetch.add_argument("--base-url", metavar="URL",
                       help=f"server folder holding the files; '{{year}}' becomes the year (default: "
                            f"${download.BASE_URL_ENVIRONMENT}, else {download.DEFAULT_BASE_URL} for 2016 and "
                            f"{challenges.NEW_BUCKET_URL} for 2017-2020; old bucket: {challenges.OLD_BUCKET_URL})")
    fetch.add_argument("--keep-archives", action="store_true", help="keep the zip files after extracting them")
    fetch.set_defaults(handler=_download)

    prepare_parser = verbs.add_parser("prepare", help="preprocess a data folder into the cache the stages read")
    _add_data_arguments(prepare_parser)
    prepare_parser.add_argument("--image-size", type=int, metavar="N", help="square side in pixels (data.image_size)")
    prepare_parser.add_argument("--skip-bad", action="store_true", help="skip and list bad inputs instead of stopping")
    prepare_parser.set_defaults(handler=_prepare)

    check_parser = verbs.add_parser("check", help="count images per split and class and list every problem")
    _add_data_arguments(check_parser)
    check_parser.set_defaults(handler=_check)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="DIR",
                        help="data folder (an official ISIC 2016-2020 layout or train|test/benign|malignant/)")
    common.add_config_arguments(parser)
    parser.add_argument("--workers", type=int, metavar="N", help="decoding processes (data.workers; 0 = all cores)")
    parser.add_argument("--duplicate-threshold", type=int, metavar="BITS",
                        help="Hamming distance (of 128 bits) up to which two images are duplicates "
                             "(data.duplicate_threshold, default 8; -1 = do not look); see docs/duplicates.md")
    parser.add_argument("--duplicates-json", metavar="FILE",
                        help="also write the duplicate pairs as JSON to FILE")


def _data_config(args: argparse.Namespace) -> config_module.DataConfig:
    """The config's data section with the command line's folder and options applied."""
    config = common.resolve_config(args)
    changes: dict[str, object] = {"root": args.root}
    if getattr(args, "image_size", None) is not None:
        changes["image_size"] = args.image_size
    if getattr(args, "skip_bad", False):
        changes["skip_bad"] = True
    if args.workers is not None:
        changes["workers"] = args.workers
    if getattr(args, "duplicate_threshold", None) is not None:
        changes["duplicate_threshold"] = args.duplicate_threshold
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **changes))
    config_module.validate(config)
    return config.data


def _download(args: argparse.Namespace) -> int:
    destination = args.dest or f"data/{args.dataset}"
    if args.dataset == "isic2016":
        if args.parts:
            raise DataError("isic2016: --parts is for the 2017-2020 data sets (2016 is always all four files)")
        url = download.base_url(args.base_url)
        print(f"downloading ISIC-2016 Part 3 from {url} into {destination}", flush=True)
        dest = download.download_isic2016(destination, url=url, keep_archives=args.keep_archives,
                                          progress=common.progress_bar("download"))
    else:
        layout = challenges.LAYOUTS[args.dataset]
        url = download.base_url(args.base_url, year=layout.year)
        print(f"downloading {layout.title} ({', '.join(args.parts or layout.parts)}) from {url} into {destination}",
              flush=True)
        dest = download.download_challenge(args.dataset, destination, parts=args.parts, url=url,
                                           keep_archives=args.keep_archives, progress=common.progress_bar("download"))
    print(f"done: {dest} (next: melanet data check {dest})")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    data_config = _data_config(args)
    # a wrong folder fails before anything is created
    index = sources.read_index(Path(data_config.root), malignant_classes=data_config.malignant_classes)
    print(f"{data_config.root}: {index.layout} layout ({index.title}); splits: {', '.join(index.splits)}", flush=True)
    print(f"cache folder: {prepare.cache_directory(data_config)}", flush=True)
    for split in index.splits:
        started = time.perf_counter()
        image_set = prepare.load_split(data_config, split, progress=common.progress_bar(f"{split} {data_config.image_size}px"))
        benign, malignant = image_set.class_counts()
        how = "read from cache" if image_set.from_cache else "decoded and cached"
        print(f"{split}: {len(image_set)} images ({benign} benign / {malignant} malignant) at "
              f"{data_config.image_size} px ({data_config.resize}), {how} in {time.perf_counter() - started:.2f} s: {image_set.cache_path}")
        if image_set.skipped:
            print(f"{split}: skipped {len(image_set.skipped)} bad input(s):")
            for item in image_set.skipped:
                print(f"  {describe_problem(item)}")
    report = duplicates.scan(data_config, progress=common.progress_bar("duplicates"))
    _show_duplicates(args, report)
    return 1 if report.conflicts else 0


def _show_duplicates(args: argparse.Namespace, report: duplicates.DuplicateReport) -> None:
    print(duplicates.format_report(report))
    if args.duplicates_json:
        Path(args.duplicates_json).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"duplicates written to {args.duplicates_json}")


def _check(args: argparse.Namespace) -> int:
    data_config = _data_config(args)
    report = check.check_data(data_config.root, max_pixels=data_config.max_image_pixels, workers=data_config.workers,
                              progress=common.progress_bar("check"), malignant_classes=data_config.malignant_classes)
    print(check.format_report(report))
    found = duplicates.scan(data_config, progress=common.progress_bar("duplicates"))
    _show_duplicates(args, found)
    if found.conflicts:
        print(f"ERROR: {len(found.conflicts)} duplicate pair(s) carry different labels; one label of each is wrong")
    return 0 if (report.usable or report.evaluation_only) and not found.conflicts else 1
