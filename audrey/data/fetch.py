"""Download and verify a public corpus: resumable, with progress, checked before anything is unpacked.

`audrey data fetch <corpus>` fetches a corpus's public GitHub archive, or takes `--source` (a local
archive path, a file:// URL or any http(s) URL). Both corpora take the one path below: download
(resuming a `.part`), verify (the archive opens, every member's CRC matches, the corpus's layout
holds the expected clip count, its own checks pass, and the SHA-256 when one is given), then unpack
the clip folder through a staging folder and write VERIFIED.json last, so the corpus folder is
either complete or absent and a second run is a no-op.

- audiomnist: soerenab/AudioMNIST (about 1 GB), `data/NN/D_NN_I.wav` + `data/audioMNIST_meta.txt`,
  unpacked into `<dest>/data/`.
- fsdd: Jakobovski/free-spoken-digit-dataset at a pinned commit (27 MB of clips),
  `recordings/{digit}_{speaker}_{take}.wav`, unpacked into `<dest>/recordings/` with a
  `<dest>/speakers.csv` of the six speakers' gender and accent (the archive keeps them in a Python
  file, metadata.py, which is not data to parse).
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from audrey.console import progress
from audrey.data.corpora import AUDIOMNIST_META
from audrey.errors import AudreyError

CHUNK = 1 << 20
RETRIES = 4
RANGE_NOT_SATISFIABLE = 416


@dataclass(frozen=True)
class Corpus:
    """What differs between corpora; everything else is the one fetch path below."""

    name: str  # the `audrey data fetch` argument and the default folder under data/
    title: str  # for messages
    url: str
    clips: int
    folder: str  # the archive's folder of clips, unpacked as <dest>/<folder>/
    layout: str  # the clip layout, for messages
    clip: re.Pattern  # matches a clip member's name

    def wanted(self, name: str) -> bool:
        """Members unpacked into <dest>/<folder>/: the clips (and, for AudioMNIST, its metadata)."""
        return bool(self.clip.search(name))

    def check(self, archive: Path, names: list[str]) -> None:
        """The corpus's own checks on the member names, beyond the clip count."""

    def finish(self, dest: Path) -> None:
        """Write what the reader needs beside the unpacked folder (before VERIFIED.json)."""


@dataclass(frozen=True)
class AudioMNIST(Corpus):
    def wanted(self, name: str) -> bool:
        return super().wanted(name) or name.endswith(f"data/{AUDIOMNIST_META}")

    def check(self, archive: Path, names: list[str]) -> None:
        if not any(n.endswith(f"data/{AUDIOMNIST_META}") for n in names):
            raise AudreyError(f"{archive}: no data/{AUDIOMNIST_META}; this is not the AudioMNIST archive")


# FSDD's six speakers at the pinned commit and their accents, from the dataset's speaker metadata
# (all male, all speaking English).
FSDD_SPEAKERS = {
    "george": "GRC/Greek",
    "jackson": "USA/neutral",
    "lucas": "DEU/German",
    "nicolas": "BEL/French",
    "theo": "USA/neutral",
    "yweweler": "DEU/German",
}
FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class FSDD(Corpus):
    def check(self, archive: Path, names: list[str]) -> None:
        for name in names:
            if not self.clip.search(name):
                continue
            base = name.rsplit("/", 1)[-1]
            m = FSDD_NAME.match(base)
            if not m:
                raise AudreyError(
                    f"{archive}: member {name} is not named {{digit}}_{{speaker}}_{{take}}.wav; "
                    "this is not the FSDD archive"
                )
            if m[2] not in FSDD_SPEAKERS:
                raise AudreyError(
                    f"{archive}: member {name} is by {m[2]!r}, not one of FSDD's speakers "
                    f"({', '.join(FSDD_SPEAKERS)}); give the archive of the pinned commit"
                )

    def finish(self, dest: Path) -> None:
        # read_flat finds speakers.csv beside recordings/; the shared copy of FSDD keeps it there too.
        speakers = sorted({FSDD_NAME.match(p.name)[2] for p in (dest / self.folder).glob("*.wav")})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["speaker", "gender", "accent", "language"])
        writer.writerows([s, "male", FSDD_SPEAKERS[s], "english"] for s in speakers)
        write_atomic(dest / "speakers.csv", buf.getvalue())


FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
CORPORA = {
    c.name: c
    for c in (
        AudioMNIST(
            name="audiomnist",
            title="AudioMNIST",
            url="https://github.com/soerenab/AudioMNIST/archive/refs/heads/master.zip",
            clips=30_000,  # 60 speakers x 10 digits x 50 takes
            folder="data",
            layout="data/NN/D_NN_I.wav",
            clip=re.compile(r"(?:^|/)data/(\d{2})/\d_\1_\d+\.wav$"),
        ),
        FSDD(
            name="fsdd",
            title="FSDD",
            url=f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip",
            clips=3_000,  # 6 speakers x 10 digits x 50 takes
            folder="recordings",
            layout="recordings/{digit}_{speaker}_{take}.wav",
            # every .wav directly in recordings/; FSDD.check then insists each is named as FSDD's
            clip=re.compile(r"(?:^|/)recordings/[^/]+\.wav$"),
        ),
    )
}


def corpus_named(name: str) -> Corpus:
    corpus = CORPORA.get(name.lower())
    if corpus is None:
        raise AudreyError(f"unknown corpus {name!r}; `audrey data fetch` knows: {', '.join(CORPORA)}")
    return corpus


