"""What was said, sound by sound: a small phone recogniser, and how well a segment matches a digit's name.

The rejection's detector (audrey.live.detector) learns words: trained on espeak-ng's words, it let 16% of
words it had never heard through as digits ("hi" as "five" 94% of the time, "nothing" as "nine" 43%).
A phone recogniser learns the sounds words are made of instead, so a word it never heard is still
heard as what it is: "hi" decodes as /h aI/, which is not /f aI v/.

- Transcriptions come from espeak-ng itself (`espeak-ng -x`), in the accent of the voice that said
  the clip, so no lexicon is needed; its phoneme mnemonics are folded onto a smaller inventory.
- The model: three convolution blocks over the log-mel features (the digit model's own frontend), a
  bidirectional GRU over time and a phone-or-blank output per 20 ms, trained with CTC (Graves et al.,
  2006), which needs transcripts but no alignments.
- The match of a segment to digit d: log P(d's phones | segment) - log P(the best phone path), the
  classic keyword-spotting likelihood ratio against a free phone loop. About 0 when d's phones are
  the best explanation of the segment; far below 0 when something else was said.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from audrey import DIGIT_WORDS
from audrey.audio.frontend import FrontendConfig
from audrey.console import progress
from audrey.errors import AudreyError
from audrey.schema import bounded

# espeak-ng mnemonics folded onto one inventory: allophones and accent variants that a model hearing
# telephone-band audio cannot tell apart, and that no digit depends on.
FOLD = {"t#": "t", "t[": "t", "t2": "t", "?": "t", "I2": "I", "I#": "I", "i": "i:", "i@3": "i@", "aI@": "aI",
        "aI2": "aI", "aI3": "aI", "O2": "O:", "A:": "aa", "a#": "a", "VR": "3:", "3": "3:", "IR": "I@", "w#": "w",
        "n-": "n", "r-": "r", "@-": "@", "o@": "O@", ";": ""}
SPLIT = {"@L": ("@", "l")}  # syllabic l, as in "little"
BLANK = 0  # CTC's blank is output 0; phone k of the inventory is output k + 1
PHONE_CONFIG = {"channels": (24, 32, 48), "hidden": 96, "dropout": 0.2}


def fold(mnemonics: list[str]) -> list[str]:
    out: list[str] = []
    for m in mnemonics:
        m = m.replace("'", "").replace(",", "")  # stress marks
        if m in SPLIT:
            out += SPLIT[m]
        elif FOLD.get(m, m):
            out.append(FOLD.get(m, m))
    return out


@lru_cache(maxsize=None)
def _espeak_phones(words: tuple[str, ...], accent: str) -> tuple[tuple[str, ...], ...]:
    from audrey.data.synth import espeak_binary

    result = subprocess.run([espeak_binary(), "-q", "-x", "--sep=_", "-v", accent], input="\n".join(words) + "\n",
                            capture_output=True, text=True)
    lines = [line.strip() for line in result.stdout.split("\n") if line.strip()]
    if result.returncode != 0 or len(lines) != len(words):
        raise AudreyError(f"espeak-ng -x -v {accent} did not transcribe {len(words)} words "
                          f"({result.stderr.strip()[:200] or 'wrong number of lines'}); check the espeak-ng install")
    return tuple(tuple(fold(line.replace(" ", "_").split("_"))) for line in lines)


def transcribe(words: list[str], accent: str = "en-us") -> list[tuple[str, ...]]:
    """Each word's phones as espeak-ng says it in `accent` (one espeak-ng call per accent)."""
    unique = tuple(dict.fromkeys(words))
    table = dict(zip(unique, _espeak_phones(unique, accent))) if unique else {}
    return [table[w] for w in words]


def digit_pronunciations(accents: tuple[str, ...] | None = None) -> list[list[tuple[str, ...]]]:
    """Every way the synthetic accents say each digit ("four" with and without its r, "one" as
    /w V n/ or /w 0 n/)."""
    from audrey.data.synth import ACCENTS

    accents = accents or ACCENTS
    return [sorted({transcribe([w], a)[0] for a in accents}) for w in DIGIT_WORDS]


