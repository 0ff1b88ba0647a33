"""What every benchmark writes beside its figures: the machine it ran on, and the JSON file itself."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(load_before: tuple[float, ...], note: str) -> dict[str, Any]:
    """Platform, cores, TensorFlow/Keras versions, the load average before (``os.getloadavg()`` taken at
    the start) and now, and ``note`` (how shared the machine was)."""
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()], "note": note}


def write(path: str | Path, report: dict[str, Any]) -> Path:
    """``report`` as indented JSON at ``path`` (folders made); returns the path."""
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return output
