"""``melanet data download`` against a real HTTP server on 127.0.0.1 serving zips of real JPEGs."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from melanet import cli
from melanet.data import download, sources
from melanet.data.errors import DataError

FILES = download.ISIC2016_FILES


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support; ``server.behaviour`` injects faults."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        name = self.path.rsplit("/", 1)[-1]
        server.requests.append((name, self.headers.get("Range")))
        if name not in server.files or not self.path.startswith("/2016/"):
            self.send_error(404)
            return
        body = server.files[name]
        start = 0
        requested = self.headers.get("Range")
        if requested and server.behaviour != "ignore-range":
            start = int(requested.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        first_time = name not in server.dropped
        if server.behaviour == "always-truncate" or (server.behaviour == "drop-first" and first_time):
            server.dropped.add(name)
            payload = payload[: len(payload) // 2]  # then the connection closes early
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def archive_files(tiny_isic) -> dict[str, bytes]:
    """The four official files, built from the tiny_isic folder (zips hold one top-level folder)."""
    files = {}
    for name in FILES:
        if name.endswith(".csv"):
            files[name] = (tiny_isic / name).read_bytes()
            continue
        folder = tiny_isic / name[: -len(".zip")]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            for image in sorted(folder.iterdir()):
                bundle.write(image, f"{folder.name}/{image.name}")
            bundle.writestr("__MACOSX/._junk", b"resource fork")
        files[name] = buffer.getvalue()
    return files


@pytest.fixture
def server(archive_files):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.behaviour, httpd.requests, httpd.dropped = archive_files, "", [], set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/2016/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _assert_complete(dest: Path) -> None:
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["ISBI2016_ISIC_Part3_Training_Data", "ISBI2016_ISIC_Part3_Test_Data",
         "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"])
    index = sources.read_index(dest)
    assert index.problems == [] and (len(index.train), len(index.test)) == (12, 6)


def test_download_extracts_the_official_layout(server, tmp_path):
    calls = []
    download.download_isic2016(tmp_path / "downloaded", url=server.url, progress=lambda *a: calls.append(a))
    _assert_complete(tmp_path / "downloaded")
    assert all(requested is None for _, requested in server.requests)
    assert (calls[-1][0], calls[-1][2]) == (len(server.files[FILES[-1]]), FILES[-1])
    # a second run finds everything in place and asks for nothing
    server.requests.clear()
    download.download_isic2016(tmp_path / "downloaded", url=server.url)
    assert server.requests == []


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.behaviour = "drop-first"
    download.download_isic2016(tmp_path / "downloaded", url=server.url)
    _assert_complete(tmp_path / "downloaded")
    zip_name = FILES[2]
    half = len(server.files[zip_name]) // 2
    assert [r for n, r in server.requests if n == zip_name] == [None, f"bytes={half}-"]


def test_existing_part_file_resumes(server, archive_files, tmp_path):
    dest = tmp_path / "downloaded"
    dest.mkdir()
    name = FILES[2]
    (dest / f"{name}.part").write_bytes(archive_files[name][:1000])
    download.download_isic2016(dest, url=server.url)
    _assert_complete(dest)
    assert (name, "bytes=1000-") in server.requests


def test_server_ignoring_range_restarts_from_zero(server, archive_files, tmp_path):
    dest = tmp_path / "downloaded"
    dest.mkdir()
    name = FILES[3]
    (dest / f"{name}.part").write_bytes(b"garbage from another file")
    server.behaviour = "ignore-range"
    download.download_isic2016(dest, url=server.url)
    _assert_complete(dest)


def test_stale_part_longer_than_the_file_is_replaced(server, archive_files, tmp_path):
    dest = tmp_path / "downloaded"
    dest.mkdir()
    name = FILES[0]
    (dest / f"{name}.part").write_bytes(b"x" * (len(archive_files[name]) + 100))
    download.download_isic2016(dest, url=server.url)
    _assert_complete(dest)


def test_size_mismatch_is_an_error_and_keeps_the_part(server, tmp_path):
    server.behaviour = "always-truncate"
    dest = tmp_path / "downloaded"
    with pytest.raises(DataError, match=r"incomplete download after 2 attempts .* run the command again to resume"):
        download.download_isic2016(dest, url=server.url, attempts=2)
    assert (dest / f"{FILES[0]}.part").is_file() and not (dest / FILES[0]).exists()


def test_missing_file_is_an_error(server, tmp_path):
    del server.files[FILES[1]]
    with pytest.raises(DataError, match="HTTP 404"):
        download.download_isic2016(tmp_path / "downloaded", url=server.url)


def test_half_extracted_folder_is_never_taken_as_complete(server, archive_files, tmp_path):
    dest = tmp_path / "downloaded"
    dest.mkdir()
    name = FILES[2]
    # a run killed while extracting leaves only a hidden temporary folder and the zip
    leftover = dest / ".ISBI2016_ISIC_Part3_Training_Data.extracting-dead"
    (leftover / "ISBI2016_ISIC_Part3_Training_Data").mkdir(parents=True)
    (dest / name).write_bytes(archive_files[name])
    download.download_isic2016(dest, url=server.url)
    assert len(list((dest / "ISBI2016_ISIC_Part3_Training_Data").iterdir())) == 12
    # a corrupt archive of the right name leaves no folder behind
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive_files[name][:-200])
    with pytest.raises(DataError, match="not a valid zip"):
        download.extract_atomically(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.extracting-*"))


@pytest.mark.parametrize("member", ["../escape.txt", "isic/../../escape.txt", "/escape.txt"])
def test_unsafe_archive_paths_are_refused(tmp_path, member):
    # extraction runs in a temporary folder inside tmp_path: one '..' from there is tmp_path itself
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("isic/ok.txt", b"fine")
        bundle.writestr(member, b"no")
    with pytest.raises(DataError, match="unsafe path"):
        download.extract_atomically(archive, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["evil.zip"]  # no escape.txt, no out, no temp folder
    assert not (tmp_path.parent / "escape.txt").exists() and not Path("/escape.txt").exists()


def test_cli_download_with_environment_base_url(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(download.BASE_URL_ENVIRONMENT, server.url.rstrip("/"))
    assert cli.main(["-q", "data", "download", "isic2016", "--dest", str(tmp_path / "downloaded")]) == 0
    assert server.url in capsys.readouterr().out
    _assert_complete(tmp_path / "downloaded")
    assert cli.main(["-q", "data", "download", "isic2016", "--dest", str(tmp_path / "other"),
                     "--base-url", server.url.replace("/2016/", "/elsewhere/")]) == 2
    assert "HTTP 404" in capsys.readouterr().err
