"""One-step-ahead evaluation of a tracing model: fit on one file's users, predict another's.

Every test answer is predicted from the same user's earlier test answers only (the models never see
an answer before predicting it), so the figures are honest out-of-sample ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from central.tracing import TracingError
from central.tracing.bkt import BktModel
from central.tracing.data import Answers, read_answers, shared_users
from central.tracing.logistic import LogisticModel

MODELS: dict[str, type[BktModel] | type[LogisticModel]] = {
    "bkt": BktModel,
    "logistic": LogisticModel,
}
BEST_MODEL = "logistic"


@dataclass(frozen=True)
class Evaluation:
    model: str
    auc: float | None
    rmse: float
    fit_seconds: float
    predict_seconds: float
    train_answers: int
    test_answers: int
    test_users: int
    # Test answers on skills the training file never had; predicted from the generic skill.
    unknown_skill_answers: int
    # Why auc is None: it is undefined when every test answer is correct (or every one wrong).
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def metrics(correct: np.ndarray, predicted: np.ndarray) -> tuple[float | None, float]:
    """(AUC or None when only one class occurs, RMSE)."""
    rmse = math.sqrt(float(np.mean((predicted - correct) ** 2)))
    if np.all(correct == correct[0]):
        return None, rmse
    return float(roc_auc_score(correct, predicted)), rmse


def evaluate_answers(train: Answers, test: Answers, model_name: str = BEST_MODEL) -> Evaluation:
    try:
        model_class = MODELS[model_name]
    except KeyError:
        raise TracingError(
            f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}"
        ) from None
    started = time.perf_counter()
    model = model_class.fit(train)
    fitted = time.perf_counter()
    predicted = model.predict(test)
    predicted_at = time.perf_counter()
    auc, rmse = metrics(test.correct, predicted)
    note = None
    if auc is None:
        note = f"AUC is undefined: every test answer is {'correct' if test.correct[0] else 'wrong'}"
    return Evaluation(
        model=model_name,
        auc=auc,
        rmse=rmse,
        fit_seconds=fitted - started,
        predict_seconds=predicted_at - fitted,
        train_answers=train.size,
        test_answers=test.size,
        test_users=len(test.user_names),
        unknown_skill_answers=test.unknown_skill_rows,
        note=note,
    )


def load_split(train_path: Path, test_path: Path) -> tuple[Answers, Answers]:
    train = read_answers(train_path)
    test = read_answers(test_path, train.skill_names)
    shared = shared_users(train.user_names, test.user_names)
    if shared:
        listed = ", ".join(shared[:5]) + (" …" if len(shared) > 5 else "")
        raise TracingError(
            f"{len(shared)} user(s) appear in both {train_path} and {test_path} ({listed}); "
            "train and test users must be disjoint, or the evaluation would test on trained data"
        )
    return train, test


def evaluate_files(train_path: Path, test_path: Path, model_name: str = BEST_MODEL) -> Evaluation:
    if model_name not in MODELS:
        raise TracingError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    train, test = load_split(train_path, test_path)
    return evaluate_answers(train, test, model_name)