class PhoneNet(torch.nn.Module):
    """Log-mel features (N, mels, frames) -> per-frame log-probabilities (N, frames // 2, 1 + phones)."""

    def __init__(self, inventory: list[str], n_mels: int = FrontendConfig.n_mels, channels=(24, 32, 48), hidden: int = 96,
                 dropout: float = 0.2):
        super().__init__()
        self.inventory = list(inventory)
        self.config = {"inventory": self.inventory, "n_mels": n_mels, "channels": list(channels), "hidden": hidden,
                       "dropout": dropout}
        a, b, c = channels
        block = lambda i, o, pool: [torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU(),  # noqa: E731
                                    torch.nn.MaxPool2d(pool)]
        self.norm = torch.nn.InstanceNorm1d(n_mels)  # per-utterance: level and channel do not matter
        self.conv = torch.nn.Sequential(*block(1, a, (2, 2)), *block(a, b, (2, 1)), *block(b, c, (2, 1)))
        self.rnn = torch.nn.GRU(c * (n_mels // 8), hidden, batch_first=True, bidirectional=True)
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(2 * hidden, 1 + len(self.inventory))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.norm(feats)[:, None])
        n, c, f, t = h.shape
        h, _ = self.rnn(self.drop(h.permute(0, 3, 1, 2).reshape(n, t, c * f)))
        return self.out(self.drop(h)).log_softmax(-1)


def train_phone_model(feats: torch.Tensor, transcripts: list[tuple[str, ...]], frontend_cfg, epochs: int = 10,
                      seed: int = 0, batch_size: int = 64, lr: float = 3e-3) -> PhoneNet:
    """CTC training on (features, phones) pairs; an empty transcript is a sound with no speech in it.
    The same feature augmentation as the detector's (noise on half the clips, at 5-30 dB SNR)."""
    from audrey.data.augment import AugmentConfig, augment_batch
    from audrey.training.train import batches, warmup_cosine

    torch.manual_seed(seed)
    inventory = sorted({p for t in transcripts for p in t})
    index = {p: k + 1 for k, p in enumerate(inventory)}
    targets = [torch.tensor([index[p] for p in t], dtype=torch.long) for t in transcripts]
    model = PhoneNet(inventory, n_mels=frontend_cfg.n_mels, **PHONE_CONFIG)
    aug = AugmentConfig(noise_p=0.5, snr_db=(5.0, 30.0))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_cosine(opt, epochs * len(batches(len(feats), batch_size, torch.Generator())))
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)  # a word too long for its clip gives no gradient, not inf
    with progress(transient=True) as bar:
        task = bar.add_task("train the phone recogniser (CTC)", total=epochs, status="")
        for _ in range(epochs):
            model.train()
            for idx in batches(len(feats), batch_size, gen):
                log_probs = model(augment_batch(feats[idx], frontend_cfg, aug, gen))
                tgt = [targets[int(i)] for i in idx]
                loss = ctc(log_probs.transpose(0, 1), torch.cat(tgt), torch.full((len(idx),), log_probs.shape[1]),
                           torch.tensor([len(t) for t in tgt]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # CTC's early steps spike
                opt.step()
                sched.step()
            bar.update(task, advance=1, status=f"loss {loss.item():.3f}")
    return model.eval()


@dataclass(frozen=True)
class PhoneConfig:
    """A PhoneNet's config as a calibration file stores it, checked by audrey.schema."""

    inventory: tuple[str, ...] = bounded(("a",), 1, 8, items=(1, 200))
    n_mels: int = bounded(FrontendConfig.n_mels, 8, 128)  # three poolings halve the mels: at least 8
    channels: tuple[int, ...] = bounded(PHONE_CONFIG["channels"], 1, 256, items=(3, 3))
    hidden: int = bounded(PHONE_CONFIG["hidden"], 1, 1024)
    dropout: float = bounded(PHONE_CONFIG["dropout"], 0.0, 0.95)

    def inconsistency(self) -> str | None:
        return "field inventory names a phone twice" if len(set(self.inventory)) != len(self.inventory) else None


def build_phone_model(config: dict) -> PhoneNet:
    return PhoneNet(config["inventory"], n_mels=config["n_mels"], channels=tuple(config["channels"]),
                    hidden=config["hidden"], dropout=config["dropout"])


def greedy_decode(log_probs: torch.Tensor, inventory: list[str]) -> list[str]:
    """The phones each segment sounds like, e.g. "h aI": the best output per frame, repeats merged,
    blanks dropped."""
    out = []
    for path in log_probs.argmax(-1).tolist():
        out.append(" ".join(inventory[k - 1] for k, prev in zip(path, [BLANK] + path) if k != BLANK and k != prev))
    return out


class DigitMatcher:
    """How well segments match each digit's name, from a PhoneNet's output."""

    def __init__(self, inventory: list[str], pronunciations: list[list[tuple[str, ...]]] | None = None):
        self.inventory = list(inventory)
        index = {p: k + 1 for k, p in enumerate(self.inventory)}
        prons = pronunciations if pronunciations is not None else digit_pronunciations()
        # a phone the model has no output for (a digit it never heard in that accent) cannot match
        self.targets = [[torch.tensor([index[p] for p in pr]) for pr in prons[d] if all(p in index for p in pr)]
                        for d in range(10)]
        if not all(self.targets):
            raise AudreyError("the phone recogniser's inventory cannot spell every digit; recalibrate with `audrey calibrate`")

    def match(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(N, T, C) log-probabilities -> (N, 10): for each digit, log P(its best pronunciation) minus
        log P(the best phone path)."""
        n, t, _ = log_probs.shape
        lp = log_probs.transpose(0, 1).float()
        lengths = torch.full((n,), t, dtype=torch.long)
        out = torch.full((n, 10), -float("inf"))
        for d, prons in enumerate(self.targets):
            for target in prons:
                nll = F.ctc_loss(lp, target.repeat(n, 1), lengths, torch.full((n,), len(target)), blank=BLANK,
                                 reduction="none", zero_infinity=False)
                out[:, d] = torch.maximum(out[:, d], -nll)
        return out - log_probs.max(-1).values.sum(-1, keepdim=True)

    def heard(self, log_probs: torch.Tensor) -> list[str]:
        return greedy_decode(log_probs, self.inventory)

    def spelling(self, digit: int) -> str:
        return " ".join(self.inventory[k - 1] for k in self.targets[digit][0].tolist())


def transcripts_for(said: list[tuple[str, str] | None]) -> list[tuple[str, ...] | None]:
    """[(text, accent) | None] -> phones (None stays None: a sound with no transcript, left out)."""
    by_accent: dict[str, list[str]] = {}
    for s in said:
        if s is not None and s[0]:
            by_accent.setdefault(s[1], []).append(s[0])
    table = {(w, a): p for a, ws in by_accent.items() for w, p in zip(ws, transcribe(ws, a))}
    return [None if s is None else (table[s] if s[0] else ()) for s in said]


def match_array(scores: np.ndarray | torch.Tensor, digits) -> np.ndarray:
    """The (N, 10) match table's entry for each segment's chosen digit."""
    scores = torch.as_tensor(scores)
    return scores[torch.arange(len(scores)), torch.as_tensor(digits)].numpy()
