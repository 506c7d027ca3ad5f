"""Shared fixtures: the session's cache folder and torch threads, espeak-ng digit clips, the models
trained once per session, and the PulseAudio virtual microphone (tools/vmic-up)."""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from audrey import DIGIT_WORDS
from helpers import RATE, STARTER, TINY_VOICES, fsdd_subset, open_calibration

REPO = Path(__file__).resolve().parents[1]
VMIC_UP = REPO / "tools" / "vmic-up"
VMIC_DOWN = REPO / "tools" / "vmic-down"

# Real espeak-ng voices for tests. Chosen because they do not clip: some espeak voices (e.g.
# en-gb-x-gbcwmd+ed at low pitch) render flat-topped peaks that the quality gate rightly rejects.
VOICES = {
    "us": ("en-us", "m3", 50),
    "gb": ("en-gb", "f2", 60),
    "sc": ("en-gb-scotland", "m1", 40),
}

# --- what every test runs with: a session cache folder, one torch thread ------------------------


@pytest.fixture(scope="session")
def audrey_cache(tmp_path_factory) -> Path:
    """The session's AUDREY_CACHE (rendered voices, features): made once per session, so no test reads
    or writes ~/.cache/audrey. Tests that need an empty cache set their own."""
    return tmp_path_factory.mktemp("audrey-cache")


