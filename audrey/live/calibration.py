"""The rejection calibration file, `<model>.reject.safetensors` beside the model, stored without
pickle: detector and phone recogniser weights, class means and precision matrix as tensors;
thresholds, temperature, both networks' architectures, the phone inventory and each digit's
pronunciations (so listening needs no espeak-ng) and the calibration report as JSON metadata; and
a digest of the digit model's weights, so a calibration is never applied to a model it was not
made for. Neither network depends on the digit model: `audrey calibrate --detector
OTHER.reject.safetensors` re-uses both and only recalibrates the thresholds (under a minute instead
of most of an hour on two cores, e.g. for personal weights). Made by audrey.live.calibrate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from audrey.errors import AudreyError
from audrey.live.detector import OTHER
from audrey.live.thresholds import BACKING, MAX_SECONDS, MIN_SECONDS, SCORES, ThresholdSet
from audrey.models.modelfile import derived_path, found_companion, model_digest
from audrey.observe.mahalanobis import squared_distances
from audrey.schema import shown

FORMAT = "audrey-reject/1"
SUFFIX = ".reject.safetensors"
REDO = "delete it and run `audrey calibrate`"
MAX_EMBED = 4096  # the widest embedding a calibration's class means may have


@dataclass
class Calibration:
    means: torch.Tensor  # (10, D) class means of the embedding
    precision: torch.Tensor  # (D, D) inverse of the shared, shrunk covariance
    detector: torch.nn.Module | None
    phones: torch.nn.Module | None = None  # phones.PhoneNet
    pronunciations: list | None = None  # each digit's phone strings, fixed at calibration (no espeak-ng at listen time)
    temperature: float = 1.0
    min_p_digit: float = 0.0
    min_phone_match: float = -float("inf")
    sure_phone_match: float = -float("inf")  # below this (and above min_phone_match) the detector must back the digit
    min_confidence: float = 0.0
    max_distance: float = float("inf")
    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS
    model_digest: str = ""
    frontend_key: str = ""
    report: dict = field(default_factory=dict)
    path: Path | None = None  # the file it was read from, for errors

    def distances(self, embed: torch.Tensor) -> torch.Tensor:
        """(N,) Mahalanobis distance of (N, D) embeddings to the nearest class mean."""
        d2 = squared_distances(embed.double(), self.means.double(), self.precision.double())
        return d2.clamp_min(0).min(dim=1).values.sqrt().float()

    def thresholds(self) -> dict:
        return {"temperature": self.temperature, "min_p_digit": self.min_p_digit, "min_phone_match": self.min_phone_match,
                "sure_phone_match": self.sure_phone_match, "min_confidence": self.min_confidence,
                "max_distance": self.max_distance, "min_seconds": self.min_seconds, "max_seconds": self.max_seconds}

    def loosen(self, thresholds: dict[str, float]) -> None:
        """For each thresholded test, the looser of its own threshold and `thresholds`' (fitted to one
        voice by voice_fit.fit_to_voice): a voice can widen what passes, never narrow it."""
        for name, higher in (*SCORES.values(), BACKING):
            if name in thresholds:
                mine, theirs = getattr(self, name), float(thresholds[name])
                setattr(self, name, min(mine, theirs) if higher else max(mine, theirs))

    def save(self, path: Path) -> Path:
        from safetensors.torch import save

        from audrey.atomic import atomic_write_bytes
        from audrey.models import config_dict

        meta = {"format": FORMAT, "model_digest": self.model_digest, "frontend_key": self.frontend_key,
                "thresholds": json.dumps(self.thresholds()), "report": json.dumps(self.report)}
        tensors = {"means": self.means.float().contiguous(), "precision": self.precision.float().contiguous()}
        if self.detector is not None:
            meta["detector_config"] = json.dumps(config_dict(self.detector))
            tensors.update({f"detector.{k}": v.detach().contiguous() for k, v in self.detector.state_dict().items()})
        if self.phones is not None:
            meta["phone_config"] = json.dumps({**self.phones.config, "pronunciations": self.pronunciations})
            tensors.update({f"phones.{k}": v.detach().contiguous() for k, v in self.phones.state_dict().items()})
        return atomic_write_bytes(Path(path), save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        """The calibration at `path`, checked before anything is built: thresholds typed and bounded
        (thresholds.ThresholdSet: -inf or +inf where a test is open, never NaN), both networks'
        configs (the detector's as a cnn config, the phone recogniser's as phones.PhoneConfig) and the
        pronunciations, then every tensor's dtype and shape against those networks built on the meta
        device, then the tensors themselves (finite). Against a model: `check_model`."""
        from audrey.models import build, config_from_dict, weight_layout
        from audrey.models.modelfile import open_format
        from audrey.models.phones import PhoneConfig, build_phone_model
        from audrey.models.safe_file import layout_of
        from audrey.schema import from_fields, parse_json

        file = open_format(path, FORMAT, "rejection calibration", f"make one with `audrey calibrate` ({REDO} if it is damaged)")
        file = replace(file, remedy=REDO)
        meta, where = file.metadata, str(file.path)
        thresholds = from_fields(ThresholdSet, parse_json(meta.get("thresholds"), f"{where}: thresholds", REDO),
                                 f"{where}: thresholds", REDO)
        report = parse_json(meta.get("report", "{}"), f"{where}: report", REDO)
        if not isinstance(report, dict):
            raise file.error(f"report is {shown(report)}, not a JSON object")
        for key in ("model_digest", "frontend_key"):
            if len(meta.get(key, "")) > 64:
                raise file.error(f"{key} is {shown(meta[key])}; expected at most 64 characters")
        shape = file.entries["means"].shape if "means" in file.entries else ()
        dim = shape[1] if len(shape) == 2 and 1 <= shape[1] <= MAX_EMBED else 0
        expected = {"means": ("F32", (10, dim)), "precision": ("F32", (dim, dim))}
        detector_cfg = phone_cfg = prons = None
        if "detector_config" in meta:
            detector_cfg = config_from_dict("cnn", parse_json(meta["detector_config"], f"{where}: detector_config", REDO),
                                            f"{where}: detector_config", REDO)
            if detector_cfg.n_classes != OTHER + 1:
                raise file.error(f"detector_config field n_classes is {detector_cfg.n_classes}; the detector has "
                                 f"{OTHER + 1} (ten digits and \"other\")")
            expected.update({f"detector.{k}": v for k, v in weight_layout("cnn", detector_cfg).items()})
        if "phone_config" in meta:
            config = parse_json(meta["phone_config"], f"{where}: phone_config", REDO)
            prons = config.pop("pronunciations", None) if isinstance(config, dict) else None
            phone_cfg = from_fields(PhoneConfig, config, f"{where}: phone_config", REDO)
            prons = checked_pronunciations(file, prons, phone_cfg.inventory)
            with torch.device("meta"):
                expected.update({f"phones.{k}": v for k, v in layout_of(build_phone_model(phone_config_dict(phone_cfg))).items()})
        file.check_layout(expected, "tensors do not fit the networks and class statistics its metadata describes")
        tensors = file.tensors()
        detector = phones = None
        if detector_cfg is not None:
            detector = build("cnn", detector_cfg)
            detector.load_state_dict({k[len("detector."):]: v for k, v in tensors.items() if k.startswith("detector.")})
            detector.eval()
        if phone_cfg is not None:
            phones = build_phone_model(phone_config_dict(phone_cfg))
            phones.load_state_dict({k[len("phones."):]: v for k, v in tensors.items() if k.startswith("phones.")})
            phones.eval()
        return cls(tensors["means"], tensors["precision"], detector, phones, prons, **asdict(thresholds),
                   model_digest=meta.get("model_digest", ""), frontend_key=meta.get("frontend_key", ""), report=report,
                   path=file.path)

    def check_model(self, bundle, model_path: Path) -> None:
        """This calibration is for `bundle`'s model: made for it (its weights' digest), class means as
        wide as its embedding, both networks reading as many mel bands as its frontend makes."""
        where = self.path or "rejection calibration"
        if self.model_digest and self.model_digest != model_digest(bundle.model):
            raise AudreyError(f"{where}: was calibrated for another model than {model_path}; run "
                              f"`audrey calibrate --model {model_path}` (or delete {Path(where).name})")
        n_mels = bundle.frontend.n_mels
        with torch.no_grad():
            dim = bundle.model.eval().embed(torch.zeros(1, n_mels, bundle.frontend.n_frames)).shape[-1]
        if self.means.shape[1] != dim:
            raise AudreyError(f"{where}: tensor means has {self.means.shape[1]} features per digit; the embedding of "
                              f"{model_path} has {dim}; {REDO}")
        reads = {"detector_config": self.detector.cfg.n_mels if self.detector is not None else n_mels,
                 "phone_config": self.phones.config["n_mels"] if self.phones is not None else n_mels}
        for name, found in reads.items():
            if found != n_mels:
                raise AudreyError(f"{where}: {name} field n_mels is {found} but {model_path} makes {n_mels} mel bands; {REDO}")


def phone_config_dict(cfg) -> dict:
    return {"inventory": list(cfg.inventory), "n_mels": cfg.n_mels, "channels": list(cfg.channels), "hidden": cfg.hidden,
            "dropout": cfg.dropout}


def checked_pronunciations(file, prons, inventory) -> list:
    """Each digit's pronunciations from a calibration file: ten lists of phone strings, each digit
    spellable with the phone recogniser's `inventory` (what phones.DigitMatcher needs)."""
    def fail(problem: str) -> AudreyError:
        return file.error(f"phone_config field pronunciations{problem}")

    if not isinstance(prons, list) or len(prons) != 10:
        raise fail(f" is {shown(prons)}; expected one list of phone strings per digit (10)")
    known = set(inventory)
    out = []
    for d, spellings in enumerate(prons):
        if (not isinstance(spellings, list) or not 1 <= len(spellings) <= 64
                or not all(isinstance(p, list) and 1 <= len(p) <= 32 and all(isinstance(x, str) for x in p) for p in spellings)):
            raise fail(f"[{d}] is {shown(spellings)}; expected 1 to 64 lists of 1 to 32 phones")
        if not any(all(x in known for x in p) for p in spellings):
            raise fail(f"[{d}] cannot be spelt with the phone inventory")
        out.append([tuple(p) for p in spellings])
    return out


def sidecar_path(model_path: Path) -> Path:
    """Where `audrey calibrate` writes the calibration of `model_path` by default: models/mine.safetensors
    -> models/mine.reject.safetensors; a shipped model's goes to the user's folder (modelfile.derived_path)."""
    return derived_path(model_path, SUFFIX)


def find_calibration(model_path: Path) -> Path:
    """Where `listen` and `transcribe` look for the calibration of `model_path`: the one `audrey
    calibrate` wrote, else the one beside the model (modelfile.found_companion)."""
    return found_companion(model_path, SUFFIX)