def fetch(
    corpus: Corpus,
    dest: Path,
    source: str | None = None,
    sha256: str | None = None,
    expected_clips: int | None = None,
    force: bool = False,
) -> Path:
    """Make `dest/<corpus.folder>/` exist and be complete (VERIFIED.json says so). Returns dest."""
    dest = Path(dest)
    expected_clips = corpus.clips if expected_clips is None else expected_clips
    marker = dest / "VERIFIED.json"
    if marker.exists() and not force:
        return dest
    archive = local_archive(source, corpus) if source and is_local(source) else None
    if archive is None:
        url = source or corpus.url
        name = Path(urlparse(url).path).name or f"{corpus.name}.zip"
        archive = dest / ".download" / name
        download(url, archive)
    digest = verify_archive(archive, corpus, expected_clips, sha256)
    marker.unlink(missing_ok=True)  # --force: the old corpus is no longer vouched for while it is replaced
    extract(archive, dest, corpus)
    corpus.finish(dest)
    info = {"corpus": corpus.name, "archive": str(archive), "sha256": digest, "clips": expected_clips}
    write_atomic(marker, json.dumps(info, indent=2))
    return dest


def is_local(source: str) -> bool:
    return urlparse(source).scheme in ("", "file")


def local_archive(source: str, corpus: Corpus) -> Path:
    # url2pathname undoes the URL's percent-encoding: file:///my%20data/a.zip is "/my data/a.zip"
    path = Path(url2pathname(urlparse(source).path)) if source.startswith("file://") else Path(source)
    if not path.is_file():
        raise AudreyError(f"{source}: no such archive; give the path of the {corpus.title} .zip or .tar.gz")
    return path


def download(url: str, target: Path) -> Path:
    """Fetch `url` into `target`, resuming from `target`.part after an interruption."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if target.exists():
        return target
    for attempt in range(RETRIES):
        try:
            _download_once(url, part)
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code == RANGE_NOT_SATISFIABLE and part.exists():
                # The .part already holds the whole file (killed between the last byte and the
                # rename): the server has nothing after it. Verification catches a bad one.
                break
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code != 429:
                raise AudreyError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL") from None
            if attempt == RETRIES - 1:
                reason = getattr(exc, "reason", exc)
                raise AudreyError(
                    f"{url}: download failed ({reason}); run the same command again to resume "
                    f"({part.stat().st_size if part.exists() else 0} bytes kept in {part})"
                ) from None
            time.sleep(2**attempt)
    os.replace(part, target)
    return target


def _download_once(url: str, part: Path) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "audrey", **({"Range": f"bytes={have}-"} if have else {})})
    with urllib.request.urlopen(request, timeout=60) as response:
        status = getattr(response, "status", 200)
        if have and status != 206:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with open(part, "ab" if have else "wb") as fh, progress() as bar:
            task = bar.add_task("download", total=total, completed=have, status=part.name)
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                bar.advance(task, len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed at {part.stat().st_size} of {total} bytes")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _members(archive: Path) -> list[str]:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()  # reads every member and checks its CRC
                if bad is not None:
                    raise AudreyError(f"{archive}: member {bad} is corrupt; delete the archive and fetch again")
                return zf.namelist()
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                return [m.name for m in tf.getmembers() if m.isfile()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise AudreyError(f"{archive}: archive is truncated or damaged ({exc}); delete it and fetch again") from None
    raise AudreyError(f"{archive}: not a zip or tar archive (truncated download?); delete it and fetch again")


def verify_archive(archive: Path, corpus: Corpus, expected_clips: int | None = None, sha256: str | None = None) -> str:
    """Check the archive before unpacking; returns its SHA-256."""
    expected_clips = corpus.clips if expected_clips is None else expected_clips
    digest = sha256_of(archive)
    if sha256 and digest != sha256.lower():
        raise AudreyError(f"{archive}: SHA-256 {digest} does not match the expected {sha256}; delete it and fetch again")
    names = _members(archive)
    corpus.check(archive, names)
    clips = [inside(n, corpus) for n in names if corpus.clip.search(n)]
    if len(set(clips)) != len(clips):
        raise AudreyError(f"{archive}: holds some {corpus.layout} clips twice (two top folders?); this is not the {corpus.title} archive")
    if len(clips) != expected_clips:
        raise AudreyError(
            f"{archive}: holds {len(clips)} clips in {corpus.title}'s layout ({corpus.layout}), "
            f"expected {expected_clips}; delete it and fetch again"
        )
    return digest


def inside(name: str, corpus: Corpus) -> str:
    """A wanted member's path below the *last* "<folder>/": the wanted names end in <folder>/<clip
    or metadata>, so this is always that tail, whatever the top folder is called (a top folder like
    "audiomnist-data/" fooled the first-"data/" cut) and whatever "../" a hostile name holds."""
    return name.rsplit(f"{corpus.folder}/", 1)[1]


def extract(archive: Path, dest: Path, corpus: Corpus) -> None:
    """Unpack the wanted members into a temporary folder beside dest/<folder>, then rename it into place."""
    staging = dest / f".{corpus.folder}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [n for n in zf.namelist() if corpus.wanted(n)]
            with progress() as bar:
                task = bar.add_task("unpack", total=len(members), status="")
                for name in members:
                    out = staging / inside(name, corpus)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(name) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    bar.advance(task)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and corpus.wanted(member.name):
                    out = staging / inside(member.name, corpus)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    final = dest / corpus.folder
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
