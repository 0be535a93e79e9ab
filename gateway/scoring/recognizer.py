"""Recognise one handwritten answer with the shipped models, in numpy only.

The gateway does not install scikit-learn: training exports each field's model as plain arrays
(standardisation, an optional hidden ReLU layer, output weights and bias, calibrated temperature,
labels) in `models/<field>.npz`, and this module is all that is needed to use them.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.scoring.features import FEATURE_SIZE, StrokesLike, as_strokes, checked_features
from gateway.scoring.segment import straight_line

MODELS_DIR = Path(__file__).resolve().parent / "models"
FIELDS = ("digit", "choice", "mark")
# A class a model may learn that is no answer: two digits written into each other, for the digit
# model. It is never returned as a label; the probability it takes is confidence the answer
# labels do not get, so such a pair is not read as one digit with confidence.
NOT_ONE_CHARACTER = "not_one_character"


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float


@dataclass(frozen=True)
class FieldModel:
    """A calibrated softmax classifier over standardised features.

    Linear when `hidden_weights` has no columns; otherwise one hidden ReLU layer comes first and
    `weights` maps its units, not the features, to the classes.
    """

    labels: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    temperature: float
    hidden_weights: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((FEATURE_SIZE, 0))
    )
    hidden_bias: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @property
    def hidden_units(self) -> int:
        return int(self.hidden_bias.shape[0])

    @functools.cached_property
    def answers(self) -> tuple[str, ...]:
        """The labels a reading may have: all but NOT_ONE_CHARACTER, which comes last if learnt."""
        return tuple(label for label in self.labels if label != NOT_ONE_CHARACTER)

    @classmethod
    def load(cls, path: Path) -> FieldModel:
        with np.load(path, allow_pickle=False) as z:
            model = cls(
                labels=tuple(str(label) for label in z["labels"]),
                mean=z["mean"].astype(np.float64),
                scale=z["scale"].astype(np.float64),
                weights=z["weights"].astype(np.float64),
                bias=z["bias"].astype(np.float64),
                temperature=float(z["temperature"]),
                # Files from before the hidden layer existed hold a linear model.
                hidden_weights=(
                    z["hidden_weights"].astype(np.float64)
                    if "hidden_weights" in z
                    else np.zeros((FEATURE_SIZE, 0))
                ),
                hidden_bias=(
                    z["hidden_bias"].astype(np.float64) if "hidden_bias" in z else np.zeros(0)
                ),
            )
        if NOT_ONE_CHARACTER in model.labels[:-1]:
            raise ValueError(f"{path}: {NOT_ONE_CHARACTER} must be the last label")
        inputs = model.hidden_units or FEATURE_SIZE
        if (
            model.mean.shape != (FEATURE_SIZE,)
            or model.hidden_weights.shape != (FEATURE_SIZE, model.hidden_units)
            or model.weights.shape != (inputs, len(model.labels))
        ):
            raise ValueError(
                f"{path} was trained on other features (hidden {model.hidden_weights.shape}, "
                f"weights {model.weights.shape}, {FEATURE_SIZE} features expected): "
                "run `classink scoring train` again"
            )
        return model

    def save(self, path: Path) -> None:
        # float32 halves the file size; the evaluation runs on these saved weights, not on the
        # float64 originals, so the reported figures are those of the shipped model.
        np.savez_compressed(
            path,
            labels=np.array(self.labels),
            mean=self.mean.astype(np.float32),
            scale=self.scale.astype(np.float32),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            temperature=np.float64(self.temperature),
            hidden_weights=self.hidden_weights.astype(np.float32),
            hidden_bias=self.hidden_bias.astype(np.float32),
        )

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated scores for feature rows x (n, FEATURE_SIZE) -> (n, classes)."""
        z = (x - self.mean) / self.scale
        if self.hidden_units:
            z = np.maximum(z @ self.hidden_weights + self.hidden_bias, 0.0)
        return z @ self.weights + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of every learnt label, NOT_ONE_CHARACTER included."""
        return softmax(self.logits(x) / self.temperature)

    def answer_probabilities(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of the answer labels (`answers`), not renormalised: what the model
        gives NOT_ONE_CHARACTER is missing from each row's sum."""
        return self.probabilities(x)[:, : len(self.answers)]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Recognizer:
    """All fields' models; `Recognizer.load()` reads them once per process and reuses them."""

    def __init__(self, models: dict[str, FieldModel]) -> None:
        self.models = models

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Recognizer:
        """The models in `directory` (default: the shipped ones), read once per process."""
        return _load_cached(Path(directory).resolve() if directory else MODELS_DIR)

    @classmethod
    def read(cls, directory: Path) -> Recognizer:
        """The models as they are on disk now, bypassing the cache (e.g. right after training)."""
        models = {}
        for field in FIELDS:
            path = directory / f"{field}.npz"
            if not path.is_file():
                raise FileNotFoundError(f"no model at {path}: run `classink scoring train` first")
            models[field] = FieldModel.load(path)
        return cls(models)

    def predict(self, field: str, strokes: StrokesLike) -> Prediction:
        """Best label and its calibrated probability.

        Raises ValueError for an unknown field or unusable strokes (none, empty, NaN, not numeric).
        """
        model = self.models.get(field)
        if model is None:
            raise ValueError(f"unknown field {field!r}: expected one of {sorted(self.models)}")
        clean = as_strokes(strokes)
        p = model.answer_probabilities(checked_features(clean)[None, :])[0]
        best = int(np.argmax(p))
        confidence = float(p[best])
        if field == "choice" and straight_line(clean):
            # A lone straight stroke is at most part of a letter (UNIPEN holds such fragments
            # labelled A-D): it cannot tell which letter was meant, so no more than chance.
            confidence = min(confidence, 1.0 / len(model.answers))
        return Prediction(label=model.answers[best], confidence=confidence)


@functools.lru_cache(maxsize=4)
def _load_cached(directory: Path) -> Recognizer:
    return Recognizer.read(directory)