@pytest.fixture(autouse=True)
def _session_cache_and_one_thread(audrey_cache, monkeypatch, tmp_path):
    """Each test sees AUDREY_CACHE = the session's cache folder, AUDREY_DATA (where commands write
    the companions of the shipped starter) a folder of its own, and torch on one thread: a sum over
    more threads runs in another order, so a model trained with two threads comes out different from
    one trained with one, and a test's result would depend on the machine's cores and on which test
    set the thread count before it. Both are put back after the test."""
    monkeypatch.setenv("AUDREY_CACHE", str(audrey_cache))
    monkeypatch.setenv("AUDREY_DATA", str(tmp_path / "audrey-data"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextmanager
def building_in(cache: Path):
    """What a session fixture builds with: the same as a test (AUDREY_CACHE = the session's cache, one
    torch thread; session fixtures are set up before the autouse fixture above), put back after."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDREY_CACHE", str(cache))
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


# --- espeak-ng ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _espeak_cache(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture
def espeak_digit(_espeak_cache):
    """espeak_digit(7, voice="gb", speed=150) -> Path of a WAV (22.05 kHz) saying "seven".
    Rendered once per session and voice; `voice` is a key of VOICES."""
    from audrey.data.synth import Voice, say

    def render(digit: int, voice: str = "us", speed: int = 150) -> Path:
        accent, variant, pitch = VOICES[voice]
        out = _espeak_cache / f"{digit}_{voice}_{speed}.wav"
        if not out.exists():
            say(DIGIT_WORDS[digit], Voice(accent, variant, pitch), speed, out)
        return out

    return render


@pytest.fixture
def digit_folders(tmp_path, espeak_digit):
    """zero/..nine/ folders holding espeak-ng clips in three voices: 30 clips."""
    root = tmp_path / "digits"
    for d, word in enumerate(DIGIT_WORDS):
        (root / word).mkdir(parents=True)
        for voice in ("us", "gb", "sc"):
            (root / word / f"{voice}.wav").write_bytes(espeak_digit(d, voice).read_bytes())
    return root


# A voice none of the tiny model's training voices resembles: espeak-ng's en-us m3, shifted down
# five semitones by sox (a deeper voice), at six speaking rates. The tiny model gets about half right.
DEEP_VOICE = ("en-us", "m3", 50)
DEEP_SHIFT = ["pitch", "-500"]
DEEP_SPEEDS = (120, 140, 160, 180, 200, 220)


@pytest.fixture(scope="session")
def deep_voice(tmp_path_factory) -> Path:
    """recordings/deep/: six takes of each digit, named as `audrey record` names them."""
    from audrey.data.synth import Voice, say

    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed (apt-get install espeak-ng sox)")
    root = tmp_path_factory.mktemp("personal") / "recordings"
    raw = root.parent / "raw"
    folder = root / "deep"
    folder.mkdir(parents=True)
    for digit, word in enumerate(DIGIT_WORDS):
        for take, speed in enumerate(DEEP_SPEEDS):
            src = say(word, Voice(*DEEP_VOICE), speed, raw / f"{digit}_{take}.wav")
            subprocess.run(["sox", str(src), str(folder / f"{digit}_deep_{take}.wav"), *DEEP_SHIFT], check=True)
    return root


# --- models trained once per session --------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, audrey_cache) -> Path:
    """A small CNN trained for a few epochs on the synthetic voices TINY_VOICES, and a rejection
    calibrated for it with a detector trained for 2 epochs on a sliver of the material: enough to
    exercise every step, not to be accurate. Only espeak-ng voices, so that it is the same model
    whether FSDD is beside the repo or not (10 voices x 10 epochs: on the deep voice's 30 held-out
    takes it gets 15 right, and 29 once adapted to three takes per digit, where 6 voices x 6 epochs
    gave 9 and 27, the test's bound). Beside it, open.reject.safetensors (open_calibration)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from audrey.audio.frontend import FrontendConfig
    from audrey.data.augment import AugmentConfig
    from audrey.data.scenes import scenes_for
    from audrey.data.wordlist import CALIBRATION_WORDS, DETECTOR_WORDS
    from audrey.live.calibrate import calibrate
    from audrey.live.calibration import sidecar_path
    from audrey.models.modelfile import save_model
    from audrey.training.runs import synthetic_clips
    from audrey.training.train import TrainConfig, train

    model = tmp_path_factory.mktemp("listen-tiny") / "tiny.safetensors"
    with building_in(audrey_cache):
        clips = synthetic_clips(len(TINY_VOICES), 0)
        cfg = TrainConfig(epochs=10, batch_size=32, lr=4e-3, patience=99, augment=AugmentConfig(noise_p=0.3))
        bundle = train(clips, [], cfg, FrontendConfig()).bundle
        bundle.provenance["synth_voices"] = len(TINY_VOICES)
        save_model(bundle, model)
        scenes = scenes_for(RATE, range(200, 202), CALIBRATION_WORDS[:10], speeds=(150,), bursts=20)
        cal = calibrate(bundle, clips, scenes=scenes, target=0.9,
                               detector_options={"words": DETECTOR_WORDS[:40], "voices_per_word": 1,
                                                 "near_miss_voices": 0, "common_voices": 0, "pseudo": 20,
                                                 "digit_voices": 3, "bursts": 60, "epochs": 2})
    cal.save(sidecar_path(model))
    # and one with every threshold open, for tests about segmentation rather than rejection
    cal.min_p_digit, cal.min_confidence, cal.max_distance = 0.0, 0.0, float("inf")
    cal.min_phone_match = cal.sure_phone_match = -float("inf")  # the backing rule too: no phone test at all
    cal.save(open_calibration(model))
    return model


@pytest.fixture(scope="session")
def tiny_bundle(audrey_cache):
    """A CNN trained for a few seconds on FSDD's FSDD_SPEAKERS x 10 digits x 4 takes (the
    observability tests; skips without FSDD)."""
    from audrey.data.augment import NO_AUGMENT
    from audrey.training.train import TrainConfig, train

    clips = fsdd_subset()
    cfg = TrainConfig(arch="cnn", epochs=6, batch_size=16, lr=3e-3, patience=100, augment=NO_AUGMENT)
    with building_in(audrey_cache):
        bundle = train(clips, [], cfg).bundle
    bundle.model.eval()
    return bundle


@pytest.fixture(scope="session")
def starter_judge():
    from audrey.live.calibration import find_calibration
    from audrey.live.judge import Judge

    if not STARTER.exists() or not find_calibration(STARTER).exists():
        pytest.skip(f"accuracy test: needs models/{STARTER.name} and models/{find_calibration(STARTER).name} "
                    "(train the starter model, then `audrey calibrate`)")
    return Judge.from_file(STARTER)


# --- the virtual microphone -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def vmic():
    """The virtual microphone (tools/vmic-up): `paplay --device=vmic clip.wav` is heard on the default
    input. Skips (with the reason) where PulseAudio cannot start. Stopped at the end if this session
    started it."""
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2)")
    try:
        up = subprocess.run([str(VMIC_UP)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"virtual microphone did not start: {exc}")
    if up.returncode != 0:
        pytest.skip(f"virtual microphone did not start (PulseAudio): {(up.stderr or up.stdout).strip()[-300:]}")
    started = "already up" not in up.stdout
    problem = _vmic_passes_audio()
    if problem:
        pytest.fail(f"the virtual microphone is up but {problem} (see /tmp/vmic-pulse/pulse.log)")
    yield "vmic"
    if started:
        subprocess.run([str(VMIC_DOWN)], capture_output=True)


def _vmic_passes_audio(tries: int = 5) -> str | None:
    """Play a short tone into the sink and hear it on the default input, as the tests will: this
    proves the path works and warms up the audio server (its first connection can be slow).
    Returns what went wrong, or None."""
    import tempfile
    import time

    import numpy as np
    import soundfile as sf

    try:
        import sounddevice as sd
    except OSError as exc:  # no libportaudio2
        pytest.skip(f"sounddevice cannot load PortAudio ({exc}); apt-get install libportaudio2")
    rate = 16000
    t = np.arange(int(0.3 * rate)) / rate
    with tempfile.NamedTemporaryFile(suffix=".wav") as tone:
        sf.write(tone.name, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
        with sd.InputStream(samplerate=rate, channels=1, dtype="float32") as stream:
            for _ in range(tries):
                player = subprocess.Popen(["paplay", "--device=vmic", tone.name])
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    block, _ = stream.read(rate // 20)
                    if np.sqrt(np.mean(block**2)) > 0.05:
                        player.wait(10)
                        return None
                player.wait(10)
    return f"a tone played into it was not heard on the default input in {tries} tries"
