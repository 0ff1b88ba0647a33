"""``melanet data download isic2017|isic2018|isic2019|isic2020`` against a real HTTP server on 127.0.0.1.

The server holds the official file names under ``/challenges/<year>/`` (the newer bucket's paths), built
by zipping miniature copies of each layout exactly as the official zips hold them (one top-level folder;
2020's JPEG zip holds ``train/``).
"""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from challenge_layouts import BUILDERS
from melanet import cli
from melanet.data import challenges, download, sources
from melanet.data.errors import DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) with Range support; ``drop-first`` cuts each file's first answer."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path not in server.files:
            self.send_error(404)
            return
        body = server.files[self.path]
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.behaviour == "drop-first" and self.path not in server.dropped:
            server.dropped.add(self.path)
            payload = payload[: len(payload) // 2]
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def _official_files(source: Path, layout: challenges.ChallengeLayout) -> dict[str, bytes]:
    """name -> bytes of every downloadable file of ``layout``, made from the unpacked miniature ``source``."""
    files = {}
    for part in layout.parts.values():
        for name, folder in part.files:
            if folder is None:
                files[name] = (source / name).read_bytes()
                continue
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as bundle:
                for path in sorted((source / folder).iterdir()):
                    bundle.write(path, f"{folder}/{path.name}")
            files[name] = buffer.getvalue()
    return files


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server holding every later challenge's files under /challenges/<year>/, and the source folders."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.sources = {}, {}
    for name, build in BUILDERS.items():
        layout = challenges.LAYOUTS[name]
        source = build(tmp_path_factory.mktemp(name) / "source")
        httpd.sources[name] = source
        for file_name, body in _official_files(source, layout).items():
            httpd.files[f"/challenges/{layout.year}/{file_name}"] = body
    httpd.requests, httpd.behaviour, httpd.dropped = [], "", set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/challenges/{{year}}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _fresh(server):
    server.requests.clear()
    server.behaviour = ""
    server.dropped.clear()


def _labels(root: Path) -> dict[str, list[tuple[str, int, str | None]]]:
    index = sources.read_index(root)
    assert index.problems == []
    return {split: [(s.image_id, s.label, s.group) for s in index.samples(split)] for split in index.splits}


@pytest.mark.parametrize("dataset", list(BUILDERS))
def test_download_gives_the_official_layout(server, tmp_path, dataset):
    dest = download.download_challenge(dataset, tmp_path / dataset, url=server.url)
    assert sources.read_index(dest).layout == dataset
    found, expected = _labels(dest), _labels(server.sources[dataset])
    assert {split: len(rows) for split, rows in found.items()} == {split: len(rows) for split, rows in expected.items()}
    assert [(i, label) for i, label, _ in found["train"]] == [(i, label) for i, label, _ in expected["train"]]
    assert not list(dest.glob("*.zip")) and not list(dest.glob("*.part"))
    # a second run finds everything in place and asks for nothing
    server.requests.clear()
    download.download_challenge(dataset, dest, url=server.url)
    assert server.requests == []


def test_isic2020_zip_unpacks_to_train(server, tmp_path):
    dest = download.download_challenge("isic2020", tmp_path / "isic2020", url=server.url)
    assert sorted(path.name for path in dest.iterdir()) == [
        "ISIC_2020_Training_Duplicates.csv", "ISIC_2020_Training_GroundTruth_v2.csv", "train"]
    assert len(list((dest / "train").glob("*.jpg"))) == 24


def test_parts_fetch_only_their_files(server, tmp_path):
    dest = download.download_challenge("isic2018", tmp_path / "isic2018", parts=["validation"], url=server.url)
    assert sorted(path for path, _ in server.requests) == [
        "/challenges/2018/ISIC2018_Task3_Validation_GroundTruth.zip", "/challenges/2018/ISIC2018_Task3_Validation_Input.zip"]
    assert sorted(path.name for path in dest.iterdir()) == [
        "ISIC2018_Task3_Validation_GroundTruth", "ISIC2018_Task3_Validation_Input"]
    with pytest.raises(DataError, match="isic2018: unknown part tets .expected training, validation, test."):
        download.download_challenge("isic2018", dest, parts=["tets"], url=server.url)


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.behaviour = "drop-first"
    dest = download.download_challenge("isic2019", tmp_path / "isic2019", url=server.url)
    assert _labels(dest)["train"] == _labels(server.sources["isic2019"])["train"]
    path = "/challenges/2019/ISIC_2019_Training_Input.zip"
    half = len(server.files[path]) // 2
    assert [requested for name, requested in server.requests if name == path] == [None, f"bytes={half}-"]


def test_base_url_default_and_old_bucket():
    assert download.base_url(year=2018) == "https://isic-archive.s3.amazonaws.com/challenges/2018/"
    assert download.base_url(challenges.OLD_BUCKET_URL, year=2017) == "https://isic-challenge-data.s3.amazonaws.com/2017/"
    assert download.base_url() == download.DEFAULT_BASE_URL  # 2016 keeps its own default


def test_cli_download_with_environment_base_url_and_parts(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(download.BASE_URL_ENVIRONMENT, server.url)
    dest = tmp_path / "isic2017"
    assert cli.main(["-q", "data", "download", "isic2017", "--dest", str(dest), "--parts", "training", "test"]) == 0
    assert "ISIC 2017 Part 3 (training, test)" in capsys.readouterr().out
    assert sources.read_index(dest).splits == ("train", "test")
    assert cli.main(["-q", "data", "download", "isic2017", "--dest", str(dest), "--parts", "everything"]) == 2
    assert "unknown part everything" in capsys.readouterr().err
    assert cli.main(["-q", "data", "download", "isic2020", "--dest", str(tmp_path / "x"),
                     "--base-url", server.url.replace("/challenges/", "/elsewhere/")]) == 2
    assert "HTTP 404" in capsys.readouterr().err
