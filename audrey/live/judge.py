"""Is a speech segment a digit at all? The decision `audrey listen` and `audrey transcribe` apply.

A ten-way classifier always names one of its ten digits, whatever it hears: "hello", a cough, a door.
Six tests turn that into "digit d" or "not a digit":

1. Length: a digit's speech lasts `min_seconds`..`max_seconds` (the bounds of the recorder's quality
   gate); a click or a sentence does not.
2. A trained detector: a small CNN on the same log-mel features with eleven classes, the ten digits and
   "other", trained (`audrey calibrate`) on the model's training digits and espeak-ng digits in 150
   voices against espeak-ng words (wordlist.DETECTOR_WORDS in 25 voices each, the 745 everyday words of
   audrey.data.wordlist in 16), near misses (each digit's name with another onset or ending, or without
   its onset: "hive", "fix", "devon", "ive"), made-up words, time-reversed digits (human-sounding, no word)
   and synthetic noise bursts, with noise added at 5-30 dB SNR. Its score is its probability for the
   digit the classifier chose, so it is low both for "other" and when the two models disagree.
   It is needed: a model trained only on digits has no reason to keep what tells "hello" from
   "zero", and its own scores separate digits from other words poorly. Measured on held-out voices
   and words (areas under the ROC curve, digits against words, a 6-epoch development model):
   softmax confidence 0.75, Mahalanobis distance 0.81, a binary digit-or-not detector 0.85-0.87,
   this eleven-class detector 0.92.
3. The phone test (audrey.models.phones): a CTC phone recogniser, trained on the same material with
   espeak-ng's own transcriptions, scores how well the segment matches the chosen digit's phones
   against the best phone string it can find. The detector learns words and so lets through words
   it never learnt (16% of held-out words with it alone); phones are shared by all words, so a new
   word is still heard as what it is ("hi" as /h aI/, not /f aI v/). In noise, phones drown before
   words do, which is why it works with the detector rather than replacing it. It is a veto on
   top of the other tests, its threshold calibrate.PHONE_MARGIN below the match that 97% of the synthetic
   held-out digits reach: a real speaker the recogniser never heard matches worse than espeak-ng's
   voices do. FSDD's nicolas, left out of a recogniser's training: median match -5.7 (-0.2 when
   heard); the whole rejection accepts 93.6% of his digits without the phone test, 79.8% with a
   margin of 4, 85.6% with 7, 89.0% with 10 (other FSDD speakers, heard: within 2.4 points).
   The margin is given only to a segment the detector backs: one matching its digit's phones worse
   than the synthetic voices' 97% (`sure_phone_match`, the threshold before the margin) must have
   p_digit >= thresholds.BACKED_P_DIGIT, the detector finding the digit more likely than not. A real voice's
   digits keep the margin (their detector scores are high); a word scraping past both tests does
   not: held-out words printed as digits went from 7.1% to 5.8% (noisy ones 17.6% to 13.8%), for
   1 point of nicolas unheard by the recogniser (85.6 -> 84.6%) and, of the heard FSDD voices, 2 of
   yweweler's and 0.4 of george's (`audrey personalize` loosens it for a voice that needs it).
4. Likeness to the digits the model knows: the Mahalanobis distance of the penultimate embedding
   (`head.hook_embed`) to the nearest class mean, with one covariance shared by all classes (Lee et
   al., 2018) shrunk towards a scaled identity, fitted on the model's training digits.
5. Confidence: the top softmax probability after temperature scaling (Guo et al., 2017), the
   temperature fitted on held-out digits by log-likelihood.
6. The hiss test (audrey.live.hiss), for wideband input (>= 16 kHz): a 6 or a 7 must begin with
   the /s/ of "six" and "seven" (mostly above 4 kHz, beyond what a model with an 8 kHz frontend hears).

The thresholds of 2-5 are set by calibration (audrey.live.calibrate) and stored beside the model
(audrey.live.calibration); how they apply is audrey.live.thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audrey import DIGIT_WORDS
from audrey.audio.frontend import prepared_batch
from audrey.console import warn
from audrey.errors import AudreyError
from audrey.live.calibration import Calibration, find_calibration
from audrey.live.detector import OTHER
from audrey.live.hiss import MIN_HISS_DB, hiss_array, lacks_hiss, onset_hiss_db
from audrey.live.recognizer import Recognizer, frozen
from audrey.live.thresholds import BACKED_P_DIGIT, MAX_SECONDS, MIN_SECONDS, backed
from audrey.models.modelfile import load_model
from audrey.models.personal_file import apply_personal
from audrey.models.phones import DigitMatcher, match_array

UNCALIBRATED_CONFIDENCE = 0.7  # without a calibration: softmax confidence below this is "not a digit"


class JudgeNet(torch.nn.Module):
    """Frontend, digit model and detector in one module: from one waveform batch, the digit logits,
    the `head.hook_embed` activation (the head's input), the detector's digit-or-not logits and the
    phone recogniser's per-frame log-probabilities."""

    def __init__(self, frontend: torch.nn.Module, model: torch.nn.Module, detector: torch.nn.Module | None,
                 base: torch.nn.Module | None = None, phones: torch.nn.Module | None = None):
        super().__init__()
        self.frontend, self.model, self.detector, self.base, self.phones = frontend, model, detector, base, phones

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.frontend(wave)
        embed = self.model.embed(feats)
        logits = self.model.head(embed)
        if self.base is not None:  # personal weights: the digit is theirs, the likeness test the base's
            embed = self.base.embed(feats)  # (the calibration's class means live in the base's space)
        other = self.detector(feats) if self.detector is not None else torch.zeros(wave.shape[0], OTHER + 1)
        phones = self.phones(feats) if self.phones is not None else torch.zeros(wave.shape[0], 1, 1)
        return logits, embed, other, phones


@dataclass
class Verdict:
    digit: int  # the classifier's best digit (reported even when rejected)
    confidence: float  # calibrated top probability
    accepted: bool
    reason: str | None  # why it is not a digit
    seconds: float  # speech length
    p_digit: float | None = None  # the detector's probability for the classifier's digit (not "other", nor another digit)
    distance: float | None = None  # Mahalanobis distance to the nearest digit class
    hiss_db: float | None = None  # onset energy above 4 kHz against below, for wideband input (onset_hiss_db)
    phone_match: float | None = None  # how well it matches the digit's phones (phones.DigitMatcher; 0 = best)
    heard: str | None = None  # the phones the segment sounds like, e.g. "h aI"
    string_p: float | None = None  # --confirm: the digit-string model's posterior for the digit (audrey.live.confirm)


def detector_agreement(detector_logits: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
    """The detector's probability for the digit the classifier chose: low when the detector hears
    "not a digit", and when it hears another digit (two models disagreeing is a sign of a stranger)."""
    return detector_logits.softmax(-1).gather(1, digit[:, None])[:, 0]


class Judge:
    """Segments in, `Verdict`s out: the classifier call `listen` and `transcribe` share. One frozen
    forward pass at the model's rate gives the digit logits, the embedding and the detector's output;
    at the input's own rate, the hiss test looks at the band the models do not hear."""

    def __init__(self, recognizer, calibration: Calibration | None = None, base: torch.nn.Module | None = None):
        self.recognizer = recognizer
        self.calibration = calibration
        clip = recognizer.bundle.frontend.clip_samples
        detector = calibration.detector if calibration is not None else None
        phones = calibration.phones if calibration is not None else None
        self.matcher = None
        if phones is not None:
            self.matcher = DigitMatcher(phones.inventory, calibration.pronunciations)
        net = JudgeNet(recognizer.frontend, recognizer.model, detector, base if calibration is not None else None, phones).eval()
        self.net = frozen(net, torch.zeros(1, clip))
        for _ in range(3):  # TorchScript optimises on the first calls: pay for that now, not on the first digit
            self.forward([np.zeros(clip, np.float32)])

    @classmethod
    def from_file(cls, model_path: Path, calibration: Path | None = None, need_calibration: bool = False,
                  weights: Path | None = None) -> "Judge":
        """The model and the calibration beside it (or `calibration`). Without one, warns and rejects
        by length and confidence only (or refuses, with `need_calibration`). With personal `weights`,
        digits come from the personal model; the calibration is the base model's, loosened where the
        speaker's takes needed it (audrey.live.voice_fit)."""
        model_path = Path(model_path)
        bundle, _ = load_model(model_path)
        personal = apply_personal(bundle, Path(weights), model_path) if weights else None
        path = Path(calibration) if calibration else find_calibration(model_path)
        cal = None
        if path.exists():
            cal = Calibration.load(path)
            cal.check_model(bundle, model_path)
        elif calibration or need_calibration:
            raise AudreyError(f"{path}: no such rejection calibration; make one with `audrey calibrate --model {model_path}`")
        else:
            warn(f"no rejection calibration beside {model_path} ({path.name}): words and noises are rejected by "
                 f"length and confidence only; run `audrey calibrate --model {model_path}` for the full rejection")
        if personal is not None:
            fitted = personal.provenance["personal"].get("rejection")
            if cal is not None and fitted:
                cal.loosen(fitted["thresholds"])  # fitted to the speaker's takes by `audrey personalize` (checked on reading)
            return cls(Recognizer(personal, fast=False), cal, base=bundle.model)
        return cls(Recognizer(bundle, fast=False), cal)

    @property
    def sample_rate(self) -> int:
        return self.recognizer.sample_rate

    @torch.inference_mode()
    def forward(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(digit logits (N, 10), embeddings (N, D), detector logits (N, 11), phone log-probabilities
        (N, T, C)) for single-segment waveforms at the model's rate."""
        return self.net(prepared_batch(waves, self.recognizer.bundle.frontend))

    def inputs(self, waves: list[np.ndarray], rate: int) -> tuple[list[np.ndarray], list[float | None]]:
        """What the decision sees of segments given at `rate`: each at the model's rate (for the
        models), and its onset hiss measured at its own rate. Calibration goes through here too, so its
        thresholds are fitted on exactly what `judge` will score."""
        from audrey.audio.waveform import resample

        return [resample(w, rate, self.sample_rate) for w in waves], [onset_hiss_db(w, rate) for w in waves]

    def judge(self, waves: list[np.ndarray], seconds: list[float], rate: int | None = None) -> list[Verdict]:
        """A verdict per segment, given at `rate` (default: the model's); `seconds` is each segment's
        speech length."""
        if not waves:
            return []
        model_waves, hiss = self.inputs(waves, rate or self.sample_rate)
        return self.decide(*self.forward(model_waves), seconds, hiss)

    def decide(self, logits: torch.Tensor, embed: torch.Tensor, other: torch.Tensor, phones: torch.Tensor, seconds,
               hiss: list[float | None] | None = None) -> list[Verdict]:
        cal = self.calibration
        probs = (logits / (cal.temperature if cal else 1.0)).softmax(-1)
        conf, digit = probs.max(-1)
        p_digit = detector_agreement(other, digit) if cal is not None and cal.detector is not None else None
        match = match_array(self.matcher.match(phones), digit) if self.matcher is not None else None
        heard = self.matcher.heard(phones) if self.matcher is not None else None
        dist = cal.distances(embed) if cal is not None else None
        is_backed = np.broadcast_to(backed({"phone": match, "p_digit": p_digit.numpy() if p_digit is not None else None},
                                           cal.sure_phone_match if cal is not None else -np.inf), (len(probs),))
        lo, hi = (cal.min_seconds, cal.max_seconds) if cal else (MIN_SECONDS, MAX_SECONDS)
        hiss = hiss_array(hiss if hiss is not None else [None] * len(probs))
        no_hiss = lacks_hiss(digit.numpy(), hiss)
        out = []
        for i in range(len(probs)):
            c, s = float(conf[i]), float(seconds[i])
            pd = float(p_digit[i]) if p_digit is not None else None
            m = float(match[i]) if match is not None else None
            d = float(dist[i]) if dist is not None else None
            h = None if np.isnan(hiss[i]) else float(hiss[i])
            if s < lo:
                reason = f"too short for a digit ({s:.2f} s)"
            elif s > hi:
                reason = f"too long for a digit ({s:.2f} s)"
            elif pd is not None and pd < cal.min_p_digit:
                reason = f"not like a {int(digit[i])} (detector {pd:.2f} < {cal.min_p_digit:.2f})"
            elif m is not None and m < cal.min_phone_match:
                reason = (f"sounds like /{heard[i]}/, not {DIGIT_WORDS[int(digit[i])]} /{self.matcher.spelling(int(digit[i]))}/ "
                          f"(phone match {m:.1f} < {cal.min_phone_match:.1f})")
            elif not is_backed[i]:
                reason = (f"not clearly {DIGIT_WORDS[int(digit[i])]}: sounds like /{heard[i]}/ (phone match {m:.1f} "
                          f"< {cal.sure_phone_match:.1f}) and the detector does not back it ({pd:.2f} < {BACKED_P_DIGIT:.2f})")
            elif d is not None and d > cal.max_distance:
                reason = f"unlike any digit (distance {d:.1f} > {cal.max_distance:.1f})"
            elif c < (cal.min_confidence if cal else UNCALIBRATED_CONFIDENCE):
                reason = f"unsure which digit (confidence {c:.2f})"
            elif no_hiss[i]:
                reason = f"not a {int(digit[i])}: no /s/ at its start (above 4 kHz {h:.1f} dB < {MIN_HISS_DB:.1f} dB)"
            else:
                reason = None
            out.append(Verdict(int(digit[i]), c, reason is None, reason, s, pd, d, h, m, heard[i] if heard else None))
        return out
