"""Readers for the real multi-speaker corpora (Speech Commands, AN4, alphanumeric): their layouts,
speaker names that never collide, the digits inside transcripts, the audio-file rule, and the real
counts where /work/shared/data is present."""

from __future__ import annotations

from collections import Counter

import pytest
import soundfile as sf

from audrey.audio.waveform import AUDIO_FORMATS, AUDIO_SUFFIXES, SAMPLE_RATE, audio_files, is_audio_file, load_audio
from audrey.data.corpora import AudreyError, detect_layout, read_corpora, read_corpus, read_non_digits
from audrey.data.utterances import digit_of, digit_string, read_utterances
from helpers import require_alphanumeric, require_an4, require_speech_commands, tone, write_tone
from real_layouts import (ALNUM_NAME_ONLY, AN4_ROWS, SC_NOISE, make_alphanumeric, make_an4, make_audiomnist, make_fsdd,
                          make_speech_commands)

# --- the one rule for which files are audio ---------------------------------------------------------


def test_audio_formats_cover_everything_soundfile_reads():
    left_out = {"RAW", "MAT4", "MAT5", "XI"}  # see waveform.AUDIO_FORMATS for why
    assert set(sf.available_formats()) - left_out <= set(AUDIO_FORMATS)
    assert all(s.startswith(".") and s == s.lower() for s in AUDIO_SUFFIXES)


# A subtype soundfile writes for every format in AUDIO_FORMATS.
WRITABLE = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "AIFF": "PCM_16", "AU": "PCM_16", "CAF": "PCM_16",
            "W64": "PCM_16", "RF64": "PCM_16", "NIST": "PCM_16", "IRCAM": "PCM_16", "VOC": "PCM_16", "SVX": "PCM_16",
            "PAF": "PCM_16", "PVF": "PCM_16", "AVR": "PCM_16", "HTK": "PCM_16", "SDS": "PCM_16", "WAVEX": "PCM_16",
            "MPC2K": "PCM_16", "SD2": "PCM_16", "WVE": "ALAW", "MP3": "MPEG_LAYER_III"}


def test_every_readable_format_is_a_clip(tmp_path):
    assert set(WRITABLE) == set(AUDIO_FORMATS)
    formats = [f for f in WRITABLE if f in sf.available_formats()]
    (tmp_path / "c").mkdir()
    for take, fmt in enumerate(formats):
        path = tmp_path / "c" / f"{take % 10}_{fmt.lower()}_{take}{AUDIO_FORMATS[fmt][0]}"
        sf.write(str(path), tone(440, 0.2, 8000), 8000, format=fmt, subtype=WRITABLE[fmt])
    clips = read_corpus(tmp_path / "c")
    assert sorted(c.speaker for c in clips) == sorted(f.lower() for f in formats)
    for clip in clips:  # each decodes to its 0.2 s tone at 0.5 (lossy formats within a few %)
        audio = load_audio(clip.path)
        assert len(audio) == SAMPLE_RATE // 5 and abs(abs(audio).max() - 0.5) < 0.03, clip.path


def test_is_audio_file(tmp_path):
    for name in ("a.flac", "b.WAV", "c.ogg", "d.mp3", "e.aiff", ".hidden.flac", "._f.wav", "notes.txt", "x.mat", "raw.raw"):
        (tmp_path / name).write_bytes(b"\0" * 10)
    (tmp_path / "folder.wav").mkdir()
    assert [p.name for p in audio_files(tmp_path)] == ["a.flac", "b.WAV", "c.ogg", "d.mp3", "e.aiff"]
    assert not is_audio_file(tmp_path / "missing.wav")


# --- Speech Commands --------------------------------------------------------------------------------


def test_speech_commands_digits(tmp_path):
    root = make_speech_commands(tmp_path / "speech-commands")
    assert detect_layout(root) == ("speech-commands", root)
    clips = read_corpus(root)
    assert sorted((c.digit, c.speaker, c.take) for c in clips) == [
        (0, "sc-0fa1e7a9", 0), (7, "sc-0fa1e7a9", 1), (7, "sc-1b4c9b89", 0), (9, "sc-3b4f8f24", 0)]
    assert {c.source for c in clips} == {"speech-commands"} and all(c.meta == {} for c in clips)
    assert all(c.path.suffix == ".flac" for c in clips)


