"""CTC decoding of per-frame log-probabilities into tokens with times and confidences.

- `greedy`: the most likely token per frame, repeats merged, blanks dropped (best path).
- `constrained`: the best single path whose tokens hold exactly `digits` digits (any number of
  non-digit tokens besides): Viterbi over (digits emitted so far, token of the previous frame), for
  numbers of a known length ("--digits 10" for a phone number). Exact, not a beam: the state space
  is frames x (digits + 1) x tokens, a few thousand cells per second of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audrey.errors import AudreyError
from audrey.models.ctc import BLANK, TOKENS, token_digit

MAX_DIGITS = 64  # a length constraint above this is a mistake, not a number anyone reads out


@dataclass(frozen=True)
class Token:
    token: int  # index into TOKENS
    start: float  # seconds: first frame where it is the path's token
    end: float  # seconds: end of its last frame
    confidence: float  # mean posterior of the token over its frames

    @property
    def digit(self) -> int | None:
        return token_digit(self.token)

    def to_dict(self) -> dict:
        return {"token": TOKENS[self.token], "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 4)}


def _array(log_probs) -> np.ndarray:
    lp = log_probs.detach().cpu().numpy() if isinstance(log_probs, torch.Tensor) else np.asarray(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"log-probabilities must be (frames, tokens), got shape {lp.shape}")
    return lp.astype(np.float64, copy=False)


def path_tokens(path: np.ndarray, lp: np.ndarray, frame_seconds: float) -> list[Token]:
    """The tokens of one frame path: runs of the same non-blank token are one token."""
    tokens = []
    t = 0
    while t < len(path):
        s = int(path[t])
        end = t + 1
        while end < len(path) and path[end] == s:
            end += 1
        if s != BLANK:
            conf = float(np.exp(lp[t:end, s]).mean())
            tokens.append(Token(s, t * frame_seconds, end * frame_seconds, conf))
        t = end
    return tokens


def greedy(log_probs, frame_seconds: float) -> list[Token]:
    """Best-path decoding of (frames, tokens) log-probabilities."""
    lp = _array(log_probs)
    return path_tokens(lp.argmax(axis=1), lp, frame_seconds)


def digits_of(tokens: list[Token]) -> str:
    """The digit string a decoding says: "427" (non-digit speech prints nothing)."""
    return "".join(str(t.digit) for t in tokens if t.digit is not None)


def constrained(log_probs, frame_seconds: float, digits: int) -> list[Token]:
    """The most likely path with exactly `digits` digit tokens; [] when the clip has too few frames
    for that many (each digit needs a frame, and a repeated digit a blank between)."""
    if not 0 <= digits <= MAX_DIGITS:
        raise AudreyError(f"--digits {digits}: expected a length from 0 to {MAX_DIGITS}")
    lp = _array(log_probs)
    n_frames, n_tok = lp.shape
    is_digit = np.array([token_digit(s) is not None for s in range(n_tok)])
    neg = -np.inf
    # score[k, s]: best log-probability of a path over frames 0..t that has emitted k digits and
    # whose frame t is token s; back[t, k, s] = flat index (k', s') of frame t-1's state.
    score = np.full((digits + 1, n_tok), neg)
    score[0, BLANK] = lp[0, BLANK]
    score[0, ~is_digit & (np.arange(n_tok) != BLANK)] = lp[0, ~is_digit & (np.arange(n_tok) != BLANK)]
    if digits >= 1:
        score[1, is_digit] = lp[0, is_digit]
    back = np.zeros((n_frames, digits + 1, n_tok), dtype=np.int64)
    ks = np.arange(digits + 1)
    for t in range(1, n_frames):
        new = np.full_like(score, neg)
        arg = np.zeros((digits + 1, n_tok), dtype=np.int64)
        best_s = score.argmax(axis=1)  # (K,) best previous token at each digit count
        best = score[ks, best_s]
        # second best, for "any previous token other than s" when s itself is the best
        masked = score.copy()
        masked[ks, best_s] = neg
        second_s = masked.argmax(axis=1)
        second = masked[ks, second_s]
        for s in range(n_tok):
            if s == BLANK:  # blank: from anything, same count
                new[:, s] = best + lp[t, s]
                arg[:, s] = ks * n_tok + best_s
                continue
            # a different previous token starts a new emission of s
            other = np.where(best_s == s, second, best)
            other_s = np.where(best_s == s, second_s, best_s)
            if is_digit[s]:
                start, start_from = np.full(digits + 1, neg), np.zeros(digits + 1, dtype=np.int64)
                start[1:], start_from[1:] = other[:-1], (ks[:-1] * n_tok + other_s[:-1])
            else:
                start, start_from = other, ks * n_tok + other_s
            stay = score[:, s]  # the same token as the previous frame continues it
            take_stay = stay >= start
            new[:, s] = np.where(take_stay, stay, start) + lp[t, s]
            arg[:, s] = np.where(take_stay, ks * n_tok + s, start_from)
        score, back[t] = new, arg
    end_s = int(score[digits].argmax())
    if not np.isfinite(score[digits, end_s]):
        return []
    path = np.zeros(n_frames, dtype=np.int64)
    state = digits * n_tok + end_s
    for t in range(n_frames - 1, -1, -1):
        path[t] = state % n_tok
        state = back[t, state // n_tok, state % n_tok]
    return path_tokens(path, lp, frame_seconds)
