"""Downloads (resume, MD5), safe extraction and local sources, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial

import pytest

from asr.corpus.download import DownloadError, fetch, obtain, safe_extract


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (the standard handler ignores Range)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
        # recorded before the reply: the client may check the list as soon as it has read the body
        self.server.requests.append((self.path, start))
        if rng and rng.startswith("bytes="):
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    httpd.shutdown()


def make_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_fetch_resumes_a_partial_download_and_checks_md5(server, tmp_path):
    root, url, requests = server
    payload = bytes(range(256)) * 4000
    (root / "a.bin").write_bytes(payload)
    dest = tmp_path / "dl" / "a.bin"
    dest.parent.mkdir()
    (dest.parent / "a.bin.part").write_bytes(payload[:300000])  # an interrupted earlier download
    fetch(f"{url}/a.bin", dest, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert requests == [("/a.bin", 300000)]  # only the missing tail was requested
    fetch(f"{url}/a.bin", dest, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert len(requests) == 1  # complete and verified: not downloaded again


def test_fetch_md5_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    root, url, _ = server
    (root / "b.bin").write_bytes(b"corrupted content")
    dest = tmp_path / "b.bin"
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        fetch(f"{url}/b.bin", dest, md5="0" * 32, progress=False)
    assert not dest.exists() and not (tmp_path / "b.bin.part").exists()


def test_fetch_unreachable_host_names_the_url_and_the_local_option(tmp_path):
    with pytest.raises(DownloadError, match="--source"):
        fetch("http://127.0.0.1:9/none.tar.gz", tmp_path / "x", progress=False, timeout=5)


def test_safe_extract_refuses_paths_escaping_the_destination(tmp_path):
    for bad in ("../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"):
        archive = tmp_path / "bad.tar.gz"
        make_tar(archive, {"fine.txt": b"x", bad: b"owned"})
        with pytest.raises(DownloadError, match="unsafe path"):
            safe_extract(archive, tmp_path / "out", progress=False)
        assert not (tmp_path / "evil.txt").exists()
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(DownloadError, match="unsafe path"):
        safe_extract(archive, tmp_path / "out2", progress=False)
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../evil.txt", "owned")
    with pytest.raises(DownloadError, match="unsafe path"):
        safe_extract(zpath, tmp_path / "out3", progress=False)


def test_safe_extract_tar_and_zip(tmp_path):
    make_tar(tmp_path / "a.tar.gz", {"d/one.txt": b"1", "d/two.txt": b"2"})
    out = safe_extract(tmp_path / "a.tar.gz", tmp_path / "x", progress=False)
    assert (out / "d" / "two.txt").read_bytes() == b"2"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("e/three.txt", "3")
    out = safe_extract(tmp_path / "b.zip", tmp_path / "y", progress=False)
    assert (out / "e" / "three.txt").read_text() == "3"
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="not a readable archive"):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "z", progress=False)


def test_obtain_downloads_extracts_and_then_skips(server, tmp_path):
    root, url, requests = server
    make_tar(root / "c.tar.gz", {"corpus/file.txt": b"hello"})
    md5 = hashlib.md5((root / "c.tar.gz").read_bytes()).hexdigest()
    dest = obtain("c.tar.gz", f"{url}/c.tar.gz", tmp_path / "dl", md5=md5, progress=False)
    assert (dest / "corpus" / "file.txt").read_bytes() == b"hello"
    assert not (dest / "c.tar.gz").exists()  # archive removed after extraction
    obtain("c.tar.gz", f"{url}/c.tar.gz", tmp_path / "dl", md5=md5, progress=False)
    assert len(requests) == 1


def test_obtain_local_sources(tmp_path):
    make_tar(tmp_path / "c.tar.gz", {"corpus/file.txt": b"hello"})
    # an archive file
    d1 = obtain("c.tar.gz", None, tmp_path / "d1", source=tmp_path / "c.tar.gz", progress=False)
    assert (d1 / "corpus" / "file.txt").is_file()
    # a folder holding the archive, with a wrong checksum: refused
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        obtain("c.tar.gz", None, tmp_path / "d2", md5="0" * 32, source=tmp_path, progress=False)
    # an extracted folder
    (tmp_path / "ext" / "corpus").mkdir(parents=True)
    (tmp_path / "ext" / "corpus" / "f.txt").write_text("x")
    d3 = obtain("c.tar.gz", None, tmp_path / "d3", source=tmp_path / "ext", progress=False)
    assert (d3 / "corpus" / "f.txt").read_text() == "x"
    with pytest.raises(DownloadError, match="not found"):
        obtain("c.tar.gz", None, tmp_path / "d4", source=tmp_path / "missing", progress=False)
