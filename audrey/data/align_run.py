"""`audrey data align`: every utterance with digits aligned (cached), the confident digits written as clips.

Output layout (read back by audrey.data.corpora as speaker folders):
    <out>/<speaker>/<digit>_<speaker>_<take>.wav   16 kHz 16-bit clips, speakers keep their an4-/alnum- prefix
    <out>/<speaker>/speaker.json                   the corpus and the speaker's metadata
    <out>/manifest.json                            per utterance: the aligned words, and per digit its
                                                   start/end, score, kept or refused and why
    <out>/plots/<speaker>__<utterance>.png         a few alignments to look at
    <out>/.cache/                                  the measurements, one JSON per utterance
A take is 100 x the utterance's place among its speaker's utterances + the word's place in it, so a
clip's name stays the same from run to run.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from audrey.atomic import atomic_write_bytes
from audrey.audio.waveform import load_audio, write_audio
from audrey.console import progress
from audrey.data.align import (ALIGN_RATE, FRAME_RATE, Aligner, ConfidenceRule, DigitCut, UtteranceAlignment,
                               cut_clip, decide)
from audrey.data.align_plot import plot_alignment
from audrey.data.corpora import SPEAKER_META
from audrey.data.utterances import ALPHANUMERIC, Utterance, read_utterances
from audrey.errors import AudreyError

MANIFEST, CACHE, PLOTS = "manifest.json", ".cache", "plots"


@dataclass
class AlignRun:
    out: Path
    cuts: list[DigitCut]
    aligned_now: int  # utterances aligned in this run (the rest came from the cache)
    plots: list[Path]
    manifest: Path
    summary: dict  # per corpus: utterances, digits in transcripts, aligned, kept, refusals by reason


def cache_key(path: Path, words: Sequence[str], zero_either: bool, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    h.update(json.dumps({"words": list(words), "zero_either": zero_either, **settings}, sort_keys=True).encode())
    return h.hexdigest()


def measure(utterance: Utterance, aligner: Aligner, cache_dir: Path) -> tuple[UtteranceAlignment, bool]:
    """The utterance's alignment, from the cache when it holds one; (alignment, aligned now)."""
    zero_either = utterance.source == ALPHANUMERIC
    key = cache_key(utterance.path, utterance.words, zero_either, aligner.settings)
    cached = cache_dir / key[:2] / f"{key}.json"
    if cached.is_file():
        try:
            return UtteranceAlignment.from_dict(json.loads(cached.read_text(encoding="utf-8"))), False
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is measured again and rewritten
    audio = load_audio(utterance.path, ALIGN_RATE)
    result = aligner.align(audio, utterance.words, zero_either)
    atomic_write_bytes(cached, json.dumps(result.to_dict()).encode(), durable=False)
    return result, True


def align_corpora(paths: Sequence[Path], out: Path, rule: ConfidenceRule = ConfidenceRule(),
                  plots: int = 3) -> AlignRun:
    """Align every utterance with digits under `paths`, write the kept clips under `out` in the
    speaker-folders layout, the manifest and `plots` PNGs per corpus. Cached: a second run aligns nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AudreyError(f"--out {out}: is a file, not a folder; give a folder for the aligned clips")
    previous = previous_outputs(out)  # what an earlier run wrote: the only files a run may remove
    utterances: list[Utterance] = []
    for p in paths:
        utterances += read_utterances(p)
    skipped = Counter(u.source for u in utterances if not u.digits)
    with_digits = sorted((u for u in utterances if u.digits), key=lambda u: (u.speaker, str(u.path)))
    aligner = Aligner()
    cache_dir = out / CACHE
    results: list[tuple[Utterance, UtteranceAlignment, bool]] = []
    with progress() as bar:
        task = bar.add_task("aligning", total=len(with_digits), status="")
        for u in with_digits:
            result, now = measure(u, aligner, cache_dir)
            results.append((u, result, now))
            bar.update(task, advance=1, status=u.path.name)
    cuts = decide(results, rule)
    written = write_clips(results, cuts, out)
    drawn = draw_plots(results, cuts, out / PLOTS, plots)
    summary = summarize(cuts, skipped)
    manifest = write_manifest(out, results, cuts, summary, aligner.settings, rule)
    remove_stale(out, previous - written)
    return AlignRun(out, cuts, sum(now for _, _, now in results), drawn, manifest, summary)


def write_clips(results, cuts: list[DigitCut], out: Path) -> set[Path]:
    """Kept clips as 16 kHz WAV, with speaker.json per speaker; existing clips of cached utterances are kept as they are."""
    fresh = {id(u): now for u, _, now in results}
    by_utterance: dict[int, list[DigitCut]] = defaultdict(list)
    for c in cuts:
        if c.kept:
            by_utterance[id(c.utterance)].append(c)
    written: set[Path] = set()
    speakers: dict[str, Utterance] = {}
    for u, _, _ in results:
        kept = by_utterance.get(id(u), [])
        if not kept:
            continue
        speakers[u.speaker] = u
        targets = [out / u.speaker / c.clip_name() for c in kept]
        written.update(targets)
        if not fresh[id(u)] and all(t.exists() for t in targets):
            continue
        audio = load_audio(u.path, ALIGN_RATE)
        for c, target in zip(kept, targets):
            write_audio(target, cut_clip(audio, c.digit), ALIGN_RATE)
    for speaker, u in speakers.items():
        meta = {"corpus": u.source, **u.meta}
        path = out / speaker / SPEAKER_META
        text = json.dumps(meta, indent=2, sort_keys=True).encode()
        if not path.exists() or path.read_bytes() != text:
            atomic_write_bytes(path, text)
        written.add(path)
    return written


def previous_outputs(out: Path) -> set[Path]:
    """The clips and speaker.json files an earlier run's manifest lists. A folder that holds files but no
    manifest was not written by `audrey data align`: it is refused, so no one's recordings are touched."""
    if not out.is_dir() or not any(out.iterdir()):
        return set()
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        clips = {out / d["clip"] for u in manifest["utterances"] for d in u["digits"] if d.get("clip")}
    except FileNotFoundError:
        raise AudreyError(f"--out {out}: holds files that `audrey data align` did not write (no {MANIFEST}); "
                          "give a new or empty folder") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise AudreyError(f"--out {out}: its {MANIFEST} is damaged; delete {out} and align again "
                          "(the alignments are measured again)") from None
    return clips | {c.parent / SPEAKER_META for c in clips}


