"""Who may read a study and who may see its results: reader codes, the organiser code, sign-in limits.

A study with codes holds ``access.json`` (written under the study's lock, atomically)::

    {"organiser": {"salt": hex, "hash": hex},
     "readers": {NAME: {"salt", "hash", "added", "revoked": null | time,
                        "voided": null | {"at", "reason"}, "experience": null | {...}}},
     "closed": false, "washout_days": 0}

Only salted scrypt hashes are kept: a code itself is never written into the study folder. A code is
10 characters of a 32-letter alphabet without look-alikes (50 bits from ``secrets``), shown as
``XXXXX-XXXXX``; typing it in lower case, with spaces or without the dash is the same code.

- **Readers** sign in with their own code; the answers are filed under the name the code belongs to.
  A revoked code no longer signs in (the answers stay in the analysis); a voided reader's answers stay
  in ``responses.csv`` but are left out of the analysis, with the reason.
- **Results** (``melanet.studies.results.results_for``, which asks here) go to the organiser code (everything), or to a reader who has answered
  every case of every phase (that reader's own figures and the model's, not the other readers').
  The dashboard asks here on every page run, so a reload, a new tab or another browser changes nothing.
- **Wrong codes**: ``sign_in`` appends each failure to ``sign-in-failures.log`` in the study folder,
  keyed by a hash of the client (the dashboard passes the browser's address), never the code typed.
  After ``MAX_FAILURES`` wrong codes from one client since its last success, that client waits
  ``LOCKOUT_SECONDS`` after its latest failure before the next try; the log survives reloads and
  server restarts.
- A study made before codes existed (no ``access.json``) is read-only: ``add_readers`` gives it codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet.runs import runs
from melanet.studies import study as study_module
from melanet.studies.study import StudyError

ACCESS_FILE = "access.json"
FAILURES_FILE = "sign-in-failures.log"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 letters: no I, O, 0, 1
CODE_LENGTH = 10  # 10 x 5 bits = 50 bits
MAX_FAILURES = 10
LOCKOUT_SECONDS = 60.0
# scrypt cost: about 16 MiB and a few tens of milliseconds per check on one core
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
ORGANISER = "organiser"
READER = "reader"
EXPERIENCE_FIELDS = ("years_in_dermatology", "specialty", "dermoscopy_images_per_week")
NO_CODES = ("this study was made before reader codes existed and is read-only; give it codes with "
            "`melanet reader-study add-reader STUDY --readers NAME,NAME --codes-out FILE`")


class AccessError(StudyError):
    """A code or a person that may not do what was asked (one line for the reader or the organiser)."""


class RateLimited(AccessError):
    """Too many wrong codes from one client: ``wait_seconds`` before the next try."""

    def __init__(self, wait_seconds: float):
        super().__init__(f"too many wrong codes: try again in {math.ceil(wait_seconds)} s")
        self.wait_seconds = wait_seconds


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a signed-in session is: ``role`` ORGANISER or READER; ``reader`` the reader's name."""

    study: str
    role: str
    reader: str | None = None


# -- codes -----------------------------------------------------------------------------------------


def new_code() -> str:
    """A fresh random code ``XXXXX-XXXXX`` (50 bits from ``secrets``)."""
    letters = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{letters[:5]}-{letters[5:]}"


def normalise_code(code: str) -> str:
    """The code's letters as compared: upper case, without spaces and dashes."""
    return re.sub(r"[\s-]+", "", str(code)).upper()


def hash_code(code: str, salt: bytes | None = None) -> dict[str, str]:
    """``{"salt", "hash"}`` (hex) of a code under scrypt with a fresh 16-byte salt (or ``salt``)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(normalise_code(code).encode("utf-8"), salt=salt, maxmem=64 * 2 ** 20, **SCRYPT)
    return {"salt": salt.hex(), "hash": digest.hex()}


def _matches(code: str, stored: dict[str, str]) -> bool:
    expected = hash_code(code, bytes.fromhex(stored["salt"]))["hash"]
    return hmac.compare_digest(expected, stored["hash"])


# -- the access file -------------------------------------------------------------------------------


def has_codes(study: study_module.Study) -> bool:
    return (study.path / ACCESS_FILE).is_file()


def read_access(study: study_module.Study) -> dict[str, Any]:
    """The study's ``access.json``; AccessError (NO_CODES) for a study without codes."""
    path = study.path / ACCESS_FILE
    if not path.is_file():
        raise AccessError(f"{study.name}: {NO_CODES}")
    access = runs.read_json(path)
    if not isinstance(access, dict) or not isinstance(access.get("readers"), dict) or "organiser" not in access:
        raise StudyError(f"{path}: expected a JSON object with 'organiser' and 'readers'")
    return access


def _write_access(study: study_module.Study, access: dict[str, Any]) -> None:
    runs.atomic_write_json(study.path / ACCESS_FILE, access)


