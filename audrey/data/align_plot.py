"""A picture of one forced alignment: waveform and spectrogram with every aligned word's span and label,
digits green where kept and red (with the reason) where refused. For looking at the cuts by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audrey.data.align import ALIGN_RATE, FRAME_RATE
from audrey.plots import pyplot, save_figure

KEPT, REFUSED, OTHER = "tab:green", "tab:red", "0.45"


def plot_alignment(audio: np.ndarray, result, cuts, utterance, png: Path) -> Path:
    """`result` an UtteranceAlignment of `audio` (16 kHz), `cuts` its DigitCuts."""
    plt = pyplot()
    seconds = len(audio) / ALIGN_RATE
    fig, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(max(8.0, 2.2 * seconds), 5.2), sharex=True,
                                           gridspec_kw={"height_ratios": [1, 1.6]})
    t = np.arange(len(audio)) / ALIGN_RATE
    wave_ax.plot(t, audio, lw=0.4, color="0.2")
    wave_ax.set_ylabel("waveform")
    wave_ax.set_title(f"{utterance.speaker}  {utterance.path.name}:  \"{' '.join(utterance.words)}\"", fontsize=9)
    # dB colours over the top 80 dB: digital silence (some recordings start with exact zeros) would
    # otherwise stretch the scale until the speech is one colour
    _, _, _, image = spec_ax.specgram(audio + 1e-9, NFFT=400, Fs=ALIGN_RATE, noverlap=240, cmap="magma", scale="dB")
    top = image.get_array().max()
    image.set_clim(top - 80, top)
    spec_ax.set_ylabel("Hz")
    spec_ax.set_xlabel("seconds")
    verdict = {c.index: c for c in cuts}
    spoken = [w for w in result.words if not w.is_filler]
    digit_slots = {d.index: d for d in result.digits}
    places = {id(w): i for i, w in enumerate(spoken)}
    for w in result.words:
        if w.is_filler:
            continue
        i = places[id(w)]
        cut = verdict.get(i) if i in digit_slots else None
        color = OTHER if cut is None else (KEPT if cut.kept else REFUSED)
        start, end = w.start / FRAME_RATE, w.end / FRAME_RATE
        for ax in (wave_ax, spec_ax):
            ax.axvline(start, color=color, lw=1.0)
            ax.axvline(end, color=color, lw=1.0, ls="--")
        if cut is not None:
            wave_ax.axvspan(start, end, color=color, alpha=0.15)
        label = w.base if cut is None or cut.kept else f"{w.base}\n{cut.refusal}"
        spec_ax.text((start + end) / 2, 0.97, label, transform=spec_ax.get_xaxis_transform(), ha="center", va="top",
                     fontsize=7, color="white", bbox={"facecolor": color, "alpha": 0.8, "pad": 1.5, "lw": 0})
    if result.failure:
        wave_ax.text(0.5, 0.5, f"not aligned: {result.failure}", transform=wave_ax.transAxes, ha="center", color=REFUSED)
    wave_ax.set_xlim(0, seconds)
    return save_figure(fig, png)
