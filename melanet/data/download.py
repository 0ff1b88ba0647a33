"""Download the official ISIC challenge files (2016 Part 3, 2017 Part 3, 2018 Task 3, 2019, 2020):
resumable, size-checked, extracted atomically.

Each file is fetched into ``<name>.part`` and renamed when its size matches the server's; an
interrupted download resumes from the ``.part`` file with an HTTP Range request. A zip is extracted
into a temporary folder beside the destination and renamed into place, so a folder under the
official name is always complete; the zip is then removed (``keep_archives`` keeps it).

ISIC-2016 comes from ``DEFAULT_BASE_URL``; the later challenges from the newer bucket
(``https://isic-archive.s3.amazonaws.com/challenges/<year>/``; the old one,
``https://isic-challenge-data.s3.amazonaws.com/<year>/``, holds the same names). Either can be replaced
(``--base-url`` or ``$MELANET_ISIC_BASE_URL``); a ``{year}`` in the URL becomes the challenge year. File
names and ``--parts`` of the later challenges are defined in :mod:`melanet.data.challenges`.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from melanet.data import challenges
from melanet.data.errors import DataError
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://isic-challenge-data.s3.amazonaws.com/2016/"
BASE_URL_ENVIRONMENT = "MELANET_ISIC_BASE_URL"
ISIC2016_FILES = (
    "ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
    "ISBI2016_ISIC_Part3_Test_GroundTruth.csv",
    "ISBI2016_ISIC_Part3_Training_Data.zip",
    "ISBI2016_ISIC_Part3_Test_Data.zip",
)
_CHUNK = 1 << 20


def base_url(explicit: str | None = None, *, year: int = 2016) -> str:
    """``explicit``, else $MELANET_ISIC_BASE_URL, else the year's bucket folder; ``{year}`` filled in, ending in '/'.

    The default is ``DEFAULT_BASE_URL`` for 2016 and the newer ISIC bucket for the later challenges.
    """
    default = DEFAULT_BASE_URL if year == 2016 else challenges.NEW_BUCKET_URL
    url = (explicit or os.environ.get(BASE_URL_ENVIRONMENT) or default).replace("{year}", str(year))
    return url if url.endswith("/") else url + "/"


def download_isic2016(dest: str | Path, *, url: str | None = None, attempts: int = 4, timeout: float = 60.0,
                      keep_archives: bool = False, progress: Progress | None = None) -> Path:
    """Fetch and unpack the four official files into ``dest`` (ready for ``melanet data check``); returns ``dest``."""
    files = tuple((name, name[: -len(".zip")] if name.endswith(".zip") else None) for name in ISIC2016_FILES)
    return download_files(files, dest, base_url(url), attempts=attempts, timeout=timeout,
                          keep_archives=keep_archives, progress=progress)


def download_challenge(dataset: str, dest: str | Path, *, parts: list[str] | None = None, url: str | None = None,
                       attempts: int = 4, timeout: float = 60.0, keep_archives: bool = False,
                       progress: Progress | None = None) -> Path:
    """Fetch and unpack ``parts`` (default: all) of ``dataset`` ('isic2017' ... 'isic2020') into ``dest``.

    Raises ``DataError`` for an unknown data set or part (naming the choices).
    """
    if dataset not in challenges.LAYOUTS:
        raise DataError(f"unknown data set {dataset!r} (expected isic2016 or {', '.join(challenges.LAYOUTS)})")
    layout = challenges.LAYOUTS[dataset]
    chosen = parts or list(layout.parts)
    unknown = [part for part in chosen if part not in layout.parts]
    if unknown:
        raise DataError(f"{dataset}: unknown part {', '.join(unknown)} (expected {', '.join(layout.parts)})")
    files = tuple(entry for part in chosen for entry in layout.parts[part].files)
    return download_files(files, dest, base_url(url, year=layout.year), attempts=attempts, timeout=timeout,
                          keep_archives=keep_archives, progress=progress)


def download_files(files: tuple[tuple[str, str | None], ...], dest: str | Path, root_url: str, *, attempts: int = 4,
                   timeout: float = 60.0, keep_archives: bool = False, progress: Progress | None = None) -> Path:
    """Fetch each ``(name, folder)`` from ``root_url`` into ``dest``; a zip is unpacked into ``dest/folder``.

    A CSV already present, or a folder already extracted, is not fetched again.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, folder_name in files:
        target = dest / name
        if folder_name is not None:
            folder = dest / folder_name
            if folder.is_dir():
                logger.info("%s already extracted", folder)
                continue
            if not target.is_file():
                fetch(root_url + name, target, attempts=attempts, timeout=timeout, progress=progress)
            extract_atomically(target, folder)
            if not keep_archives:
                target.unlink()
        elif not target.is_file():
            fetch(root_url + name, target, attempts=attempts, timeout=timeout, progress=progress)
    return dest


