"""The rejection fitted to one voice (`audrey personalize`): thresholds loosened, never tightened,
just enough for the speaker's takes; `Calibration.loosen` applies them when listening with the
personal weights."""

from __future__ import annotations

import numpy as np

from audrey.data.scenes import Scene, in_silence
from audrey.errors import AudreyError
from audrey.live.judge import Judge
from audrey.live.scoring import scene_segments, segment_scores
from audrey.live.thresholds import BACKED_P_DIGIT, BACKING, SCORES, TARGET_ACCEPT, passes_tests

def fit_to_voice(judge: "Judge", takes: list[np.ndarray], digits: list[int], rate: int, target: float = TARGET_ACCEPT
                 ) -> dict:
    """Thresholds loosened (never tightened) just enough for one person's takes: of the takes the
    model gets right, each test must pass at least `target`. The calibration's voices are synthetic,
    and a real voice can sit further from them than any of them (audrey.live.judge, test 3). Each take goes
    through the live segmenter, in silence, as in calibration. Returns the thresholds and the share
    of the takes the whole rejection accepts as the right digit before and after."""
    if judge.calibration is None:
        raise AudreyError("no rejection calibration to fit to a voice; run `audrey calibrate` for the base model")
    cal = judge.calibration
    rng = np.random.default_rng(0)
    scenes = [Scene(in_silence(t, rate, rng), "digit", d) for t, d in zip(takes, digits)]
    seg = scene_segments(scenes, rate, judge)
    score, digit, _, fixed_ok = segment_scores(seg, cal)
    right = (digit == seg["label"].numpy()) & fixed_ok
    before = {name: getattr(cal, name) for name, _ in (*SCORES.values(), BACKING)}
    after = loosened_for(score, right, before, target)
    share = lambda th: round(float((right & passes_tests(score, th)).sum() / max(len(takes), 1)), 4)  # noqa: E731
    return {"thresholds": after, "takes": len(takes), "classified_right": round(float(right.sum() / max(len(takes), 1)), 4),
            "accepted_before": share(before), "accepted_after": share(after), "target": target}


def loosened_for(score: dict[str, np.ndarray | None], right: np.ndarray, thresholds: dict[str, float], target: float
                 ) -> dict[str, float]:
    """`thresholds`, each loosened where needed so that its test passes `target` of the `right` segments."""
    out = dict(thresholds)
    for k, (name, higher) in SCORES.items():
        if right.any() and score.get(k) is not None:
            # each test on its own; asking `target` of all tests together loosened the detector so
            # far for FSDD's nicolas that 8% of noise bursts printed as digits
            need = float(np.quantile(score[k][right], 1 - target, method="lower") if higher
                         else np.quantile(score[k][right], target, method="higher"))  # at least `target`, not about
            out[name] = min(out[name], need) if higher else max(out[name], need)
    name = BACKING[0]
    if name in out and right.any() and score.get("phone") is not None and score.get("p_digit") is not None:
        # of the takes that pass the other (loosened) tests, the backing may refuse what each of them
        # may: a voice whose detector scores needed a looser threshold has more takes below
        # BACKED_P_DIGIT, and those must not all fall to the backing instead
        passing = right & passes_tests(score, {k: v for k, v in out.items() if k != name})
        unbacked = np.sort(score["phone"][passing & (score["p_digit"] < BACKED_P_DIGIT)])
        allowed = int(passing.sum()) - int(np.ceil(target * passing.sum() - 1e-9))
        if len(unbacked) > allowed:
            out[name] = min(out[name], float(unbacked[allowed]))
    return out