def _lock(study: study_module.Study):
    return study_module.study_lock(study)


def add_readers(study: study_module.Study, names: Sequence[str]) -> dict[str, str]:
    """Enrol ``names`` (and, for a study without codes, an organiser); returns name -> new code, with
    the organiser's code under ORGANISER when one was made. The codes are returned once and never stored.
    AccessError for a name enrolled already or given twice."""
    cleaned = [study_module.normalise_reader(name) for name in names]
    if len(set(cleaned)) != len(cleaned):
        raise AccessError(f"a reader name is given twice: {', '.join(cleaned)}")
    codes: dict[str, str] = {}
    with _lock(study):
        if has_codes(study):
            access = read_access(study)
        else:
            codes[ORGANISER] = new_code()
            access = {"organiser": hash_code(codes[ORGANISER]), "readers": {}, "closed": False, "washout_days": 0}
        for name in cleaned:
            if name in access["readers"]:
                raise AccessError(f"reader {name!r} has a code already (revoke it and add another name)")
        for name in cleaned:
            codes[name] = new_code()
            access["readers"][name] = {**hash_code(codes[name]), "added": runs.now_iso(), "revoked": None,
                                       "voided": None, "experience": None}
        _write_access(study, access)
    return codes


def _change_reader(study: study_module.Study, name: str, key: str, value: Any) -> None:
    with _lock(study):
        access = read_access(study)
        if name not in access["readers"]:
            raise AccessError(f"no reader {name!r} in study {study.name} (readers: {', '.join(access['readers'])})")
        access["readers"][name][key] = value
        _write_access(study, access)


def revoke_reader(study: study_module.Study, name: str) -> None:
    """The reader's code no longer signs in; their answers stay (and stay in the analysis)."""
    _change_reader(study, name, "revoked", runs.now_iso())


def void_reader(study: study_module.Study, name: str, reason: str) -> None:
    """Leave the reader's answers out of the analysis (kept in ``responses.csv``), with ``reason``."""
    reason = re.sub(r"\s+", " ", reason or "").strip()
    if not reason:
        raise AccessError("give the reason why the reader's answers are left out")
    _change_reader(study, name, "voided", {"at": runs.now_iso(), "reason": reason})


def set_closed(study: study_module.Study, closed: bool) -> None:
    """Close the study (no more answers) or reopen it."""
    with _lock(study):
        access = read_access(study)
        access["closed"] = bool(closed)
        _write_access(study, access)


def set_washout(study: study_module.Study, days: float) -> None:
    """Days a reader waits after their last unaided answer before the aided phase opens."""
    if not isinstance(days, (int, float)) or isinstance(days, bool) or not math.isfinite(days) or days < 0:
        raise AccessError(f"the washout must be a number of days >= 0, got {days!r}")
    with _lock(study):
        access = read_access(study)
        access["washout_days"] = float(days)
        _write_access(study, access)


def set_experience(study: study_module.Study, reader: str, years: float, specialty: str, images_per_week: int) -> None:
    """The reader's experience (given once, on the first screen): kept with their answers and in the results."""
    if not isinstance(years, (int, float)) or not math.isfinite(years) or not 0 <= years <= 80:
        raise AccessError(f"years in dermatology must lie between 0 and 80, got {years!r}")
    if not isinstance(images_per_week, int) or isinstance(images_per_week, bool) or not 0 <= images_per_week <= 100_000:
        raise AccessError(f"dermoscopy images a week must be a whole number >= 0, got {images_per_week!r}")
    specialty = re.sub(r"\s+", " ", specialty or "").strip()[:120]
    if not specialty:
        raise AccessError("give your specialty (e.g. dermatology, general practice, resident)")
    _change_reader(study, reader, "experience", {"years_in_dermatology": float(years), "specialty": specialty,
                                                 "dermoscopy_images_per_week": int(images_per_week)})


def reader_record(study: study_module.Study, name: str) -> dict[str, Any]:
    return read_access(study)["readers"].get(name) or {}


def is_closed(study: study_module.Study) -> bool:
    return has_codes(study) and bool(read_access(study).get("closed"))


def voided(study: study_module.Study) -> dict[str, str]:
    """Voided reader -> the reason (empty for a study without codes)."""
    if not has_codes(study):
        return {}
    return {name: record["voided"]["reason"] for name, record in read_access(study)["readers"].items()
            if record.get("voided")}


def experience(study: study_module.Study) -> dict[str, dict[str, Any]]:
    """Reader -> their experience (readers who gave it)."""
    if not has_codes(study):
        return {}
    return {name: record["experience"] for name, record in read_access(study)["readers"].items()
            if record.get("experience")}


def washout_days(study: study_module.Study) -> float:
    return float(read_access(study).get("washout_days") or 0) if has_codes(study) else 0.0


