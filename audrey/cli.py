"""`audrey`: a thin typer layer over the library. Commands parse options and print; the work is in
the modules they call. Every AudreyError becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from audrey.atomic import NO_SPACE, NOT_ALLOWED, WriteFailed
from audrey.console import err, warn
from audrey.errors import AudreyError
from audrey.strict_json import json_text

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audrey: a spoken-digit recognizer for your own voice.")
data_app = typer.Typer(no_args_is_help=True, help="Corpora: fetch FSDD or AudioMNIST, inspect any folder of clips, cut digits out of connected speech.")
app.add_typer(data_app, name="data")

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "starter.safetensors"  # in modelfile.SHIPPED_MODELS
runs_app = typer.Typer(no_args_is_help=True, help="Run records: list, compare, sync to W&B.")
app.add_typer(runs_app, name="runs")

# the W&B options every command that produces results takes
WANDB_OPT = typer.Option(None, "--wandb", help="W&B mode: online | offline | disabled (default: $WANDB_MODE or offline)")
PROJECT_OPT = typer.Option(None, "--project", help="W&B project (default: $WANDB_PROJECT or audrey)")
GROUP_OPT = typer.Option(None, "--group", help="W&B group (default: $WANDB_RUN_GROUP)")
TAGS_OPT = typer.Option(None, "--tag", help="W&B tag (repeatable; default: $WANDB_TAGS)")


def tracking(mode, project, group, tags):
    from audrey.tracking.wandb_run import TrackingOptions, resolve_mode

    resolve_mode(mode)  # a bad mode fails before any work
    return TrackingOptions(mode, project, group, tuple(tags or ()))


def user_errors(fn):
    """Turn AudreyError (and a few OS errors users cause) into a one-line message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AudreyError as exc:
            # escape: paths and messages may hold "[...]", which rich would take for markup and drop
            err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2)
        except OSError as exc:
            # a write outside atomic_write_bytes (a library's own file) on a full or read-only disk
            if exc.errno not in NO_SPACE | NOT_ALLOWED:
                raise
            err.print(f"[red]error:[/] {escape(str(WriteFailed(exc.filename or 'a file', exc)))}", soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130)

    return wrapper


def print_json(obj) -> None:
    sys.stdout.write(json_text(obj, indent=2) + "\n")


@data_app.command("fetch")
@user_errors
def data_fetch(
    corpus: str = typer.Argument(..., help="Corpus to fetch: audiomnist (60 speakers, ~1 GB) or fsdd (6 speakers, 27 MB of clips)"),
    dest: Optional[Path] = typer.Option(None, help="Where the corpus goes (default: data/<corpus>)"),
    source: Optional[str] = typer.Option(None, help="Archive already on disk (path or file:// URL), or another URL"),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive"),
    expected_clips: Optional[int] = typer.Option(None, help="Clips the archive must hold (default: audiomnist 30000, fsdd 3000)"),
    force: bool = typer.Option(False, help="Fetch and unpack again even if already verified"),
):
    """Download, verify and unpack a corpus from its public GitHub archive (resumable; progress shown).

    Then train or evaluate on it with `--data data/<corpus>`.
    """
    from audrey.data.fetch import corpus_named, fetch

    spec = corpus_named(corpus)
    out = fetch(spec, dest or Path("data") / spec.name, source, sha256, expected_clips, force)
    clips = spec.clips if expected_clips is None else expected_clips
    err.print(f"{spec.title} ready in {out} ({clips} clips verified)")


