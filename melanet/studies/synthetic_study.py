"""``melanet reader-study create --synthetic-from GAN_RUN``: can readers tell synthetic melanomas from real ones?

A real-or-synthetic study holds equal numbers of

- **real melanomas**: the malignant images of the GAN run's own training split (its config's data and
  seed, ``splits.training_and_validation``: the images the CycleGAN learnt "malignant" from), and
- **synthetic "melanomas"**: images of the run's synthesis manifest (``synthetic/manifest.csv``),

drawn with the study's seed. Both are shown alike, so that nothing but their content differs: a real
image goes through the same preprocessing the synthesis gave its benign sources (``data.image_size``,
``data.resize``, ``data.color_constancy`` of the run's config), is resized (Lanczos) to the synthetic
images' own size when that differs, and both are written as 8-bit RGB PNGs by the same encoder, with no
metadata, to ``images/<case>.png``. Case ids (``c001``...) are numbered in a seeded random order of the
mixed cases, so neither the ids nor the file names say which is which; only ``cases.csv`` does
(``label`` 1 = synthetic, ``image`` the synthetic id or the real image id), and readers never see it.

The reader answers "real or synthetic?" with a confidence 1-5 on the same reading screen, in one phase,
without a model, a heat map or an aided phase; reader codes, the answers file and the results guard are
those of every study (``access``, ``responses``, ``results``). The GAN run is only read.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from melanet.runs import lifecycle, runs, stages
from melanet.runs.progress import Progress
from melanet.studies import access, create, responses
from melanet.studies import study as study_module

logger = logging.getLogger(__name__)

QUESTION = "Is this melanoma real, or made by the GAN (synthetic)?"
READING_PROMPT = ("**Real or synthetic?** Half of this study's melanomas are real dermoscopy images and half were "
                  "made by a generative network (a CycleGAN). Say which you think this one is, and how sure you are.")
RATING = "synthetic/confidence 5 = 10 ... synthetic/1 = 6, real/1 = 5 ... real/5 = 1"


@dataclasses.dataclass(frozen=True)
class SyntheticOptions:
    """``cases``: the total (even: half real, half synthetic); 0 = as many pairs as the run allows."""

    cases: int = 0
    seed: int = 0
    readers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CheckedSynthetic:
    """What ``check_request`` found: the target folder, the GAN run and its manifest, and pairs per class."""

    target: Path
    run: runs.Run
    manifest: list[dict[str, str]]
    per_class: int


def check_request(gan_run: str | Path, name: str, *, root: str | Path = study_module.DEFAULT_STUDIES_DIR,
                  options: SyntheticOptions = SyntheticOptions(), real_count: int | None = None) -> CheckedSynthetic:
    """Every check made before anything is read or written (``create.CreateError`` naming the field): the
    name, the seed, a finished train-gan run with a synthesis manifest, the readers and an even case count
    within what the run holds (``real_count`` real melanomas, when known)."""
    from melanet.gan import synthesis

    try:
        target = study_module.resolve_study_name(root, name)
    except study_module.StudyError as error:
        raise create.CreateError("name", str(error)) from None
    if target.exists():
        raise create.CreateError("name", f"{target}: a study of that name exists already; choose another --name")
    if isinstance(options.seed, bool) or not isinstance(options.seed, int) or options.seed < 0:
        raise create.CreateError("seed", f"--seed must be a whole number >= 0, got {options.seed!r}")
    try:
        run = runs.Run.open(gan_run)
        if lifecycle.folder_stage(run) != stages.get("train-gan").folder_stage:
            raise study_module.StudyError(f"{run.path}: holds {lifecycle.describe_folder(run)}, not a GAN run; "
                                          "--synthetic-from reads a train-gan run that has synthesized")
        manifest = synthesis.read_manifest(run.path)
    except (runs.RunError, ValueError) as error:
        raise create.CreateError("run", str(error)) from None
    if not manifest:
        raise create.CreateError("run", f"{run.path / synthesis.MANIFEST_FILE}: no synthetic images")
    for reader in options.readers:
        try:
            responses.normalise_reader(reader)
        except study_module.StudyError as error:
            raise create.CreateError("readers", f"--readers: {error}") from None
    if len({reader.strip() for reader in options.readers}) != len(options.readers):
        raise create.CreateError("readers", f"--readers: a name is given twice: {', '.join(options.readers)}")
    available = len(manifest) if real_count is None else min(len(manifest), real_count)
    per_class = available if not options.cases else options.cases // 2
    if options.cases and (options.cases % 2 or options.cases < 2 or per_class > available):
        raise create.CreateError("cases", f"--cases must be an even number between 2 and {2 * available} (half "
                                          f"real, half synthetic; the run has {len(manifest)} synthetic images"
                                 + ("" if real_count is None else f" and {real_count} real training melanomas")
                                 + f"), got {options.cases}")
    if per_class < 1:
        raise create.CreateError("run", f"{run.path}: no real training melanomas to set beside the synthetic ones")
    return CheckedSynthetic(target=target, run=run, manifest=manifest, per_class=per_class)


def design_warnings(per_class: int, readers: int) -> list[str]:
    """What a real-or-synthetic study of this size cannot show, said before it is created."""
    from melanet.studies import results, synthetic_results

    warnings = []
    if per_class < results.MINIMUM_CASES_PER_CLASS:
        warnings.append(f"{per_class} real and {per_class} synthetic cases: fewer than "
                        f"{results.MINIMUM_CASES_PER_CLASS} of each, so every AUC's interval will be wide")
    if readers and readers < synthetic_results.MINIMUM_READERS:
        warnings.append(f"{readers} reader(s): the pooled AUC over readers needs at least "
                        f"{synthetic_results.MINIMUM_READERS} who answer every case")
    return warnings


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 as an 8-bit RGB PNG with no metadata: one encoder for real and synthetic images alike."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _read_synthetic(run_path: Path, row: dict[str, str]) -> np.ndarray:
    path = run_path / row["path"]
    try:
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB"))
    except (OSError, ValueError) as error:
        raise study_module.StudyError(f"{path}: not a readable synthetic image ({type(error).__name__}); "
                                      "rerun `melanet synthesize`") from None


def _to_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 resized (Lanczos) to ``size`` = (height, width) when it differs."""
    if image.shape[:2] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def create_synthetic_study(
    gan_run: str | Path,
    name: str,
    *,
    root: str | Path = study_module.DEFAULT_STUDIES_DIR,
    options: SyntheticOptions = SyntheticOptions(),
    progress: Progress | None = None,
    codes_out: str | Path | None = None,
) -> study_module.Study:
    """Write ``root/name/`` (study.json, cases.csv, images/, access.json) from a synthesized GAN run; returns it.

    ``create.CreateError`` for a bad request (before anything is written); with ``options.readers`` the codes
    are written once to ``codes_out`` as for every study (``create.publish``).
    """
    from melanet.data import splits

    checked = check_request(gan_run, name, root=root, options=options)
    if options.readers:
        if codes_out is None:
            raise create.CreateError("codes_out", "--codes-out FILE is needed with --readers: the codes are written "
                                                  "there once")
        try:
            access.check_codes_path(codes_out, checked.target)
        except study_module.StudyError as error:
            raise create.CreateError("codes_out", str(error)) from None
    run = checked.run
    config = run.config()
    training, _ = splits.training_and_validation(config.data, config.seed, progress=progress)
    malignant = np.flatnonzero(np.asarray(training.labels) == 1)
    checked = check_request(gan_run, name, root=root, options=options, real_count=len(malignant))
    generator = np.random.default_rng(options.seed)
    real_picked = generator.choice(malignant, checked.per_class, replace=False)
    synthetic_picked = generator.choice(len(checked.manifest), checked.per_class, replace=False)
    synthetic_images = {int(index): _read_synthetic(run.path, checked.manifest[index]) for index in synthetic_picked}
    sizes = {image.shape[:2] for image in synthetic_images.values()}
    if len(sizes) != 1:
        raise study_module.StudyError(f"{run.path}: the synthetic images differ in size ({sorted(sizes)}); "
                                      "rerun `melanet synthesize`")
    size = sizes.pop()
    cases: list[tuple[int, str, np.ndarray]] = (
        [(0, str(training.ids[index]), _to_size(np.asarray(training.images[index]), size)) for index in real_picked]
        + [(1, checked.manifest[index]["synthetic_id"], synthetic_images[int(index)]) for index in synthetic_picked])
    order = generator.permutation(len(cases))
    target = checked.target
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.creating-", dir=_mkdir(target.parent)))
    try:
        (building / study_module.IMAGES_FOLDER).mkdir()
        rows = []
        for number, position in enumerate(order, start=1):
            label, image_id, image = cases[position]
            case_id = f"c{number:03d}"
            file = f"{study_module.IMAGES_FOLDER}/{case_id}.png"
            runs.atomic_write_bytes(building / file, png_bytes(image))
            rows.append({"case": case_id, "image": image_id, "label": label, "file": file})
        runs.atomic_write_csv(building / study_module.CASES_FILE, rows, study_module.SYNTHETIC_CASE_COLUMNS)
        runs.atomic_write_json(building / study_module.STUDY_FILE, _study_info(gan_run, run, config, name, options,
                                                                                rows, size))
        create.publish(building, target, options.readers, codes_out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("study %s: %d real and %d synthetic cases at %dx%d px", target, checked.per_class,
                checked.per_class, size[1], size[0])
    return study_module.open_study(target)


def _study_info(gan_run: str | Path, run: runs.Run, config: Any, name: str, options: SyntheticOptions,
                rows: Sequence[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    return {
        "name": name.strip(), "kind": study_module.REAL_OR_SYNTHETIC, "question": QUESTION,
        "gan_run": str(gan_run), "gan_run_resolved": str(run.path.resolve()), "data": str(config.data.root),
        "seed": options.seed, "cases": len(rows), "n_synthetic": int(sum(row["label"] for row in rows)),
        "n_real": int(sum(1 - row["label"] for row in rows)),
        "subset": "seeded random draw" + (f" of {len(rows)} cases" if options.cases else ", as many pairs as the run "
                                                                                          "holds"),
        "phases": [study_module.PHASES[0]],
        "images": {
            "size_px": [size[1], size[0]], "format": "8-bit RGB PNG, no metadata, images/<case>.png",
            "real": (f"malignant images of the GAN run's training split ({config.data.root}, seed {config.seed}), "
                     f"preprocessed as synthesis saw its sources ({config.data.image_size} px, resize "
                     f"{config.data.resize}, colour constancy {config.data.color_constancy})"
                     + ("" if size == (config.data.image_size,) * 2 else f", then resized (Lanczos) to {size[1]} px")),
            "synthetic": "the run's synthetic/images PNGs as synthesized (synthetic/manifest.csv)",
        },
        "rating": RATING, "created": runs.now_iso(), "created_by": "melanet reader-study create --synthetic-from",
    }


def made_from(study: study_module.Study, gan_run: str | Path, base: str | Path) -> bool:
    """Whether ``study`` is a real-or-synthetic study of ``gan_run``: its recorded run (relative to ``base``, the
    folder it was created from, like a run's ``data.root``) or its resolved path is that folder."""
    if not study.real_or_synthetic:
        return False
    wanted = Path(gan_run).resolve()
    recorded = Path(str(study.info.get("gan_run") or ""))
    candidates = [recorded if recorded.is_absolute() else Path(base) / recorded,
                  Path(str(study.info.get("gan_run_resolved") or ""))]
    return any(str(candidate) not in ("", ".") and candidate.resolve() == wanted for candidate in candidates)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
