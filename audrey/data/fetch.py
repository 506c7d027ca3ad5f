"""Download and verify AudioMNIST: resumable, with progress, checked before anything is unpacked.

`audrey data fetch audiomnist` fetches the public GitHub archive of soerenab/AudioMNIST (about
1 GB), or takes `--source` (a local archive path, a file:// URL or any http(s) URL). The archive is
checked (it opens, every member's CRC matches, the layout `data/NN/D_NN_I.wav` holds the expected
clip count, the metadata file is there, and the SHA-256 when one is given) before the clips are
unpacked into `<dest>/data/`, so the corpus folder is either complete or absent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from audrey.console import progress
from audrey.data.corpora import AUDIOMNIST_META
from audrey.errors import AudreyError

AUDIOMNIST_URL = "https://github.com/soerenab/AudioMNIST/archive/refs/heads/master.zip"
AUDIOMNIST_CLIPS = 30_000  # 60 speakers x 10 digits x 50 takes
MEMBER = re.compile(r"(?:^|/)data/(\d{2})/(\d)_(\d{2})_(\d+)\.wav$")
CHUNK = 1 << 20
RETRIES = 4
RANGE_NOT_SATISFIABLE = 416


def fetch_audiomnist(
    dest: Path,
    source: str | None = None,
    sha256: str | None = None,
    expected_clips: int = AUDIOMNIST_CLIPS,
    force: bool = False,
) -> Path:
    """Make `dest/data/NN/D_NN_I.wav` + metadata exist and be complete. Returns dest."""
    dest = Path(dest)
    marker = dest / "VERIFIED.json"
    if marker.exists() and not force:
        return dest
    archive = local_archive(source) if source and is_local(source) else None
    if archive is None:
        url = source or AUDIOMNIST_URL
        name = Path(urlparse(url).path).name or "audiomnist.zip"
        archive = dest / ".download" / name
        download(url, archive)
    digest = verify_archive(archive, expected_clips, sha256)
    extract(archive, dest)
    write_marker(marker, {"archive": str(archive), "sha256": digest, "clips": expected_clips})
    return dest


def is_local(source: str) -> bool:
    return urlparse(source).scheme in ("", "file")


def local_archive(source: str) -> Path:
    # url2pathname undoes the URL's percent-encoding: file:///my%20data/a.zip is "/my data/a.zip"
    path = Path(url2pathname(urlparse(source).path)) if source.startswith("file://") else Path(source)
    if not path.is_file():
        raise AudreyError(f"{source}: no such archive; give the path of the AudioMNIST .zip or .tar.gz")
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


def verify_archive(archive: Path, expected_clips: int = AUDIOMNIST_CLIPS, sha256: str | None = None) -> str:
    """Check the archive before unpacking; returns its SHA-256."""
    digest = sha256_of(archive)
    if sha256 and digest != sha256.lower():
        raise AudreyError(f"{archive}: SHA-256 {digest} does not match the expected {sha256}; delete it and fetch again")
    names = _members(archive)
    clips = [n for n in names if (m := MEMBER.search(n)) and m[1] == m[3]]
    if not any(n.endswith(f"data/{AUDIOMNIST_META}") for n in names):
        raise AudreyError(f"{archive}: no data/{AUDIOMNIST_META}; this is not the AudioMNIST archive")
    if len(clips) != expected_clips:
        raise AudreyError(
            f"{archive}: holds {len(clips)} clips in AudioMNIST's layout (data/NN/D_NN_I.wav), "
            f"expected {expected_clips}; delete it and fetch again"
        )
    return digest


def extract(archive: Path, dest: Path) -> None:
    """Unpack data/ into a temporary folder beside dest/data, then rename it into place."""
    staging = dest / ".data.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    wanted = lambda n: bool(MEMBER.search(n)) or n.endswith(f"data/{AUDIOMNIST_META}")  # noqa: E731
    # Path below the *last* "data/": the wanted names end in data/NN/D_NN_I.wav or data/<meta>, so
    # this is always NN/D_NN_I.wav or <meta>, whatever the top folder is called (a top folder like
    # "audiomnist-data/" fooled the first-"data/" cut) and whatever "../" a hostile name holds.
    inside = lambda n: n.rsplit("data/", 1)[1]  # noqa: E731
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [n for n in zf.namelist() if wanted(n)]
            with progress() as bar:
                task = bar.add_task("unpack", total=len(members), status="")
                for name in members:
                    out = staging / inside(name)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(name) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    bar.advance(task)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and wanted(member.name):
                    out = staging / inside(member.name)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    final = dest / "data"
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def write_marker(path: Path, info: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)