def test_speech_commands_non_digits(tmp_path):
    root = make_speech_commands(tmp_path / "sc")
    words = read_non_digits(root)
    speech = [w for w in words if not w.is_noise]
    assert sorted((w.word, w.speaker) for w in speech) == [
        ("tree", "sc-0fa1e7a9"), ("tree", "sc-c1d39ce8"), ("yes", "sc-c1d39ce8")]
    noise = [w for w in words if w.is_noise]
    assert len(noise) == SC_NOISE and {(w.word, w.speaker) for w in noise} == {(None, None)}
    # the same hash in a digit folder and a word folder is the same person
    assert {w.speaker for w in speech} & {c.speaker for c in read_corpus(root)} == {"sc-0fa1e7a9"}
    assert not any(w.word in ("zero", "seven", "nine") for w in words)


def test_speech_commands_bad_name(tmp_path):
    root = make_speech_commands(tmp_path / "sc")
    write_tone(root / "seven" / "recording.flac", seconds=0.05)
    with pytest.raises(AudreyError, match=r"seven/recording.flac: name is not <speaker>_nohash_<n>"):
        read_corpus(root)


def test_non_digits_need_speech_commands(tmp_path):
    make_fsdd(tmp_path / "fsdd", speakers=("ann",), takes=1)
    with pytest.raises(AudreyError, match="not a Speech Commands folder"):
        read_non_digits(tmp_path / "fsdd")


def test_plain_digit_folders_beside_a_word_folder_still_mix(tmp_path):
    """Only the `_nohash_` names make word folders welcome beside digit folders."""
    write_tone(tmp_path / "d" / "seven" / "a.wav", seconds=0.05)
    write_tone(tmp_path / "d" / "bob" / "1_bob_0.wav", seconds=0.05)
    with pytest.raises(AudreyError, match="mixes layouts"):
        read_corpus(tmp_path / "d")


# --- AN4 --------------------------------------------------------------------------------------------


def test_an4_utterances(tmp_path):
    root = make_an4(tmp_path / "an4")
    assert detect_layout(root) == ("an4", root)
    utts = read_utterances(root)
    assert [u.path.name for u in utts] == [f"{row[0]}.flac" for row in AN4_ROWS]
    assert [(u.speaker, u.words, u.digits) for u in utts] == [
        ("an4-mblw", ("x", "i", "sixty", "one"), "1"),
        ("an4-mblw", ("one", "five", "two", "two", "seven"), "15227"),
        ("an4-fash", ("eight", "oh", "four", "zero", "nine"), "80409"),
        ("an4-fash", ("enter",), ""),
        ("an4-fash", ("r", "o", "b"), ""),  # the letter O is no digit
    ]
    assert [u.only_digits for u in utts] == [False, True, True, False, False]
    assert {u.source for u in utts} == {"an4"}
    assert {u.speaker: u.meta["gender"] for u in utts} == {"an4-mblw": "male", "an4-fash": "female"}
    assert utts[0].path == root / "train" / "mblw" / "an1-mblw-b.flac"


def test_an4_missing_audio_is_named(tmp_path):
    root = make_an4(tmp_path / "an4")
    (root / "train" / "fash" / "cen2-fash-b.flac").unlink()
    with pytest.raises(AudreyError) as info:
        read_utterances(root)
    assert "train.csv" in str(info.value) and "'cen2-fash-b'" in str(info.value) and "fash/cen2-fash-b" in str(info.value)


@pytest.mark.parametrize(
    "word, digit",
    [("ONE", 1), ("TWO", 2), ("NINE", 9), ("OH", 0), ("ZERO", 0), ("oh", 0), ("zero", 0), (" Seven ", 7),
     ("SIXTY", None), ("TWENTY", None), ("TEN", None), ("NINETEEN", None), ("O", None), ("A", None), ("T", None),
     ("ENTER", None), ("RUBOUT", None), ("", None)],
)
def test_digit_of_an4_words(word, digit):
    assert digit_of(word) == digit


