"""audrey.data.fetch and `audrey data fetch`: local, file:// and HTTP sources, resume, and verification.

Both corpora take the one fetch path, so the path's tests run for each, on an archive built here in
the corpus's GitHub layout, small (2 speakers x 10 digits x 2 takes, `expected_clips` lowered to match):
- AudioMNIST: AudioMNIST-master/data/NN/D_NN_I.wav plus data/audioMNIST_meta.txt;
- FSDD: free-spoken-digit-dataset-<commit>/recordings/{digit}_{speaker}_{take}.wav beside the
  repository's other files (README.md, metadata.py, acquire_data/).
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
from audrey.data.fetch import CORPORA, FSDD_COMMIT, fetch, sha256_of
from audrey.errors import AudreyError
from helpers import one_line_error, require_fsdd, tone

AUDIOMNIST, FSDD = CORPORA["audiomnist"], CORPORA["fsdd"]
AM_SPEAKERS = ("01", "02")
FSDD_SPEAKERS = ("george", "lucas")
CLIPS = 2 * 10 * 2  # the same for both test archives
META = {s: {"accent": "german", "age": 30, "gender": "male", "native speaker": "no", "origin": "x",
            "recordingdate": "17-06-22", "recordingroom": "Kino"} for s in AM_SPEAKERS}
TOP = {"audiomnist": "AudioMNIST-master", "fsdd": f"free-spoken-digit-dataset-{FSDD_COMMIT}"}
# a top folder whose name ends in the clip folder's name must not confuse where that folder starts
ODD_TOP = {"audiomnist": "audiomnist-data", "fsdd": "fsdd-recordings"}


def tiny_wav(freq: float, sr: int = 48000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(freq, 0.02, sr=sr), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audiomnist_members(top: str = TOP["audiomnist"]) -> dict[str, bytes]:
    members = {f"{top}/README.md": b"AudioMNIST\n", f"{top}/data/audioMNIST_meta.txt": json.dumps(META).encode()}
    for s in AM_SPEAKERS:
        for d in range(10):
            for take in range(2):
                members[f"{top}/data/{s}/{d}_{s}_{take}.wav"] = tiny_wav(200 + 50 * d + take)
    return members


def fsdd_members(top: str = TOP["fsdd"]) -> dict[str, bytes]:
    members = {
        f"{top}/README.md": b"Free Spoken Digit Dataset\n",
        f"{top}/metadata.py": b"metadata = {}\n",
        f"{top}/acquire_data/say_numbers_prompt.py": b"pass\n",
    }
    for s in FSDD_SPEAKERS:
        for d in range(10):
            for take in range(2):
                members[f"{top}/recordings/{d}_{s}_{take}.wav"] = tiny_wav(200 + 50 * d + take, sr=8000)
    return members


MEMBERS = {"audiomnist": audiomnist_members, "fsdd": fsdd_members}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(params=[AUDIOMNIST, FSDD], ids=lambda c: c.name)
def corpus(request):
    return request.param


@pytest.fixture
def archive(tmp_path, corpus) -> Path:
    return write_zip(tmp_path / "src" / f"{TOP[corpus.name]}.zip", MEMBERS[corpus.name]())


def assert_unpacked(dest: Path, corpus) -> None:
    assert len(sorted((dest / corpus.folder).rglob("*.wav"))) == CLIPS
    assert not (dest / f".{corpus.folder}.partial").exists()
    marker = json.loads((dest / "VERIFIED.json").read_text())
    assert marker["corpus"] == corpus.name and marker["clips"] == CLIPS
    clips = read_corpus(dest)
    assert len(clips) == CLIPS and {c.source for c in clips} == {corpus.name}
    if corpus is AUDIOMNIST:
        assert (dest / "data" / "01" / "7_01_1.wav").is_file()
        assert (dest / "data" / "audioMNIST_meta.txt").is_file()
        assert {c.speaker for c in clips} == set(AM_SPEAKERS) and clips[0].meta["recordingroom"] == "Kino"
    else:
        assert (dest / "recordings" / "7_lucas_1.wav").is_file()
        assert sorted(p.name for p in (dest / "recordings").iterdir()) == sorted(
            f"{d}_{s}_{t}.wav" for s in FSDD_SPEAKERS for d in range(10) for t in range(2)
        )  # the clips only: nothing else of the repository
        assert (dest / "speakers.csv").read_text() == (
            "speaker,gender,accent,language\ngeorge,male,GRC/Greek,english\nlucas,male,DEU/German,english\n"
        )
        assert {c.speaker for c in clips} == set(FSDD_SPEAKERS)
        assert {(c.speaker, c.meta["gender"], c.meta["accent"]) for c in clips} == {
            ("george", "male", "GRC/Greek"), ("lucas", "male", "DEU/German")
        }


# --- local sources ---------------------------------------------------------------------------------


def test_fetch_from_local_path(tmp_path, corpus, archive):
    dest = tmp_path / "out"
    assert fetch(corpus, dest, str(archive), expected_clips=CLIPS) == dest
    assert_unpacked(dest, corpus)
    # a second call is a no-op: VERIFIED.json says the corpus is complete (the source may be gone)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    archive.unlink()
    assert fetch(corpus, dest, str(archive), expected_clips=CLIPS) == dest
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before
    assert_unpacked(dest, corpus)


def test_fetch_from_file_url_with_space(tmp_path, corpus):
    src = write_zip(tmp_path / "my archives" / "a.zip", MEMBERS[corpus.name]())
    assert "%20" in src.as_uri()
    dest = tmp_path / "out"
    fetch(corpus, dest, src.as_uri(), sha256=sha256_of(src), expected_clips=CLIPS)
    assert_unpacked(dest, corpus)


def test_fetch_tar_gz_and_odd_top_folder(tmp_path, corpus):
    src = tmp_path / "src.tar.gz"
    with tarfile.open(src, "w:gz") as tf:
        for name, data in MEMBERS[corpus.name](top=ODD_TOP[corpus.name]).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dest = tmp_path / "out"
    fetch(corpus, dest, str(src), expected_clips=CLIPS)
    assert_unpacked(dest, corpus)


def test_force_refetches(tmp_path, corpus, archive):
    dest = tmp_path / "out"
    fetch(corpus, dest, str(archive), expected_clips=CLIPS)
    next((dest / corpus.folder).rglob("*.wav")).unlink()
    fetch(corpus, dest, str(archive), expected_clips=CLIPS, force=True)
    assert_unpacked(dest, corpus)


def test_real_fsdd_in_its_github_layout(tmp_path):
    """The shared FSDD copy zipped as GitHub serves it: the default clip count holds, and the
    corpus reads back as the shared copy does, speakers.csv byte for byte."""
    shared = require_fsdd()
    src = tmp_path / f"{FSDD_COMMIT}.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_STORED) as zf:
        for wav in sorted((shared / "recordings").glob("*.wav")):
            zf.write(wav, f"{TOP['fsdd']}/recordings/{wav.name}")
    dest = tmp_path / "fsdd"
    fetch(FSDD, dest, str(src))
    assert (dest / "speakers.csv").read_bytes() == (shared / "speakers.csv").read_bytes()
    key = lambda c: (c.path.name, c.digit, c.speaker, c.source, c.take, dict(c.meta))  # noqa: E731
    assert sorted(map(key, read_corpus(dest))) == sorted(map(key, read_corpus(shared)))
    assert len(read_corpus(dest)) == FSDD.clips == 3000


# --- verification failures -------------------------------------------------------------------------


def _fails(tmp_path, corpus, source, match, **kw):
    dest = tmp_path / "out"
    with pytest.raises(AudreyError, match=match):
        fetch(corpus, dest, str(source), expected_clips=kw.pop("expected_clips", CLIPS), **kw)
    # nothing half-done
    assert not (dest / corpus.folder).exists() and not (dest / "VERIFIED.json").exists()
    assert not (dest / "speakers.csv").exists()


def test_truncated_archive(tmp_path, corpus, archive):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _fails(tmp_path, corpus, cut, "cut.zip")


def test_corrupt_member(tmp_path, corpus, archive):
    blob = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo([n for n in zf.namelist() if n.endswith(".wav")][-1])
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # past the local header
    blob[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(blob))
    _fails(tmp_path, corpus, bad, "corrupt|damaged")


def test_wrong_archive(tmp_path):
    other = write_zip(tmp_path / "other.zip", {"project/README.md": b"hi", "project/audio/1.wav": tiny_wav(300)})
    _fails(tmp_path, AUDIOMNIST, other, "not the AudioMNIST archive")
    _fails(tmp_path, FSDD, other, r"holds 0 clips in FSDD's layout \(recordings/")


def test_one_corpus_is_not_the_other(tmp_path):
    _fails(tmp_path, AUDIOMNIST, write_zip(tmp_path / "f.zip", fsdd_members()), "not the AudioMNIST archive")
    _fails(tmp_path, FSDD, write_zip(tmp_path / "a.zip", audiomnist_members()), "holds 0 clips in FSDD's layout")


@pytest.mark.parametrize(
    "name, match",
    [("seven_george_1.wav", "is not named"), ("7_george.wav", "is not named"), ("7_George_1.wav", "is not named"),
     ("7_jason_1.wav", "'jason', not one of FSDD's speakers")],
)
def test_fsdd_names_must_be_fsdds(tmp_path, name, match):
    members = fsdd_members()
    members.pop(f"{TOP['fsdd']}/recordings/7_george_1.wav")
    members[f"{TOP['fsdd']}/recordings/{name}"] = tiny_wav(300, sr=8000)  # the clip count still holds
    _fails(tmp_path, FSDD, write_zip(tmp_path / "f.zip", members), match)


def test_audiomnist_clip_in_another_speakers_folder_is_not_counted(tmp_path):
    members = audiomnist_members()
    members.pop(f"{TOP['audiomnist']}/data/01/3_01_0.wav")
    members[f"{TOP['audiomnist']}/data/01/3_02_0.wav"] = tiny_wav(300)
    _fails(tmp_path, AUDIOMNIST, write_zip(tmp_path / "a.zip", members), "holds 39 clips")


def test_forced_refetch_is_not_vouched_for_while_replaced(tmp_path, monkeypatch, corpus, archive):
    """--force: once the new archive is verified, the old VERIFIED.json goes before the old folder
    does, so a fetch killed while unpacking leaves no marker over a half-replaced corpus."""
    dest = tmp_path / "out"
    fetch(corpus, dest, str(archive), expected_clips=CLIPS)

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr("audrey.data.fetch.extract", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch(corpus, dest, str(archive), expected_clips=CLIPS, force=True)
    assert not (dest / "VERIFIED.json").exists()


def test_same_clips_twice(tmp_path, corpus):
    """Two top folders of the same clips: the count doubles, but half would overwrite the other half."""
    members = {**MEMBERS[corpus.name](top="a"), **MEMBERS[corpus.name](top="b")}
    _fails(tmp_path, corpus, write_zip(tmp_path / "twice.zip", members), "twice", expected_clips=2 * CLIPS)


def test_wrong_clip_count(tmp_path, corpus, archive):
    _fails(tmp_path, corpus, archive, f"holds 40 clips in {corpus.title}'s layout", expected_clips=corpus.clips)


def test_wrong_sha256(tmp_path, corpus, archive):
    _fails(tmp_path, corpus, archive, "SHA-256", sha256="0" * 64)


def test_not_an_archive(tmp_path, corpus):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    _fails(tmp_path, corpus, junk, "not a zip or tar")


def test_missing_local_archive(tmp_path, corpus):
    _fails(tmp_path, corpus, tmp_path / "nope.zip", f"no such archive; give the path of the {corpus.title} .zip")


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


def test_http_download(tmp_path, corpus, archive):
    data = archive.read_bytes()
    with Server({"/c.zip": data}) as srv:
        dest = tmp_path / "out"
        fetch(corpus, dest, f"{srv.url}/c.zip", sha256=sha256_of(archive), expected_clips=CLIPS)
    assert srv.ranges == [None]
    assert_unpacked(dest, corpus)
    assert (dest / ".download" / "c.zip").read_bytes() == data
    assert not (dest / ".download" / "c.zip.part").exists()


def test_http_resume(tmp_path, corpus, archive):
    data = archive.read_bytes()
    dest = tmp_path / "out"
    part = dest / ".download" / "c.zip.part"
    part.parent.mkdir(parents=True)
    half = len(data) // 2
    part.write_bytes(data[:half])  # an interrupted download
    with Server({"/c.zip": data}) as srv:
        fetch(corpus, dest, f"{srv.url}/c.zip", sha256=sha256_of(archive), expected_clips=CLIPS)
    assert srv.ranges == [f"bytes={half}-"]  # asked only for the rest
    assert (dest / ".download" / "c.zip").read_bytes() == data
    assert_unpacked(dest, corpus)


def test_http_resume_when_part_is_complete(tmp_path, corpus, archive):
    """Killed after the last byte but before the rename: the server answers 416 to the range."""
    data = archive.read_bytes()
    dest = tmp_path / "out"
    (dest / ".download").mkdir(parents=True)
    (dest / ".download" / "c.zip.part").write_bytes(data)
    with Server({"/c.zip": data}) as srv:
        fetch(corpus, dest, f"{srv.url}/c.zip", expected_clips=CLIPS)
    assert srv.ranges == [f"bytes={len(data)}-"]
    assert_unpacked(dest, corpus)


def test_http_404(tmp_path, corpus):
    with Server({}) as srv, pytest.raises(AudreyError, match="HTTP 404"):
        fetch(corpus, tmp_path / "out", f"{srv.url}/missing.zip", expected_clips=CLIPS)
    assert srv.ranges == [None]  # a client error is not retried


def test_http_truncated_download_fails_verification(tmp_path, corpus, archive):
    data = archive.read_bytes()
    with Server({"/c.zip": data[: len(data) // 2]}) as srv, pytest.raises(AudreyError, match="c.zip"):
        fetch(corpus, tmp_path / "out", f"{srv.url}/c.zip", expected_clips=CLIPS)


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_fetch(tmp_path, corpus, archive):
    dest = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["data", "fetch", corpus.name, "--dest", str(dest), "--source", archive.as_uri(), "--expected-clips", str(CLIPS)]
    )
    assert result.exit_code == 0, result.output
    assert_unpacked(dest, corpus)
    assert f"{corpus.title} ready in {dest} ({CLIPS} clips verified)" in " ".join(result.stderr.split())


def test_cli_fetch_default_dest_is_data_corpus(tmp_path, monkeypatch, corpus, archive):
    """`--data data/<corpus>` then reads what `audrey data fetch <corpus>` made."""
    monkeypatch.chdir(tmp_path)
    args = ["data", "fetch", corpus.name.upper(), "--source", str(archive), "--expected-clips", str(CLIPS)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert_unpacked(tmp_path / "data" / corpus.name, corpus)
    again = CliRunner().invoke(app, args)  # re-running is a no-op
    assert again.exit_code == 0, again.output
    assert "ready" in again.stderr


def test_cli_fetch_bad_archive(tmp_path, corpus, archive):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:1000])
    result = CliRunner().invoke(
        app, ["data", "fetch", corpus.name, "--dest", str(tmp_path / "out"), "--source", str(cut), "--expected-clips", str(CLIPS)]
    )
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    line = one_line_error(result.stderr)
    assert "cut.zip" in line
    assert result.stdout == ""


def test_cli_fetch_unknown_corpus(tmp_path):
    result = CliRunner().invoke(app, ["data", "fetch", "librispeech", "--dest", str(tmp_path)])
    assert result.exit_code == 2
    assert one_line_error(result.stderr) == "error: unknown corpus 'librispeech'; `audrey data fetch` knows: audiomnist, fsdd"
    assert not any(tmp_path.iterdir())