def remove_stale(out: Path, stale: set[Path]) -> None:
    """Clips an earlier run kept and this one refuses (a stricter rule): the folder mirrors the manifest."""
    for f in stale:
        f.unlink(missing_ok=True)
        if f.parent != out and f.parent.is_dir() and not any(f.parent.iterdir()):
            f.parent.rmdir()


def summarize(cuts: list[DigitCut], skipped: Counter) -> dict:
    out = {}
    for source in sorted({c.utterance.source for c in cuts} | set(skipped)):
        mine = [c for c in cuts if c.utterance.source == source]
        reasons = Counter(c.refusal.split(" (")[0].split(":")[0] for c in mine if c.refusal)
        out[source] = {
            "utterances_with_digits": len({id(c.utterance) for c in mine}),
            "utterances_without_digits": skipped.get(source, 0),
            "digits": len(mine),
            "aligned": sum(c.digit is not None for c in mine),
            "kept": sum(c.kept for c in mine),
            "refused": dict(reasons.most_common()),
            "speakers_kept": len({c.utterance.speaker for c in mine if c.kept}),
        }
    return out


def write_manifest(out: Path, results, cuts: list[DigitCut], summary: dict, settings: dict, rule: ConfidenceRule) -> Path:
    per_utterance = defaultdict(list)
    for c in cuts:
        per_utterance[id(c.utterance)].append(c.to_dict())
    rows = []
    for u, result, _ in results:
        rows.append({"source": str(u.path), "corpus": u.source, "speaker": u.speaker, "words": list(u.words),
                     "aligned": result.failure is None, "failure": result.failure,
                     "segments": [[w.word, round(w.start / FRAME_RATE, 3), round(w.end / FRAME_RATE, 3)] for w in result.words],
                     "digits": per_utterance[id(u)]})
    manifest = {"settings": settings, "rule": asdict(rule), "summary": summary, "utterances": rows}
    return atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())


def plot_picks(results, cuts: list[DigitCut], per_corpus: int) -> list[int]:
    """Indices into `results` to draw: per corpus, `per_corpus` spread evenly over its utterances, and
    as many that have a refused digit (the cases worth looking at)."""
    refused = {id(c.utterance) for c in cuts if not c.kept}
    picks: list[int] = []
    for source in sorted({u.source for u, _, _ in results}):
        idx = [i for i, (u, _, _) in enumerate(results) if u.source == source]
        if per_corpus <= 0 or not idx:
            continue
        step = max(1, len(idx) // per_corpus)
        picks += idx[::step][:per_corpus]
        picks += [i for i in idx if id(results[i][0]) in refused and i not in picks][:per_corpus]
    return picks


def draw_plots(results, cuts: list[DigitCut], folder: Path, per_corpus: int) -> list[Path]:
    by_utterance = defaultdict(list)
    for c in cuts:
        by_utterance[id(c.utterance)].append(c)
    drawn = []
    for i in plot_picks(results, cuts, per_corpus):
        u, result, now = results[i]
        png = folder / f"{u.speaker}__{u.path.stem}.png"
        if now or not png.exists():
            plot_alignment(load_audio(u.path, ALIGN_RATE), result, by_utterance[id(u)], u, png)
        drawn.append(png)
    for stale in folder.glob("*.png") if folder.is_dir() else []:
        if stale not in drawn:  # drawn by an earlier run for an utterance no longer picked
            stale.unlink()
    return drawn


def model_agreement(run: AlignRun, model: Path) -> dict:
    """How often `model` (e.g. the starter model) hears the cut label in the kept clips: a sanity
    figure for the cuts, not a filter. Per corpus, and for the 0s said as "oh" apart."""
    from audrey.live.recognizer import Recognizer

    kept = [c for c in run.cuts if c.kept]
    if not kept:
        return {}
    recognizer = Recognizer.from_file(model)
    preds = recognizer.predict_files([run.out / c.utterance.speaker / c.clip_name() for c in kept])
    out: dict[str, dict] = {}
    groups: dict[str, list[bool]] = defaultdict(list)
    for c, p in zip(kept, preds):
        hit = p.digit == c.label
        groups["all"].append(hit)
        groups[c.utterance.source].append(hit)
        # 0 said as "oh": a model that learned 0 from "zero" alone (FSDD, AudioMNIST) cannot hear it
        groups[f"{c.utterance.source} said 'oh'" if c.digit.word == "oh" else f"{c.utterance.source} but 'oh'"].append(hit)
    for name, hits in groups.items():
        out[name] = {"clips": len(hits), "agree": round(sum(hits) / len(hits), 4)}
    return out