def test_digit_string():
    assert digit_string("G TWO EIGHTY NINE".split()) == "29"
    assert digit_string("R E W Y EIGHT FIVE SIX".split()) == "856"
    assert digit_string("OH ZERO O".split()) == "00"
    assert digit_string("ERASE SIXTY".split()) == digit_string([]) == ""


def test_utterance_corpora_are_not_clips(tmp_path):
    for make, name in ((make_an4, "an4"), (make_alphanumeric, "alphanumeric")):
        root = make(tmp_path / name)
        with pytest.raises(AudreyError) as info:
            read_corpus(root)
        message = str(info.value)
        assert "\n" not in message and f"holds {name} utterances" in message and "not single-digit clips" in message
        with pytest.raises(AudreyError, match="utterances"):
            read_corpora([root])


def test_read_utterances_on_clips(tmp_path):
    make_fsdd(tmp_path / "fsdd", speakers=("ann",), takes=1)
    with pytest.raises(AudreyError, match="no utterances with transcripts"):
        read_utterances(tmp_path / "fsdd")
    with pytest.raises(AudreyError, match="no such folder"):
        read_utterances(tmp_path / "absent")


# --- alphanumeric -----------------------------------------------------------------------------------


def test_alphanumeric_utterances(tmp_path):
    root = make_alphanumeric(tmp_path / "alphanumeric")
    assert detect_layout(root) == ("alphanumeric", root)
    utts = read_utterances(root)
    numbers = {u.speaker: u for u in utts if u.path.parent.name == "numbers"}
    names = {u.speaker: u for u in utts if u.path.parent.name == "names"}
    assert {s: u.digits for s, u in numbers.items()} == {
        "alnum-R_14L9qNxUlipFmsF": "3041254855", "alnum-R_1QrO96YnPAaHofK": "1928374655",
        "alnum-R_4JsyJD7ticKbRiZ": "123456789"}
    first = numbers["alnum-R_14L9qNxUlipFmsF"]
    assert first.words[:3] == ("three", "zero", "four") and first.only_digits
    assert first.meta == {"gender": "male", "age": "23", "nationality": "Indian", "native_language": "Tamil",
                          "english": "Educated in English, but not my native language", "accent_strength": "7",
                          "device": "Laptop"}
    assert "gender" not in numbers["alnum-R_1QrO96YnPAaHofK"].meta  # "Prefer not to say"
    assert numbers["alnum-R_4JsyJD7ticKbRiZ"].meta["gender"] == "female"
    assert set(names) == set(numbers) | {f"alnum-{ALNUM_NAME_ONLY}"}
    assert all(u.digits == "" and u.words == () and not u.only_digits for u in names.values())
    assert names[f"alnum-{ALNUM_NAME_ONLY}"].meta == {}
    assert names["alnum-R_14L9qNxUlipFmsF"].meta == first.meta
    assert {u.source for u in utts} == {"alphanumeric"}


def test_alphanumeric_number_without_row(tmp_path):
    root = make_alphanumeric(tmp_path / "a")
    write_tone(root / "numbers" / "R_new.flac", seconds=0.05)
    with pytest.raises(AudreyError, match=r"R_new.flac: no row 'R_new' in .*speakers.csv"):
        read_utterances(root)


def test_transcript_tables_with_missing_columns_or_short_rows_are_one_error(tmp_path):
    an4 = make_an4(tmp_path / "an4")
    with open(an4 / "train.csv", "a") as fh:
        fh.write("an99-mtst-b,mtst\n")  # a row cut short: no text
    with pytest.raises(AudreyError, match=r"train.csv: line \d+ has fewer fields than the header"):
        read_utterances(an4)
    alnum = make_alphanumeric(tmp_path / "a")
    table = alnum / "speakers.csv"
    table.write_text(table.read_text().replace(",number", ",phone", 1))
    with pytest.raises(AudreyError, match=r"no utterances with transcripts here .*speakers.csv with a number column"):
        read_utterances(alnum)


def test_alphanumeric_bad_number(tmp_path):
    root = make_alphanumeric(tmp_path / "a")
    text = (root / "speakers.csv").read_text().replace("3041254855", "304-125-4855")
    (root / "speakers.csv").write_text(text)
    with pytest.raises(AudreyError, match="number '304-125-4855' is not a string of digits"):
        read_utterances(root)