def check_may_answer(study: study_module.Study, reader: str) -> None:
    """AccessError unless ``reader`` holds a live code of an open study with codes."""
    access = read_access(study)
    record = access["readers"].get(reader)
    if record is None:
        raise AccessError(f"{reader!r} is not a reader of study {study.name}")
    if record.get("revoked"):
        raise AccessError(f"the code of {reader!r} was revoked")
    if access.get("closed"):
        raise AccessError(f"study {study.name} is closed: no more answers")


# -- signing in ------------------------------------------------------------------------------------


def client_key(client: str) -> str:
    """What the failure log keeps of a client (its address): a short hash, not the address."""
    return hashlib.sha256(f"melanet-sign-in|{client}".encode("utf-8")).hexdigest()[:16]


def _failures_since_success(study: study_module.Study, key: str) -> list[float]:
    path = study.path / FAILURES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    failures: list[float] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[1] != key:
            continue
        try:
            moment = float(parts[0])
        except ValueError:
            continue
        failures = [] if parts[2] == "ok" else failures + [moment]
    return failures


def _log(study: study_module.Study, key: str, outcome: str, now: float) -> None:
    path = study.path / FAILURES_FILE
    with path.open("a", encoding="utf-8") as stream:
        stream.write(f"{now:.3f} {key} {outcome}\n")


def wait_seconds(study: study_module.Study, client: str, now: float | None = None) -> float:
    """Seconds ``client`` must wait before its next try (0 when it may try now)."""
    now = time.time() if now is None else now
    failures = _failures_since_success(study, client_key(client))
    if len(failures) < MAX_FAILURES:
        return 0.0
    return max(0.0, failures[-1] + LOCKOUT_SECONDS - now)


def sign_in(study: study_module.Study, code: str, client: str, now: float | None = None) -> Identity:
    """The identity a code gives in ``study``: the organiser, or the reader it was issued to.

    ``client`` names the browser (its address) for the wrong-code limit. AccessError for a study
    without codes, an unknown or revoked code (one line, and the failure is logged); RateLimited
    while the client must wait (the code is not even checked then).
    """
    now = time.time() if now is None else now
    access = read_access(study)
    key = client_key(client)
    with _lock(study):
        waiting = wait_seconds(study, client, now)
        if waiting > 0:
            raise RateLimited(waiting)
    typed = normalise_code(code)
    identity: Identity | None = None
    revoked = False
    if len(typed) == CODE_LENGTH and set(typed) <= set(CODE_ALPHABET):
        if _matches(typed, access["organiser"]):
            identity = Identity(study.name, ORGANISER)
        for name, record in access["readers"].items():
            if identity is None and _matches(typed, record):
                if record.get("revoked"):
                    revoked = True
                else:
                    identity = Identity(study.name, READER, name)
    with _lock(study):
        _log(study, key, "ok" if identity else "wrong", now)
    if identity is None:
        raise AccessError("this code was revoked by the organiser" if revoked else "unknown code for this study")
    return identity


def still_valid(study: study_module.Study, identity: Identity) -> bool:
    """Whether a signed-in identity still holds (a reader's code may have been revoked since)."""
    if identity.study != study.name or not has_codes(study):
        return False
    if identity.role == ORGANISER:
        return True
    record = read_access(study)["readers"].get(identity.reader or "")
    return bool(record) and not record.get("revoked")


# -- the codes file --------------------------------------------------------------------------------


def write_codes_file(path: str | Path, study: study_module.Study, codes: dict[str, str]) -> Path:
    """Write ``codes`` once to ``path`` (mode 600), refusing a path inside the study folder or an existing
    file. One line per person: ``organiser CODE`` / ``reader NAME CODE`` with the study's name on top."""
    target = Path(path).expanduser().resolve()
    check_codes_path(target, study.path)
    lines = [f"# reader codes of study {study.name}: give each reader their own line; kept nowhere else"]
    for name, code in codes.items():
        lines.append(f"organiser\t{code}" if name == ORGANISER else f"reader\t{name}\t{code}")
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    return target


def check_codes_path(path: str | Path, study_path: str | Path) -> None:
    """StudyError for a codes file inside the study folder, or one that exists already."""
    target = Path(path).expanduser().resolve()
    folder = Path(study_path).resolve()
    if target == folder or folder in target.parents:
        raise StudyError(f"--codes-out {path}: lies inside the study folder {folder}; write the codes elsewhere")
    if target.exists():
        raise StudyError(f"--codes-out {path}: exists already; codes are written once, to a new file")


def codes_summary(codes: dict[str, str]) -> list[str]:
    """Lines to print once: the organiser's code and each reader's."""
    return [f"organiser: {code}" if name == ORGANISER else f"reader {name}: {code}" for name, code in codes.items()]


def public_readers(study: study_module.Study) -> list[dict[str, Any]]:
    """The readers as the organiser sees them (no hashes): name, added, revoked, voided, experience."""
    return [{"reader": name, **{key: record.get(key) for key in ("added", "revoked", "voided", "experience")}}
            for name, record in read_access(study)["readers"].items()]
