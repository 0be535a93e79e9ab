"""A logistic model of the next answer from the student's practice on that skill and on all skills.

P(correct) = sigmoid(b + w . dense + d[s] + u[s] log(1 + successes on s) + v[s] log(1 + failures
on s)), with the dense features of central/tracing/features.py (practice counts across all
skills, recency, recent success rates) shared by all skills and a difficulty d, and learning rates
u, v per skill: the "Best-LR" family (PFA with cross-skill counts). A skill unknown to the fitted
model gets only the shared part.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from central.tracing import TracingError
from central.tracing.data import Answers
from central.tracing.features import DENSE, StudentState, batch_features

# Newton's method is fastest while its Hessian (features squared) stays small; past that, the
# coordinate-descent solver of liblinear is.
NEWTON_MAX_FEATURES = 1500
REGULARISATION_C = 1.0
MAX_ITERATIONS = 300


def _design(answers: Answers, dense: np.ndarray, known: int) -> sp.csr_matrix:
    rows = np.flatnonzero(answers.skills < known)
    skills = answers.skills[rows]

    def per_skill(values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values, (rows, skills)), shape=(answers.size, known))

    return sp.hstack(
        [
            sp.csr_matrix(dense),
            per_skill(np.ones(rows.shape[0])),
            per_skill(dense[rows, 0]),
            per_skill(dense[rows, 1]),
        ],
        format="csr",
    )


@dataclass
class LogisticModel:
    skill_names: list[str]
    intercept: float
    dense_weights: np.ndarray  # len(DENSE)
    skill_weights: np.ndarray  # (len(skill_names), 3): difficulty, successes, failures

    name = "logistic"

    @classmethod
    def fit(cls, answers: Answers) -> LogisticModel:
        labels = answers.correct
        if np.all(labels == labels[0]):
            raise TracingError(
                "the logistic model needs both correct and wrong answers in the training data; "
                f"every training answer is {'correct' if labels[0] else 'wrong'}"
            )
        known = len(answers.skill_names)
        design = _design(answers, batch_features(answers), known)
        solver = "newton-cholesky" if design.shape[1] <= NEWTON_MAX_FEATURES else "liblinear"
        regression = LogisticRegression(C=REGULARISATION_C, solver=solver, max_iter=MAX_ITERATIONS)
        with warnings.catch_warnings():
            # Stopping at MAX_ITERATIONS still gives usable weights; the fit time matters more.
            warnings.simplefilter("ignore", ConvergenceWarning)
            regression.fit(design, labels)
        weights = regression.coef_[0]
        d = len(DENSE)
        skill_weights = np.column_stack(
            [weights[d : d + known], weights[d + known : d + 2 * known], weights[d + 2 * known :]]
        )
        return cls(
            list(answers.skill_names),
            float(regression.intercept_[0]),
            weights[:d].copy(),
            skill_weights,
        )

    def predict(self, answers: Answers) -> np.ndarray:
        known = len(self.skill_names)
        design = _design(answers, batch_features(answers), known)
        coefficients = np.concatenate(
            [self.dense_weights, self.skill_weights[:, 0], self.skill_weights[:, 1],
             self.skill_weights[:, 2]]
        )  # fmt: skip
        return _sigmoid(design @ coefficients + self.intercept)

    def predict_next(self, state: StudentState, skill: str) -> float:
        """P(correct) of the student's next answer on `skill`."""
        dense = state.features(skill)
        weights, per_skill = self._online
        logit = self.intercept + sum(w * x for w, x in zip(weights, dense, strict=True))
        skill_weights = per_skill.get(skill)
        if skill_weights is not None:
            difficulty, per_success, per_failure = skill_weights
            logit += difficulty + per_success * dense[0] + per_failure * dense[1]
        return 1.0 / (1.0 + math.exp(-logit))

    @property
    def _online(self) -> tuple[list[float], dict[str, tuple[float, float, float]]]:
        # Plain floats: numpy's per-call overhead would dominate an update of a dozen numbers.
        cached = self.__dict__.get("_online_cache")
        if cached is None:
            per_skill = {
                name: (float(row[0]), float(row[1]), float(row[2]))
                for name, row in zip(self.skill_names, self.skill_weights, strict=True)
            }
            cached = ([float(w) for w in self.dense_weights], per_skill)
            self.__dict__["_online_cache"] = cached
        return cached

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "intercept": self.intercept,
            "dense": dict(zip(DENSE, (float(w) for w in self.dense_weights), strict=True)),
            "skills": {
                name: [float(v) for v in row]
                for name, row in zip(self.skill_names, self.skill_weights, strict=True)
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LogisticModel:
        names = list(doc["skills"])
        return cls(
            names,
            float(doc["intercept"]),
            np.array([doc["dense"][name] for name in DENSE], dtype=float),
            np.array([doc["skills"][n] for n in names], dtype=float).reshape(-1, 3),
        )


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))