@data_app.command("stats")
@user_errors
def data_stats(
    paths: List[Path] = typer.Argument(..., help="Corpus folders (any layout Audrey reads, clips or utterances)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
):
    """Clips per speaker and digit (utterances, words and digits said for AN4 and alphanumeric),
    durations, sample rates, skipped files and problems."""
    from audrey.report import print_stats
    from audrey.data.stats import corpus_stats

    stats = corpus_stats(paths)
    if as_json:
        print_json(stats.to_dict())
    else:
        print_stats(stats)


@data_app.command("align")
@user_errors
def data_align(
    paths: List[Path] = typer.Argument(..., help="Utterance folders with transcripts: AN4, alphanumeric"),
    out: Path = typer.Option(Path("data/aligned"), "--out", help="Folder for the digit clips (speaker folders), manifest.json and plots/"),
    plots: int = typer.Option(3, "--plots", help="Alignment PNGs per corpus (as many again with a refused digit)"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model whose agreement with the cut labels is reported (default: the bundled starter model)"),
    check: bool = typer.Option(True, "--check/--no-check", help="Report that model's agreement with the kept clips (a sanity figure, not a filter)"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
):
    """Cut the digits out of connected speech by forced alignment (PocketSphinx); keep the confident ones.

    Re-running aligns only utterances not aligned before (cached in <out>/.cache). Then train or
    evaluate with `--data <out>`.
    """
    from audrey.data.align_run import align_corpora, model_agreement

    if plots < 0:
        raise AudreyError(f"--plots {plots}: must be 0 or more")
    checked = model_path(model) if check else None
    run = align_corpora(paths, out, plots=plots)
    agreement = model_agreement(run, checked) if checked else {}
    if as_json:
        print_json({"out": str(run.out), "aligned_now": run.aligned_now, "summary": run.summary,
                    "model_agreement": agreement, "manifest": str(run.manifest), "plots": [str(p) for p in run.plots]})
        return
    for corpus, s in run.summary.items():
        refused = ", ".join(f"{k} {v}" for k, v in s["refused"].items()) or "none"
        err.print(f"{corpus}: {s['digits']} digits in {s['utterances_with_digits']} utterances, {s['aligned']} aligned, "
                  f"[bold]{s['kept']} kept[/] from {s['speakers_kept']} speakers (refused: {escape(refused)})", soft_wrap=True)
    for name, a in agreement.items():
        err.print(f"{(model or DEFAULT_MODEL).name} agrees with {a['agree']:.1%} of {a['clips']} kept clips ({escape(name)})")
    err.print(f"{run.aligned_now} utterance(s) aligned now, the rest from the cache; clips in {run.out}, "
              f"manifest {run.manifest}" + (f", plots in {run.out / 'plots'}" if run.plots else ""), soft_wrap=True)


# --- models: train, eval, predict (issue 3) ---


def model_path(path: Optional[Path]) -> Path:
    path = path or DEFAULT_MODEL
    if not path.exists():
        hint = " (the bundled starter model is missing: reinstall, or train one with `audrey train`)" if path == DEFAULT_MODEL else ""
        raise AudreyError(f"{path}: no such model file{hint}")
    return path


@app.command("train")
@user_errors
def train_cmd(
    data: List[Path] = typer.Option(..., "--data", help="Corpus folder (repeatable): AudioMNIST, FSDD-style, digit folders, recordings/"),
    model: str = typer.Option("cnn", "--model", help="Architecture: cnn | conformer"),
    out: Optional[Path] = typer.Option(None, help="Model file to write (default: models/model.safetensors; in $AUDREY_DATA/models when models/ is the bundled one)"),
    split: str = typer.Option("random", help="random | loso:SPEAKER | audiomnist:FOLD | none"),
    val_speakers: int = typer.Option(1, help="Speakers held out for early stopping (loso split)"),
    synth: int = typer.Option(0, help="Add espeak-ng digits from this many synthetic voices to training"),
    epochs: int = typer.Option(30),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(3e-3),
    patience: int = typer.Option(8, help="Stop after this many epochs without a better validation accuracy"),
    seed: int = typer.Option(0),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentation"),
    resume: bool = typer.Option(False, help="Continue from the checkpoint beside --out after a crash or kill"),
    wandb: Optional[str] = WANDB_OPT,
    project: Optional[str] = PROJECT_OPT,
    group: Optional[str] = GROUP_OPT,
    tags: Optional[List[str]] = TAGS_OPT,
):
    """Train a CNN or Conformer; checkpoints every epoch; test on held-out speakers."""
    from audrey.data.augment import NO_AUGMENT, AugmentConfig
    from audrey.report import print_evaluation
    from audrey.training.runs import train_run
    from audrey.training.train import TrainConfig

    cfg = TrainConfig(arch=model, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                      augment=NO_AUGMENT if no_augment else AugmentConfig())
    from audrey.models.modelfile import default_output, writable_output

    out = writable_output(out, "--out") if out is not None else default_output("model.safetensors")
    run = train_run(data, out, cfg, split, val_speakers, synth, resume, tracking(wandb, project, group, tags))
    if run.test is not None:
        print_evaluation(run.test.summary(), run.test.worst(5))
    err.print(f"model written to {run.model_path}" + (f"; run record {run.record_path}" if run.record_path else ""))


@app.command("eval")
@user_errors
def eval_cmd(
    data: List[Path] = typer.Option(..., "--data", help="Corpus folder(s) to evaluate on"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Personal weights for the model (`audrey personalize`)"),
    confusion: Path = typer.Option(Path("confusion.png"), help="Where to write the confusion-matrix PNG"),
    worst: int = typer.Option(10, help="How many misclassified clips to list"),
    as_json: bool = typer.Option(False, "--json"),
    wandb: Optional[str] = WANDB_OPT,
    project: Optional[str] = PROJECT_OPT,
    group: Optional[str] = GROUP_OPT,
    tags: Optional[List[str]] = TAGS_OPT,
):
    """Accuracy overall, per speaker and per digit; confusion-matrix PNG; worst clips."""
    from audrey.data.corpora import non_audio_files, read_corpora
    from audrey.training.evaluate import evaluate, plot_confusion
    from audrey.models.personal_file import load_bundle
    from audrey.report import print_evaluation

    from audrey.tracking.wandb_run import Tracker, log_evaluation

    path = model_path(model)
    bundle = load_bundle(path, weights)
    config = {"model": str(path), "weights": str(weights) if weights else None, "data": [str(d) for d in data],
              "arch": bundle.arch}
    with Tracker("eval", config, tracking(wandb, project, group, tags), name=(weights or path).name.split(".")[0]) as tracker:
        ev = evaluate(bundle, read_corpora(data))
        plot_confusion(ev.confusion(), confusion, bundle.arch)
        log_evaluation(tracker, ev, bundle, "eval", worst)
        tracker.image("eval/confusion_plot", confusion)
    skipped = non_audio_files(data)
    if as_json:
        print_json({**ev.summary(), "worst": ev.worst(worst), "confusion_png": str(confusion),
                    "skipped_files": {"files": sum(skipped.values()), "per_suffix": dict(sorted(skipped.items()))}})
    else:
        print_evaluation(ev.summary(), ev.worst(worst))
        if skipped:
            kinds = ", ".join(f"{suffix} {n}" for suffix, n in sorted(skipped.items()))
            err.print(f"skipped {sum(skipped.values())} non-audio file(s) in --data: {escape(kinds)}", soft_wrap=True)
        err.print(f"confusion matrix: {confusion}")


@app.command("predict")
@user_errors
def predict_cmd(
    files: List[Path] = typer.Argument(..., help="Audio files, one digit each"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Personal weights for the model (`audrey personalize`)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file"),
    ood: bool = typer.Option(False, "--ood", help="Add an out-of-distribution score (needs `audrey ood-fit`; automatic when <model>.ood.safetensors exists)"),
):
    """Digit, confidence and top-3 for each file; a file that has none (not audio, no speech in it) is
    one error line, the others are still predicted, and the exit status is then 2."""
    from audrey.models.personal_file import load_bundle
    from audrey.live.recognizer import Recognizer
    from audrey.observe.ood import score_clips

    recognizer = Recognizer.from_file(model_path(model), weights)
    clips = recognizer.read_each(files)
    good = [i for i, clip in enumerate(clips) if not isinstance(clip, AudreyError)]
    waves = [clips[i] for i in good]
    pred_of = dict(zip(good, recognizer.predict(waves))) if waves else {}
    # OOD statistics describe the base model's training data: with personal weights, ask the base
    base = load_bundle(model_path(model)) if weights else recognizer.bundle
    scores = score_clips(model_path(model), base, waves, required=ood) if waves else None  # None without OOD statistics
    score_of = dict(zip(good, scores)) if scores else {}
    for i, (path, clip) in enumerate(zip(files, clips)):
        if isinstance(clip, AudreyError):
            sys.stdout.flush()  # results and errors in file order on a terminal
            err.print(f"[red]error:[/] {escape(str(clip))}", soft_wrap=True)
            continue
        pred, score = pred_of[i], score_of.get(i)
        if as_json:
            sys.stdout.write(json_text({"file": str(path), **pred.to_dict(), **({"ood": score} if score else {})}) + "\n")
        else:
            top = "  ".join(f"{d}:{p:.2f}" for d, p in pred.top3)
            flag = f"\tOOD {score['score']:.1f}{' (out of distribution)' if score['flagged'] else ''}" if score else ""
            sys.stdout.write(f"{path}\t{pred.digit}\t{pred.confidence:.2f}\t(top-3 {top}){flag}\n")
    if len(good) < len(files):
        raise typer.Exit(2)


@app.command("personalize")
@user_errors
def personalize_cmd(
    speaker: Optional[str] = typer.Option(None, "--speaker", help="Whose voice: recordings/NAME (or a speaker in --data)"),
    base: Optional[Path] = typer.Option(None, "--base", help="Base model file (default: the bundled starter model)"),
    out: Optional[Path] = typer.Option(None, "--out", help="Personal weights file (default: models/NAME.personal.safetensors; in $AUDREY_DATA/models when models/ is the bundled one)"),
    data: Optional[Path] = typer.Option(None, "--data", help="Any labelled folder instead of recordings/NAME"),
    recordings: Path = typer.Option(Path("recordings"), help="Where `audrey record` keeps speakers"),
    holdout: int = typer.Option(1, help="Takes per digit held out to measure before/after (each digit keeps one to learn from)"),
    curve: bool = typer.Option(True, "--curve/--no-curve", help="Also adapt on fewer takes, to see whether more would help"),
    steps: Optional[int] = typer.Option(None, help="Adaptation steps (default: the benchmarked setting)"),
    rank: Optional[int] = typer.Option(None, help="Directions of change kept per large weight: smaller files; 0 keeps every change whole (default: the benchmarked setting)"),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
    wandb: Optional[str] = WANDB_OPT,
    project: Optional[str] = PROJECT_OPT,
    group: Optional[str] = GROUP_OPT,
    tags: Optional[List[str]] = TAGS_OPT,
):
    """Adapt the base model to one voice from a few takes per digit; writes small personal weights."""
    from audrey.training.personal import AdaptConfig, personalize, with_overrides
    from audrey.report import print_personal

    cfg = with_overrides(AdaptConfig(), steps=steps, rank=rank, seed=seed)
    result = personalize(speaker, model_path(base), out, data, recordings, holdout, curve, cfg, tracking(wandb, project, group, tags))
    if as_json:
        print_json(result.__dict__)
    else:
        print_personal(result)


@runs_app.command("list")
@user_errors
def runs_list(
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Where run records are"),
    kind: Optional[str] = typer.Option(None, help="Only train | personalize | eval | probe runs"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Every recorded run (train, personalize, eval, probe) with its headline figures."""
    from audrey.report import print_runs
    from audrey.tracking.records import headline, read_records

    rows = [headline(r) for r in read_records(runs_dir) if kind in (None, r["kind"])]
    print_json(rows) if as_json else print_runs(rows, f"{len(rows)} run(s) in {runs_dir}/")


@runs_app.command("compare")
@user_errors
def runs_compare(
    runs: List[str] = typer.Argument(..., help="Run ids (or a unique prefix/suffix, or record paths); see `audrey runs list`"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Where run records are"),
    plot: Path = typer.Option(Path("runs/compare.png"), help="Where to write the learning-curve overlay (PNG)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Headline figures and config differences side by side, and the learning curves overlaid."""
    from audrey.report import print_comparison
    from audrey.tracking.records import config_differences, find_record, headline, plot_curves, read_records

    records = read_records(runs_dir)
    chosen = [find_record(r, records) for r in runs]
    png = plot_curves(chosen, plot)
    rows, diffs = [headline(r) for r in chosen], config_differences(chosen)
    if as_json:
        print_json({"runs": rows, "config_differences": diffs, "plot": str(png)})
    else:
        print_comparison(rows, diffs)
        err.print(f"learning curves: {png}")


@runs_app.command("sync")
@user_errors
def runs_sync(
    runs: Optional[List[str]] = typer.Argument(None, help="Runs to upload (default: every offline run not yet synced)"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Where run records are"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be uploaded"),
):
    """Upload offline runs to W&B (`wandb sync`), then link personal weights to their base model."""
    from audrey.tracking.records import find_record, read_records, sync

    records = read_records(runs_dir)
    chosen = [find_record(r, records) for r in runs] if runs else records
    done = sync(chosen, runs_dir, dry_run)
    for d in done:
        sys.stdout.write(f"{d['run']}\t{d['status']}" + (f"\t{d['inputs_declared']} input(s) linked" if d.get("inputs_declared") else "") + "\n")
    if not done:
        err.print("nothing to sync: no offline runs that are not synced yet")


# --- recording (issue 4) ---


@app.command("record")
@user_errors
def record_cmd(
    speaker: str = typer.Option(..., "--speaker", help="Your name in file names: letters, digits, '-'"),
    takes_per_digit: int = typer.Option(5, "--takes-per-digit", help="Takes of each digit to record this session"),
    digits: str = typer.Option("0-9", help="Digits to record, e.g. 0-9 or 1,3,5-7"),
    device: Optional[str] = typer.Option(None, help="Input device: index or part of its name (see `audrey devices`)"),
    rate: Optional[int] = typer.Option(None, help="Sample rate in Hz (default: 16000 if the device offers it)"),
    root: Path = typer.Option(Path("recordings"), help="Folder that holds one folder per speaker"),
    auto: bool = typer.Option(False, "--auto", help="For scripts: PROMPT/SAVED/REJECTED lines on stdout, no keys"),
    take_timeout: float = typer.Option(8.0, help="Seconds to wait for speech after each prompt"),
    max_attempts: int = typer.Option(3, help="Rejected tries before a prompt is skipped"),
    countdown: float = typer.Option(1.0, help="Seconds of 3-2-1 countdown before listening"),
    push_to_talk: bool = typer.Option(False, "--push-to-talk", help="Press space before each take instead of a countdown"),
    seed: Optional[int] = typer.Option(None, help="Seed for the prompt order (default: random)"),
    edit_info: bool = typer.Option(False, "--edit-info", help="Edit speaker.json (age, gender, ...) and exit"),
    age: Optional[str] = typer.Option(None, help="speaker.json: age"),
    gender: Optional[str] = typer.Option(None, help="speaker.json: gender"),
    accent: Optional[str] = typer.Option(None, help="speaker.json: accent"),
    native_speaker: Optional[str] = typer.Option(None, help="speaker.json: native speaker (yes/no)"),
    origin: Optional[str] = typer.Option(None, help="speaker.json: origin"),
    recording_room: Optional[str] = typer.Option(None, help="speaker.json: recording room"),
    recording_device: Optional[str] = typer.Option(None, help="speaker.json: recording device (microphone)"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model that checks each take (default: the bundled starter model)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Personal weights for that model (`audrey personalize`)"),
    no_check: bool = typer.Option(False, "--no-check", help="Do not check the takes against the model"),
):
    """Record your own digits: guided prompts, automatic start/end, a quality gate, atomic saves,
    and each take checked against the model (one it hears as another digit is flagged)."""
    from audrey.recording.session import record

    check = None
    if not (no_check or edit_info):
        from audrey.recording.check import TakeCheck

        if model is None and not DEFAULT_MODEL.exists():
            warn(f"{DEFAULT_MODEL}: the bundled starter model is missing; recording without checking the takes (--model to choose one)")
        else:
            check = TakeCheck.from_file(model_path(model), weights)  # before any prompt: a bad file is one line now
    info = {
        "age": age, "gender": gender, "accent": accent, "native speaker": native_speaker,
        "origin": origin, "recordingroom": recording_room, "device": recording_device,
    }
    record(
        speaker, root, takes_per_digit=takes_per_digit, digits=digits, device=device, rate=rate, auto=auto,
        take_timeout=take_timeout, max_attempts=max_attempts, countdown=countdown, push_to_talk=push_to_talk,
        seed=seed, info=info, edit_info=edit_info, check=check,
    )


@app.command("devices")
@user_errors
def devices_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")):
    """List audio input devices (use the index or part of the name with `audrey record --device`)."""
    from audrey.audio.mic import input_devices

    devices = input_devices()
    if not devices:
        raise AudreyError("no audio input device found; connect a microphone (or start the sound system, "
                          "e.g. PulseAudio or PipeWire) and run `audrey devices` again")
    if as_json:
        print_json(devices)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="audio input devices")
    for col in ("", "index", "name", "host API", "channels", "default rate"):
        table.add_column(col)
    for d in devices:
        table.add_row("*" if d["default"] else "", str(d["index"]), d["name"], d["hostapi"], str(d["channels"]), str(d["default_rate"]))
    Console(highlight=False).print(table)


@app.command("recordings")
@user_errors
def recordings_cmd(
    speaker: Optional[str] = typer.Option(None, help="Only this speaker"),
    root: Path = typer.Option(Path("recordings"), help="Folder that holds one folder per speaker"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
):
    """Takes per digit for each speaker, and the takes that fail today's quality gate."""
    from audrey.recording.report import print_recordings, recordings_report

    report = recordings_report(root, speaker)
    if as_json:
        print_json(report)
    else:
        print_recordings(report)


# --- live recognition (issue 6) ---


CONFIRM_HELP = ("--engine segments: print a digit only where the digit-string model, reading the whole stretch of speech "
                "between --string-gap pauses, hears it too: far fewer words and spelled letters taken for digits, the "
                "digits of a stretch printed once its pause has passed (default: on, off with --weights, whose model "
                "knows the voice better than the string model does)")


@app.command("listen")
@user_errors
def listen_cmd(
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    device: Optional[str] = typer.Option(None, help="Input device: index or part of its name (default: the system's; see `audrey devices`)"),
    rate: Optional[int] = typer.Option(None, help="Sample rate in Hz (default: the device's own)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event on stdout, for piping"),
    rejected: bool = typer.Option(True, "--rejected/--no-rejected", help="Print 'not a digit' for words and noises (or nothing)"),
    string_gap: float = typer.Option(0.9, help="Seconds of pause that end a digit string"),
    calibration: Optional[Path] = typer.Option(None, help="Rejection calibration (default: <model>.reject.safetensors beside the model)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Personal weights for the model (`audrey personalize`)"),
    observe: bool = typer.Option(False, "--observe", help="Per utterance: which layers' digit probes already read it (logit lens) and an OOD score (needs <model>.probes/.ood.safetensors)"),
    engine: str = typer.Option("segments", "--engine", help="segments: each digit as soon as it ends (the classifier and its rejection); ctc: the digit-string model reads each stretch between --string-gap pauses whole, as `transcribe --engine ctc` does, and prints its string once the pause has passed"),
    digits: Optional[int] = typer.Option(None, "--digits", help="--engine ctc: read each number as exactly this many digits, printed once that many are heard (a phone number said in groups: --digits 10)"),
    ctc_model: Optional[Path] = typer.Option(None, "--ctc-model", help="--engine ctc or --confirm: digit-string model file (default: the bundled models/digits.ctc.safetensors)"),
    confirm: Optional[bool] = typer.Option(None, "--confirm/--no-confirm", help=CONFIRM_HELP, show_default=False),
):
    """Recognise digits live from the microphone; digits said in one breath are grouped into a string."""
    from audrey.live.listen import listen

    listen(model_path(model) if engine != "ctc" else model, device, rate, as_json, rejected, string_gap, calibration,
           weights, observe, engine, digits, ctc_model, confirm)


@app.command("transcribe")
@user_errors
def transcribe_cmd(
    files: List[Path] = typer.Argument(..., help="Recordings of any length"),
    engine: str = typer.Option("segments", "--engine", help="segments: one digit per stretch of speech between pauses (the classifier and its rejection, as `listen`); ctc: the digit-string model reads each stretch between --string-gap pauses whole"),
    digits: Optional[int] = typer.Option(None, "--digits", help="--engine ctc: read each number as exactly this many digits, the groups gathered until that many are heard (a phone number said in groups: --digits 10)"),
    ctc_model: Optional[Path] = typer.Option(None, "--ctc-model", help="--engine ctc or --confirm: digit-string model file (default: the bundled models/digits.ctc.safetensors)"),
    confirm: Optional[bool] = typer.Option(None, "--confirm/--no-confirm", help=CONFIRM_HELP, show_default=False),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file"),
    rejected: bool = typer.Option(True, "--rejected/--no-rejected", help="List the sounds that were not digits"),
    string_gap: float = typer.Option(0.9, help="Seconds of pause that end a digit string"),
    calibration: Optional[Path] = typer.Option(None, help="Rejection calibration (default: <model>.reject.safetensors beside the model)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Personal weights for the model (`audrey personalize`)"),
):
    """Digit strings in recordings, with per-digit times and confidence (--engine segments: the segmentation
    `listen` uses; --engine ctc: the digit-string model, which also reads digits said without a pause)."""
    from audrey.live.ctc_transcribe import check_engine

    confirm = check_engine(engine, {"--model": model, "--calibration": calibration, "--weights": weights,
                                    "--confirm": confirm}, {"--digits": digits, "--ctc-model": ctc_model})
    if engine == "ctc":
        from audrey.live.ctc_transcribe import transcribe_ctc
        from audrey.models.ctc_file import SHIPPED_CTC, load_ctc

        bundle = load_ctc(ctc_model or SHIPPED_CTC)
        transcribe = functools.partial(transcribe_ctc, bundle=bundle, string_gap=string_gap, digits=digits)
    else:
        from audrey.live.judge import Judge
        from audrey.live.stream import transcribe_file

        from audrey.live.confirm import StringCheck

        judge = Judge.from_file(model_path(model), calibration, weights=weights)
        check = StringCheck.from_file(ctc_model) if confirm else None
        transcribe = functools.partial(transcribe_file, judge=judge, string_gap=string_gap, confirm=check)
    for path in files:
        t = transcribe(path)
        if as_json:
            out = t.to_dict()
            if not rejected:
                out.pop("rejected")
            sys.stdout.write(json_text(out) + "\n")
            continue
        sys.stdout.write(f"{path}\t{t.text or '(no digits)'}\n")
        for e in t.events:
            if e.kind == "digit":
                sys.stdout.write(f"  {e.start:8.2f}-{e.end:.2f} s  {e.digit}  ({e.confidence:.2f})\n")
            elif e.kind == "rejected" and rejected:
                sys.stdout.write(f"  {e.start:8.2f}-{e.end:.2f} s  not a digit  ({e.reason})\n")
        sys.stdout.flush()


@app.command("calibrate")
@user_errors
def calibrate_cmd(
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    data: Optional[List[Path]] = typer.Option(None, "--data", help="Corpora the model was trained on (default: those its file names)"),
    target: Optional[float] = typer.Option(None, help="Fraction of correctly recognised held-out digits that must be accepted (default: thresholds.TARGET_ACCEPT, 0.97)"),
    detector: Optional[Path] = typer.Option(None, help="Reuse the digit-or-not detector and the phone recogniser of this calibration file instead of training them"),
    out: Optional[Path] = typer.Option(None, help="Where to write it (default: <model>.reject.safetensors beside the model; for the bundled starter, in $AUDREY_DATA/models)"),
):
    """Train and calibrate the rejection of words and noises that are not digits (for listen and transcribe)."""
    from audrey.live.calibrate import calibrate_model

    path, report = calibrate_model(model_path(model), data, target, out, detector)
    err.print(f"rejection calibration written to {path}")
    print_json(report)


# --- observability (issue 7) ---


@app.command("probe")
@user_errors
def probe_cmd(
    data: List[Path] = typer.Option(..., "--data", help="Corpus folder(s) to probe on (repeatable)"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    targets: Optional[List[str]] = typer.Option(None, "--target", help="digit | speaker | gender | source (repeatable; default: every target the data supports)"),
    layers: Optional[List[str]] = typer.Option(None, "--layer", help="Hook point to probe (repeatable; default: every one)"),
    folds: int = typer.Option(3, help="Cross-validation folds"),
    control: str = typer.Option("type", help="Control task: type (a random label per speaker and digit, Hewitt & Liang) | utterance (a random label per clip)"),
    time_bins: int = typer.Option(4, help="Time bins each activation is averaged into"),
    freq_bins: int = typer.Option(4, help="Frequency bands each CNN feature map is averaged into"),
    random_init: bool = typer.Option(True, "--random-init/--no-random-init", help="Also probe a randomly initialised model of the same architecture"),
    plot: Path = typer.Option(Path("probes.png"), help="Where to write the accuracy-by-layer PNG"),
    save: Optional[Path] = typer.Option(None, help="Where to write the digit probes that `listen --observe` reads (default: <model>.probes.safetensors beside the model; for the bundled starter, in $AUDREY_DATA/models)"),
    no_save: bool = typer.Option(False, "--no-save", help="Do not write the digit probes"),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
    wandb: Optional[str] = WANDB_OPT,
    project: Optional[str] = PROJECT_OPT,
    group: Optional[str] = GROUP_OPT,
    tags: Optional[List[str]] = TAGS_OPT,
):
    """Linear probes at every hook point for digit, speaker, gender and source, with controls."""
    from audrey.observe.probe_report import print_report
    from audrey.observe.probe_run import check_options, probe_run

    check_options(targets, control, time_bins, freq_bins)  # bad options fail before the model is read
    run = probe_run(model_path(model), data, targets, layers, folds, control, time_bins, freq_bins, random_init, plot,
                    save, not no_save, seed, tracking(wandb, project, group, tags))
    if as_json:
        print_json(run.to_dict())
        return
    print_report(run.report)
    err.print(f"plot: {run.plot}" + (f"; digit probes for `listen --observe`: {run.probes_file}" if run.probes_file else ""))


@app.command("explain")
@user_errors
def explain_cmd(
    files: List[Path] = typer.Argument(..., help="Audio files, one digit each"),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    method: str = typer.Option("ig", help="ig (integrated gradients) | occlusion"),
    out_dir: Path = typer.Option(Path("explain"), help="Folder for <name>.explain.png and <name>.relevant.wav"),
    keep: float = typer.Option(0.2, help="Share of the spectrogram kept in the audible heatmap"),
    fraction: float = typer.Option(0.1, help="Share of the spectrogram deleted in the faithfulness check"),
    steps: int = typer.Option(32, help="Integration steps (ig)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file"),
):
    """Attribution heatmap PNG and audible heatmap WAV per file, and a deletion test of their faithfulness."""
    from audrey.observe.explain import METHODS, explain_file
    from audrey.models.modelfile import load_model

    if method not in METHODS:
        raise AudreyError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    if not 0 < keep <= 1:
        raise AudreyError(f"--keep {keep}: expected a share between 0 and 1 (e.g. 0.2)")
    if not 0 < fraction < 1:
        raise AudreyError(f"--fraction {fraction}: expected a share between 0 and 1 (e.g. 0.1)")
    if steps < 1:
        raise AudreyError(f"--steps {steps}: must be at least 1")
    bundle, _ = load_model(model_path(model))
    margins = []
    for f in files:
        ex = explain_file(bundle, f, out_dir, method, keep, fraction, steps)
        d = ex.deletion
        margins.append(d["margin_vs_random"])
        if as_json:
            sys.stdout.write(json_text(ex.to_dict()) + "\n")
            continue
        sys.stdout.write(f"{f}\t{ex.digit}\t{ex.confidence:.2f}\theatmap {ex.png}\taudible {ex.wav}\n"
                         f"  deleting the top {fraction:.0%} cells: p drops {d['drop_top']:+.3f}; the same number at random: "
                         f"{d['drop_random']:+.3f} (audible cells {d['drop_random_audible']:+.3f}, loudest {d['drop_loudest']:+.3f})\n")
    if len(files) > 1 and not as_json:
        err.print(f"deletion margin over {len(files)} clips: {sum(margins) / len(margins):+.3f} "
                  f"(top beats random on {sum(m > 0 for m in margins)} of {len(files)})")


@app.command("ood-fit")
@user_errors
def ood_fit_cmd(
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the bundled starter model)"),
    data: Optional[List[Path]] = typer.Option(None, "--data", help="The corpora the model was trained on (default: those its file names)"),
    synth: Optional[int] = typer.Option(None, help="Synthetic voices to add (default: as many as the model trained with)"),
    quantile: float = typer.Option(0.99, help="Share of held-out digits scored below the threshold"),
    out: Optional[Path] = typer.Option(None, help="Where to write it (default: <model>.ood.safetensors beside the model; for the bundled starter, in $AUDREY_DATA/models)"),
):
    """Fit the out-of-distribution statistics (class means and covariance of the penultimate layer)."""
    from audrey.data.corpora import read_corpora
    from audrey.models.modelfile import load_model, writable_output
    from audrey.observe.ood import fit_from_clips, sidecar_path
    from audrey.training.runs import synthetic_clips

    path = model_path(model)
    if out is not None:
        writable_output(out, "--out")  # before the work, not after it
    bundle, _ = load_model(path)
    prov = bundle.provenance
    if not data:
        data = [Path(d) for d in prov.get("data", [])]
        missing = [str(d) for d in data if not d.exists()]
        if not data or missing:
            raise AudreyError(f"{path}: its training corpora ({', '.join(missing) or 'not recorded'}) are not here; "
                              "pass --data with the corpora it was trained on")
    voices = prov.get("synth_voices", 0) if synth is None else synth
    clips = read_corpora(data) + synthetic_clips(voices, prov.get("train", {}).get("seed", 0))
    stats = fit_from_clips(bundle, clips, quantile=quantile)
    written = stats.save(out or sidecar_path(path))
    err.print(f"OOD statistics written to {written}")
    print_json({"file": str(written), "threshold": stats.threshold, **stats.info})


def main() -> None:  # pragma: no cover - console script entry
    app()
