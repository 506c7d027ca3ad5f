"""audrey.data.fetch and `audrey data fetch`: local, file:// and HTTP sources, resume, and verification.

The archive is built here in AudioMNIST's GitHub layout (AudioMNIST-master/data/NN/D_NN_I.wav plus
data/audioMNIST_meta.txt), small: 2 speakers x 10 digits x 2 takes.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audrey.cli import app
from audrey.data.corpora import read_corpus
from audrey.errors import AudreyError
from audrey.data.fetch import fetch_audiomnist, sha256_of
from helpers import one_line_error, tone

SPEAKERS = ("01", "02")
CLIPS = len(SPEAKERS) * 10 * 2
META = {s: {"accent": "german", "age": 30, "gender": "male", "native speaker": "no", "origin": "x",
            "recordingdate": "17-06-22", "recordingroom": "Kino"} for s in SPEAKERS}


def tiny_wav(freq: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(freq, 0.02, sr=48000), 48000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def archive_members(top: str = "AudioMNIST-master") -> dict[str, bytes]:
    members = {f"{top}/README.md": b"AudioMNIST\n", f"{top}/data/audioMNIST_meta.txt": json.dumps(META).encode()}
    for s in SPEAKERS:
        for d in range(10):
            for take in range(2):
                members[f"{top}/data/{s}/{d}_{s}_{take}.wav"] = tiny_wav(200 + 50 * d + take)
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    return write_zip(tmp_path / "src" / "AudioMNIST-master.zip", archive_members())


def assert_unpacked(dest: Path) -> None:
    wavs = sorted((dest / "data").rglob("*.wav"))
    assert len(wavs) == CLIPS
    assert (dest / "data" / "01" / "7_01_1.wav").is_file()
    assert (dest / "data" / "audioMNIST_meta.txt").is_file()
    assert not (dest / ".data.partial").exists()
    assert json.loads((dest / "VERIFIED.json").read_text())["clips"] == CLIPS
    clips = read_corpus(dest)
    assert len(clips) == CLIPS and {c.source for c in clips} == {"audiomnist"}
    assert {c.speaker for c in clips} == set(SPEAKERS) and clips[0].meta["recordingroom"] == "Kino"


# --- local sources ---------------------------------------------------------------------------------


def test_fetch_from_local_path(tmp_path, archive):
    dest = tmp_path / "am"
    assert fetch_audiomnist(dest, str(archive), expected_clips=CLIPS) == dest
    assert_unpacked(dest)
    # a second call is a no-op: VERIFIED.json says the corpus is complete (the source may be gone)
    archive.unlink()
    assert fetch_audiomnist(dest, str(archive), expected_clips=CLIPS) == dest
    assert_unpacked(dest)


def test_fetch_from_file_url_with_space(tmp_path):
    src = write_zip(tmp_path / "my archives" / "a.zip", archive_members())
    assert "%20" in src.as_uri()
    dest = tmp_path / "am"
    fetch_audiomnist(dest, src.as_uri(), sha256=sha256_of(src), expected_clips=CLIPS)
    assert_unpacked(dest)


def test_fetch_tar_gz_and_odd_top_folder(tmp_path):
    """A top folder whose name ends in "data" must not confuse where data/ starts."""
    src = tmp_path / "am.tar.gz"
    with tarfile.open(src, "w:gz") as tf:
        for name, data in archive_members(top="audiomnist-data").items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dest = tmp_path / "am"
    fetch_audiomnist(dest, str(src), expected_clips=CLIPS)
    assert_unpacked(dest)


def test_force_refetches(tmp_path, archive):
    dest = tmp_path / "am"
    fetch_audiomnist(dest, str(archive), expected_clips=CLIPS)
    (dest / "data" / "01" / "0_01_0.wav").unlink()
    fetch_audiomnist(dest, str(archive), expected_clips=CLIPS, force=True)
    assert_unpacked(dest)


# --- verification failures -------------------------------------------------------------------------


def _fails(tmp_path, source, match, **kw):
    dest = tmp_path / "am"
    with pytest.raises(AudreyError, match=match):
        fetch_audiomnist(dest, str(source), expected_clips=kw.pop("expected_clips", CLIPS), **kw)
    assert not (dest / "data").exists() and not (dest / "VERIFIED.json").exists()  # nothing half-done


def test_truncated_archive(tmp_path, archive):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _fails(tmp_path, cut, "cut.zip")


def test_corrupt_member(tmp_path, archive):
    blob = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("AudioMNIST-master/data/02/9_02_1.wav")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # past the local header
    blob[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(blob))
    _fails(tmp_path, bad, "corrupt|damaged")


def test_wrong_archive(tmp_path):
    other = write_zip(tmp_path / "other.zip", {"project/README.md": b"hi", "project/audio/1.wav": tiny_wav(300)})
    _fails(tmp_path, other, "not the AudioMNIST archive")


def test_wrong_clip_count(tmp_path, archive):
    _fails(tmp_path, archive, "holds 40 clips", expected_clips=30_000)


def test_wrong_sha256(tmp_path, archive):
    _fails(tmp_path, archive, "SHA-256", sha256="0" * 64)


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    _fails(tmp_path, junk, "not a zip or tar")


def test_missing_local_archive(tmp_path):
    _fails(tmp_path, tmp_path / "nope.zip", "no such archive")


# --- HTTP ------------------------------------------------------------------------------------------


class Server:
    """A local HTTP server for one file, with Range support (http.server's handler has none)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.ranges.append(self.headers.get("Range"))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m:
                    start = int(m[1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *_):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_download(tmp_path, archive):
    data = archive.read_bytes()
    with Server({"/am.zip": data}) as srv:
        dest = tmp_path / "am"
        fetch_audiomnist(dest, f"{srv.url}/am.zip", sha256=sha256_of(archive), expected_clips=CLIPS)
    assert srv.ranges == [None]
    assert_unpacked(dest)
    assert (dest / ".download" / "am.zip").read_bytes() == data
    assert not (dest / ".download" / "am.zip.part").exists()


def test_http_resume(tmp_path, archive):
    data = archive.read_bytes()
    dest = tmp_path / "am"
    part = dest / ".download" / "am.zip.part"
    part.parent.mkdir(parents=True)
    half = len(data) // 2
    part.write_bytes(data[:half])  # an interrupted download
    with Server({"/am.zip": data}) as srv:
        fetch_audiomnist(dest, f"{srv.url}/am.zip", sha256=sha256_of(archive), expected_clips=CLIPS)
    assert srv.ranges == [f"bytes={half}-"]  # asked only for the rest
    assert (dest / ".download" / "am.zip").read_bytes() == data
    assert_unpacked(dest)


def test_http_resume_when_part_is_complete(tmp_path, archive):
    """Killed after the last byte but before the rename: the server answers 416 to the range."""
    data = archive.read_bytes()
    dest = tmp_path / "am"
    (dest / ".download").mkdir(parents=True)
    (dest / ".download" / "am.zip.part").write_bytes(data)
    with Server({"/am.zip": data}) as srv:
        fetch_audiomnist(dest, f"{srv.url}/am.zip", expected_clips=CLIPS)
    assert srv.ranges == [f"bytes={len(data)}-"]
    assert_unpacked(dest)


def test_http_404(tmp_path):
    with Server({}) as srv, pytest.raises(AudreyError, match="HTTP 404"):
        fetch_audiomnist(tmp_path / "am", f"{srv.url}/missing.zip", expected_clips=CLIPS)
    assert srv.ranges == [None]  # a client error is not retried


def test_http_truncated_download_fails_verification(tmp_path, archive):
    data = archive.read_bytes()
    with Server({"/am.zip": data[: len(data) // 2]}) as srv, pytest.raises(AudreyError, match="am.zip"):
        fetch_audiomnist(tmp_path / "am", f"{srv.url}/am.zip", expected_clips=CLIPS)


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_fetch(tmp_path, archive):
    dest = tmp_path / "am"
    result = CliRunner().invoke(
        app, ["data", "fetch", "audiomnist", "--dest", str(dest), "--source", archive.as_uri(), "--expected-clips", str(CLIPS)]
    )
    assert result.exit_code == 0, result.output
    assert_unpacked(dest)
    assert "ready" in result.stderr


def test_cli_fetch_bad_archive(tmp_path, archive):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:1000])
    result = CliRunner().invoke(
        app, ["data", "fetch", "audiomnist", "--dest", str(tmp_path / "am"), "--source", str(cut), "--expected-clips", str(CLIPS)]
    )
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    line = one_line_error(result.stderr)
    assert "cut.zip" in line
    assert result.stdout == ""


def test_cli_fetch_unknown_corpus(tmp_path):
    result = CliRunner().invoke(app, ["data", "fetch", "librispeech", "--dest", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown corpus" in one_line_error(result.stderr)
