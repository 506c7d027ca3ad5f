"""Why Audrey's frontend works at 8 kHz with a 50-3800 Hz mel band: a measurement.

The same utterance arrives from a 48 kHz microphone and from an 8 kHz telephone-like source
(FSDD is 8 kHz). A frontend should give both the same features, or a model trained on one meets
the other as a stranger. espeak-ng renders digits at 22.05 kHz; each is made into
  (a) a 48 kHz version (resampled up), and
  (b) an 8 kHz version (resampled down: nothing above 4 kHz survives),
and both go through
  - Audrey's frontend: everything resampled to 8 kHz, 40 mels over 50-3800 Hz, and
  - a hypothetical wideband frontend: 16 kHz, 40 mels over 50-8000 Hz.
Each clip's log-mel features are level-normalised as the models do (RangeNorm: peak at 0 dB,
floor at -80 dB), and the table gives the mean absolute difference, in dB, between the features
of the (a) and (b) versions of the same utterance (over the time-frequency cells where either is
above the floor; the silence both share would only dilute the figure).

    python benchmarks/frontend_band.py [--voices N]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audrey import DIGIT_WORDS
from audrey.audio import waveform
from audrey.audio.frontend import FrontendConfig, LogMel
from audrey.models.common import RangeNorm
from audrey.data.synth import say, voices

ESPEAK_RATE = 22050
MIC_RATE = 48000
PHONE_RATE = 8000
TOP_DB = 80.0  # RangeNorm's range: features span [-TOP_DB, 0] dB relative to the clip's peak
SPEED = 160  # words per minute

AUDREY = FrontendConfig()
WIDEBAND = FrontendConfig(sample_rate=16000, f_max=8000, n_fft=512, win_length=400, hop_length=160)


def render(folder: Path, n_voices: int) -> list[Path]:
    paths = []
    for voice in voices(n_voices, seed=1):
        for digit, word in enumerate(DIGIT_WORDS):
            paths.append(say(word, voice, SPEED, folder / f"{digit}_{voice.name}_0.wav"))
    return paths


def versions(path: Path, folder: Path) -> tuple[Path, Path]:
    """(48 kHz, 8 kHz) renderings of one 22.05 kHz file."""
    wave, rate = sf.read(str(path), dtype="float32")
    assert rate == ESPEAK_RATE, rate
    out = []
    for target in (MIC_RATE, PHONE_RATE):
        dest = folder / f"{path.stem}.{target}.wav"
        sf.write(str(dest), waveform.resample(wave, rate, target), target, subtype="FLOAT")
        out.append(dest)
    return out[0], out[1]


def features(path: Path, cfg: FrontendConfig) -> torch.Tensor:
    """What the model would see, in dB relative to the clip's peak (floor -TOP_DB)."""
    wave = waveform.load_audio(path, cfg.sample_rate)
    wave = waveform.prepare_clip(wave, cfg.clip_samples, cfg.trim_top_db, cfg.sample_rate)
    with torch.no_grad():
        x = RangeNorm(TOP_DB)(LogMel(cfg)(torch.from_numpy(wave)[None]))[0]
    return (x - 1) * (TOP_DB / 2)  # RangeNorm's [-1, 1] back to dB below the peak


def band_centres(cfg: FrontendConfig) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=cfg.f_max)[1:-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", type=int, default=3, help="espeak-ng voices, 10 digits each")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows = {}
    with tempfile.TemporaryDirectory(prefix="audrey-band-") as tmp:
        folder = Path(tmp)
        pairs = [versions(p, folder) for p in render(folder / "espeak", args.voices)]
        for name, cfg in (("Audrey (8 kHz, 50-3800 Hz)", AUDREY), ("wideband (16 kHz, 50-8000 Hz)", WIDEBAND)):
            mic = torch.stack([features(a, cfg) for a, _ in pairs])  # (clips, mels, frames) dB
            phone = torch.stack([features(b, cfg) for _, b in pairs])
            diff = (mic - phone).abs()
            # Cells where both versions sit on the -80 dB floor (the zero padding around the digit)
            # agree trivially; averaging over them would dilute the mismatch, so they are left out.
            active = (mic > -TOP_DB) | (phone > -TOP_DB)
            low = torch.from_numpy(band_centres(cfg) < PHONE_RATE / 2)[None, :, None].expand_as(diff)
            mean = lambda m: diff[m].mean().item() if m.any() else math.nan  # noqa: E731
            per_clip = torch.stack([diff[i][active[i]].mean() for i in range(len(pairs))])
            rows[name] = (mean(active), mean(active & low), mean(active & ~low), int((~low[0, :, 0]).sum()),
                          per_clip.max().item(), active.float().mean().item())

    print(f"{len(pairs)} espeak-ng utterances ({args.voices} voices x 10 digits), rendered at {ESPEAK_RATE} Hz;")
    print(f"each compared as a {MIC_RATE // 1000} kHz version vs an {PHONE_RATE // 1000} kHz version of itself.")
    print("mean |difference| of peak-normalised log-mel features in dB (floor -80 dB), over the cells")
    print("where either version is above the floor:\n")
    head = (f"{'frontend':<30} {'all bands':>9} {'bands <4 kHz':>12} {'bands >=4 kHz':>13} {'worst clip':>10} "
            f"{'cells counted':>13}")
    print(head)
    print("-" * len(head))
    for name, (all_, low, high, n_high, worst, counted) in rows.items():
        high_s = f"{high:.3f} ({n_high})" if n_high else "none"
        print(f"{name:<30} {all_:>9.3f} {low:>12.3f} {high_s:>13} {worst:>10.3f} {counted:>13.0%}")
    audrey_mean = rows["Audrey (8 kHz, 50-3800 Hz)"][0]
    wide_mean = rows["wideband (16 kHz, 50-8000 Hz)"][0]
    print(f"\n(n) = number of mel bands above 4 kHz. wideband / Audrey mismatch: {wide_mean / audrey_mean:,.0f}x")

if __name__ == "__main__":
    main()