def fetch(url: str, target: Path, *, attempts: int = 4, timeout: float = 60.0, progress: Progress | None = None) -> None:
    """Download ``url`` to ``target`` via ``target.part``, resuming after a dropped connection.

    Raises ``DataError`` when the server keeps ending early, answers with an error, or sends more
    bytes than it announced (the ``.part`` file is kept for a later resume where that makes sense).
    """
    part = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            total = _fetch_once(url, part, timeout, progress, target.name)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            if isinstance(error, urllib.error.HTTPError) and error.code not in (408, 416, 429, 500, 502, 503, 504):
                raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
            logger.warning("%s: attempt %d of %d failed (%s)", url, attempt, attempts, error)
            if attempt < attempts:
                time.sleep(min(0.2 * 2 ** attempt, 5.0))
            continue
        size = part.stat().st_size
        if total is not None and size > total:
            part.unlink()
            raise DataError(f"{url}: size mismatch: got {size} bytes, the server announced {total}")
        if total is None or size == total:
            os.replace(part, target)
            return
        logger.warning("%s: connection ended at %d of %d bytes (attempt %d of %d); resuming",
                       url, size, total, attempt, attempts)
    size = part.stat().st_size if part.exists() else 0
    raise DataError(f"{url}: incomplete download after {attempts} attempts ({size} bytes in {part}); "
                    "run the command again to resume")


def _fetch_once(url: str, part: Path, timeout: float, progress: Progress | None, name: str) -> int | None:
    """One request; appends to ``part``; returns the full size the server announced (None if unknown)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after our offset: the part is complete or stale
            total = _range_total(error.headers.get("Content-Range"))
            if total == have:
                return total
            part.unlink()
            logger.warning("%s: stale partial file removed; starting again", part)
        raise
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            total = _range_total(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # the server ignored the Range: start from zero
            total = int(length) if length is not None else None
            have, mode = 0, "wb"
        with open(part, mode) as stream:
            if progress:
                progress(have, total or 0, name)
            while chunk := response.read(_CHUNK):
                stream.write(chunk)
                have += len(chunk)
                if progress:
                    progress(have, total or 0, name)
    return total


def _range_total(content_range: str | None) -> int | None:
    """'bytes 100-199/1000' or 'bytes */1000' -> 1000."""
    if not content_range or "/" not in content_range:
        return None
    tail = content_range.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def extract_atomically(archive: Path, folder: Path) -> None:
    """Unzip ``archive`` so that ``folder`` appears complete or not at all.

    Members are extracted into a temporary folder beside ``folder``, which is renamed into place
    last. A zip holding one top-level folder (as the official ones do) gives that folder's content.
    """
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.extracting-", dir=folder.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as bundle:
                members = [m for m in bundle.infolist() if not m.filename.startswith("__MACOSX/")]
                for member in members:
                    parts = PurePosixPath(member.filename).parts
                    if member.filename.startswith("/") or ".." in parts:
                        raise DataError(f"{archive}: unsafe path in archive: {member.filename!r}")
                    bundle.extract(member, temporary)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
            raise DataError(f"{archive}: not a valid zip file ({error}); delete it and download again") from None
        entries = [entry for entry in temporary.iterdir() if not entry.name.startswith(".")]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else temporary
        os.rename(source, folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(temporary)
