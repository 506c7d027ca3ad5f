"""Audio I/O and the waveform-level preparation every clip goes through.

Everything the model sees is mono float32 at SAMPLE_RATE. 16 kHz carries speech up to ~7.8 kHz,
where the /s/ of six and seven and the /f/ of four and five live; microphones and most corpora
give it. Sources below it (FSDD and telephone audio, 8 kHz) are resampled up: their band simply
ends at 4 kHz, and the model learns such clips too (audrey.data.augment's narrowband effect).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from audrey.atomic import atomic_write_bytes
from audrey.console import warn_once
from audrey.errors import AudreyError

SAMPLE_RATE = 16000  # Hz, the model's rate
CLIP_SECONDS = 1.0  # a trimmed digit is centred in a window this long
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
MAX_CLIP_FILE_SECONDS = 10.0  # a "single digit" clip file longer than this is a mistake (a long recording), not a digit
TRIM_TOP_DB = 35.0  # frames quieter than the loudest frame by this much count as silence
TRIM_FRAME = 400  # 25 ms frames at SAMPLE_RATE for the silence trimmer
TRIM_MARGIN = 0.05  # seconds of context kept either side of the detected speech

# File suffixes of every format libsndfile (soundfile) reads, by its format name: the one rule for
# which files are audio. Left out: RAW (headerless, so its rate and sample format are unknowable),
# MAT4/MAT5 (a `.mat` beside a corpus is far more often a Matlab array than sound) and XI (FastTracker
# instruments open without a frame count, which soundfile cannot read).
AUDIO_FORMATS = {
    "WAV": (".wav", ".wave"), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"), "CAF": (".caf",), "AU": (".au", ".snd"), "NIST": (".nist", ".sph"),
    "AVR": (".avr",), "HTK": (".htk",), "SVX": (".8svx", ".16svx", ".svx", ".iff"), "MPC2K": (".mpc2k",),
    "PAF": (".paf",), "PVF": (".pvf",), "SD2": (".sd2",), "SDS": (".sds",), "IRCAM": (".sf", ".ircam"),
    "VOC": (".voc",), "WVE": (".wve",),
}
AUDIO_SUFFIXES = tuple(sorted({s for suffixes in AUDIO_FORMATS.values() for s in suffixes}))


def is_audio_file(path: Path) -> bool:
    """True for a visible file with an audio suffix. Hidden files are never audio: macOS leaves
    `._7_bob_0.wav` resource forks beside every file it copies, and atomic writes leave `.<name>.tmp`."""
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly in `folder`, sorted."""
    return sorted(p for p in Path(folder).iterdir() if is_audio_file(p))


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality (soxr 'HQ') resampling; a no-op when the rates agree."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Read any AUDIO_SUFFIXES file as mono float32 at `sr`. Bad files raise AudreyError naming the file."""
    path = Path(path)
    with open_audio(path) as fh:
        rate, frames = fh.samplerate, fh.frames
        # Checked from the header, before decoding: a mistaken hour-long file is refused without
        # first being read into memory.
        if max_seconds is not None and frames / rate > max_seconds:
            raise AudreyError(
                f"{path}: {frames / rate:.1f} s long, over {max_seconds:.0f} s; "
                "a clip should hold one digit (use `audrey transcribe` for long recordings)"
            )
        try:
            audio = fh.read(dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudreyError(f"{path}: not a readable audio file ({_first_line(exc)})") from None
    if audio.shape[0] == 0:
        raise AudreyError(f"{path}: the file holds no audio samples")
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise AudreyError(f"{path}: holds NaN or infinite samples; the file is corrupt")
    audio = resample(audio, rate, sr)
    if audio.size == 0:  # a few samples at a high rate resample to none at all
        raise AudreyError(f"{path}: too short ({frames} samples at {rate} Hz) to hold any audio at {sr} Hz")
    return audio


def open_audio(path: str | os.PathLike):
    """An open soundfile.SoundFile with at least one frame; missing, empty and unreadable files
    raise AudreyError naming the file. Whole clips (`load_audio`) and long recordings read in
    blocks (`audrey transcribe`) both start here."""
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise AudreyError(f"{path}: is a folder, not an audio file; pass the files in it (e.g. {path / '*.wav'})")
    if not path.is_file():
        raise AudreyError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudreyError(f"{path}: the file is empty (0 bytes); re-record or remove it")
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types; all mean "not readable audio"
        raise AudreyError(f"{path}: not a readable audio file ({_first_line(exc)})") from None
    if fh.frames == 0:
        fh.close()
        raise AudreyError(f"{path}: the file holds no audio samples")
    short = truncation(fh)
    if short:
        warn_once(f"{path}: {short}")  # once, however often the file is opened
    return fh


# libsndfile's parse log says "data : 32000 (should be 15978)" when a header declares more audio
# bytes than the file holds (SSND for AIFF), and reads what is there.
DECLARED_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
UNKNOWN_LENGTHS = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # streaming writers' "length not known yet": not a cut


def truncation(fh) -> str | None:
    """What is missing when the file was cut short (its header declares more audio than it holds),
    in one line; None for a whole file."""
    m = DECLARED_CHUNK.search(getattr(fh, "extra_info", "") or "")
    if not m:
        return None
    declared, held = int(m[1]), int(m[2])
    if declared in UNKNOWN_LENGTHS or held >= declared:
        return None
    frame_bytes = max(1, held // fh.frames)  # open_audio has checked that frames > 0
    missing_s = (declared - held) / frame_bytes / fh.samplerate
    return (f"truncated: its header declares {declared} bytes of audio, the file holds {held} "
            f"({held / declared:.0%}, {missing_s:.2f} s missing); reading what is there (re-copy or re-record it)")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM WAV atomically: temp file in the same folder, fsync, rename.

    A reader (or a crash) never sees a half-written file under the final name.
    """
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    return atomic_write_bytes(path, buf.getvalue())


def frame_db(audio: np.ndarray, frame: int = TRIM_FRAME) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames."""
    n = max(1, len(audio) // frame)
    frames = audio[: n * frame].reshape(n, frame) if len(audio) >= frame else audio[None, :]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms)


def speech_bounds(audio: np.ndarray, top_db: float = TRIM_TOP_DB, sr: int = SAMPLE_RATE) -> tuple[int, int]:
    """(start, end) sample indices of the span louder than (peak - top_db), with margins."""
    frame = max(1, int(TRIM_FRAME * sr / SAMPLE_RATE))
    if len(audio) == 0:
        return 0, 0
    db = frame_db(audio, frame)
    loud = np.flatnonzero(db > db.max() - top_db)
    margin = int(TRIM_MARGIN * sr)
    start = max(0, loud[0] * frame - margin)
    end = min(len(audio), (loud[-1] + 1) * frame + margin)
    return start, end


def trim_silence(audio: np.ndarray, top_db: float = TRIM_TOP_DB, sr: int = SAMPLE_RATE) -> np.ndarray:
    start, end = speech_bounds(audio, top_db, sr)
    return audio[start:end]


def pad_or_trim(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Centre `audio` in a window of `length` samples: zero-pad or cut equally from both ends."""
    n = len(audio)
    if n >= length:
        start = (n - length) // 2
        return audio[start : start + length]
    left = (length - n) // 2
    return np.pad(audio, (left, length - n - left))


def prepare_clip(
    audio: np.ndarray, length: int = CLIP_SAMPLES, top_db: float = TRIM_TOP_DB, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """What every single-digit clip becomes before the frontend: trimmed, peak-normalised, centred.

    `sr` is the rate of `audio`: the trimmer's frame and margin are durations, so a frontend at
    another rate must say so or its clips are trimmed with frames and margins of the wrong length.
    """
    audio = trim_silence(audio, top_db, sr)
    peak = np.abs(audio).max() if len(audio) else 0.0
    if peak > 0:
        audio = audio * (0.9 / peak)  # level differences between corpora say nothing about the digit
    return pad_or_trim(audio, length).astype(np.float32)
