"""A dashboard script run leaves Streamlit's stand-in ``__main__`` (its ``__file__`` is ``app.py``) in the process.

A decoding pool started afterwards in that process (the dashboard's own server, or pytest after an AppTest)
re-imports that ``__main__`` in each worker, outside any Streamlit session; ``app.py`` must then do nothing, or
every worker dies and the data cannot be prepared.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from melanet.config import DataConfig
from melanet.data import prepare

REPOSITORY = Path(__file__).resolve().parents[1]


def test_images_decode_in_a_process_pool_after_the_dashboard_ran(tiny_isic: Path, tmp_path: Path) -> None:
    app = AppTest.from_file(str(REPOSITORY / "app.py"), default_timeout=90)
    app.run()
    assert not app.exception, app.exception
    assert Path(sys.modules["__main__"].__file__).name == "app.py"  # the situation this test is about

    # a second thread, as in a server (or once TensorFlow is loaded): the pool starts from a forkserver, whose
    # workers import __main__ afresh (a plain fork would copy this process instead)
    release = threading.Event()
    waiting = threading.Thread(target=release.wait, daemon=True)
    waiting.start()
    try:
        pooled = prepare.load_split(DataConfig(root=str(tiny_isic), image_size=32, cache_dir=str(tmp_path / "a"),
                                               workers=2), "train")
    finally:
        release.set()
    serial = prepare.load_split(DataConfig(root=str(tiny_isic), image_size=32, cache_dir=str(tmp_path / "b"),
                                           workers=1), "train")
    assert len(pooled.images) == 12
    np.testing.assert_array_equal(np.asarray(pooled.images), np.asarray(serial.images))