# --- speaker names across corpora ---------------------------------------------------------------------


def test_speakers_never_collide_across_corpora(tmp_path):
    """The same raw id in every corpus gives a different speaker in each."""
    raw = "fash"
    make_fsdd(tmp_path / "fsdd", speakers=(raw,), takes=1)
    write_tone(tmp_path / "sc" / "one" / f"{raw}_nohash_0.flac", seconds=0.05)
    make_an4(tmp_path / "an4", rows=[("an1-fash-b", raw, "1.0", "ONE")])
    alnum = tmp_path / "alnum"
    write_tone(alnum / "numbers" / f"{raw}.flac", seconds=0.05)
    (alnum / "speakers.csv").write_text("id,gender,number\nfash,Female,12\n")
    make_audiomnist(tmp_path / "am", speakers=("01",), takes=1)
    per_corpus = {
        "fsdd": {c.speaker for c in read_corpus(tmp_path / "fsdd")},
        "speech-commands": {c.speaker for c in read_corpus(tmp_path / "sc")},
        "an4": {u.speaker for u in read_utterances(tmp_path / "an4")},
        "alphanumeric": {u.speaker for u in read_utterances(alnum)},
        "audiomnist": {c.speaker for c in read_corpus(tmp_path / "am")},
    }
    assert per_corpus == {"fsdd": {"fash"}, "speech-commands": {"sc-fash"}, "an4": {"an4-fash"},
                          "alphanumeric": {"alnum-fash"}, "audiomnist": {"01"}}
    # Prefixed names carry a "-"; FSDD's and AudioMNIST's names never do, so none can be equal.
    assert all("-" not in s for s in per_corpus["fsdd"] | per_corpus["audiomnist"])


# --- the real corpora ---------------------------------------------------------------------------------


def test_real_speech_commands():
    root = require_speech_commands()
    clips = read_corpus(root)
    assert len(clips) == 231
    assert len({c.speaker for c in clips}) == 115
    assert set(Counter(c.digit for c in clips)) == set(range(10))
    assert {c.source for c in clips} == {"speech-commands"} and all(c.speaker.startswith("sc-") for c in clips)
    words = read_non_digits(root)
    noise = [w for w in words if w.is_noise]
    assert len(noise) == 408 and len(words) - len(noise) == 4650 - 231 - 408
    assert len({w.speaker for w in words if w.speaker} | {c.speaker for c in clips}) == 236
    assert "tree" in {w.word for w in words}


def test_real_an4():
    root = require_an4()
    utts = read_utterances(root)
    assert len(utts) == 948 and len({u.speaker for u in utts}) == 74
    assert all(u.speaker.startswith("an4-") and u.path.is_file() for u in utts)
    assert Counter(u.meta["gender"] for u in {u.speaker: u for u in utts}.values()) == {"male": 53, "female": 21}
    assert sum(len(u.digits) for u in utts) == 1719
    first = next(u for u in utts if u.path.stem == "an1-mblw-b")
    assert (first.words, first.digits) == (("x", "i", "sixty", "one"), "1")


def test_real_alphanumeric():
    root = require_alphanumeric()
    utts = read_utterances(root)
    numbers = [u for u in utts if u.digits]
    assert len(numbers) == 34 and all(9 <= len(u.digits) <= 10 for u in numbers)
    assert len(utts) - len(numbers) == 35  # spelled names, one from a speaker without a row
    assert len({u.speaker for u in utts}) == 35
    assert Counter(u.meta.get("gender") for u in numbers) == {"female": 17, "male": 16, None: 1}


def test_real_fsdd_names_cannot_be_produced_by_the_others():
    from helpers import require_fsdd

    fsdd = {c.speaker for c in read_corpus(require_fsdd())}
    others = ({c.speaker for c in read_corpus(require_speech_commands())}
              | {u.speaker for u in read_utterances(require_an4())}
              | {u.speaker for u in read_utterances(require_alphanumeric())})
    assert fsdd and others and not fsdd & others
