"""Bayesian knowledge tracing with per-skill parameters and forgetting, fitted by Baum-Welch EM.

The E step and the forward pass are the Cython kernels in ext/bkt.pyx (reference: ext/bkt_ref.py,
which also documents the parameters). The M step adds a few pseudo-answers drawn from a generic
skill, so that a skill answered only correctly (or only wrongly), or only a handful of times,
still gets sensible parameters instead of probabilities of exactly 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from central.tracing.data import Answers
from central.tracing.sequences import by_user_and_skill
from ext import bkt as kernel
from ext.bkt_ref import FORGET, GUESS, LEARN, PARAMS, PRIOR, SLIP, STATS, update

# A generic skill: where EM starts, what unknown skills use, and what the pseudo-counts pull to.
DEFAULT_PARAMS = np.array([0.4, 0.15, 0.03, 0.2, 0.1])
# How many pseudo-observations of DEFAULT_PARAMS each estimate gets.
PSEUDO_COUNT = 2.0
# Guess and slip stay below 1/2, so "mastered" always means "more likely to answer correctly".
LOWER = np.array([0.001, 0.001, 0.0, 0.01, 0.01])
UPPER = np.array([0.999, 0.6, 0.3, 0.45, 0.45])
MAX_ITERATIONS = 200
_STAT = {name: i for i, name in enumerate(STATS)}
TOLERANCE = 1e-6  # relative change of the log-likelihood that ends EM


@dataclass
class BktModel:
    """Fitted parameters: one row of ext.bkt_ref.PARAMS per skill name."""

    skill_names: list[str]
    params: np.ndarray
    default: np.ndarray = field(default_factory=lambda: DEFAULT_PARAMS.copy())
    iterations: int = 0
    log_likelihood: float = float("nan")

    name = "bkt"

    @classmethod
    def fit(cls, answers: Answers) -> BktModel:
        sequences = by_user_and_skill(answers)
        n_skills = len(answers.skill_names)
        params = np.tile(DEFAULT_PARAMS, (n_skills, 1))
        previous = -np.inf
        iterations = 0
        log_likelihood = previous
        for iterations in range(1, MAX_ITERATIONS + 1):  # noqa: B007 - reported after the loop
            stats = kernel.em_statistics(
                sequences.correct, sequences.starts, sequences.skill, params
            )
            log_likelihood = float(stats[:, _STAT["log_likelihood"]].sum())
            params = _maximise(stats)
            if abs(log_likelihood - previous) <= TOLERANCE * abs(log_likelihood):
                break
            previous = log_likelihood
        # Unknown skills get the typical fitted skill, weighted by how much each was practised.
        weights = np.bincount(answers.skills, minlength=n_skills).astype(float)
        default = np.clip(np.average(params, axis=0, weights=weights), LOWER, UPPER)
        return cls(answers.skill_names[:n_skills], params, default, iterations, log_likelihood)

    def _params_for(self, answers: Answers) -> np.ndarray:
        """One row per skill of `answers`, whose vocabulary starts with this model's skills."""
        extra = len(answers.skill_names) - len(self.skill_names)
        return np.ascontiguousarray(np.vstack([self.params, np.tile(self.default, (extra, 1))]))

    def predict(self, answers: Answers) -> np.ndarray:
        """P(correct) of every answer from the same user's earlier answers on its skill."""
        sequences = by_user_and_skill(answers)
        predicted, _ = kernel.forward_predict(
            sequences.correct, sequences.starts, sequences.skill, self._params_for(answers)
        )
        out = np.empty(answers.size)
        out[sequences.order] = predicted
        return out

    def skill_params(self, skill: str) -> tuple[float, float, float, float, float]:
        """The parameters of `skill` as plain floats (the generic skill's for an unknown one)."""
        cached = self.__dict__.get("_online_cache")
        if cached is None:
            cached = {
                name: tuple(float(v) for v in row)
                for name, row in zip(self.skill_names, self.params, strict=True)
            }
            self.__dict__["_online_cache"] = cached
        found = cached.get(skill)
        return found if found is not None else tuple(float(v) for v in self.default)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "params": list(PARAMS),
            "default": [float(v) for v in self.default],
            "skills": {
                name: [float(v) for v in row]
                for name, row in zip(self.skill_names, self.params, strict=True)
            },
            "iterations": self.iterations,
            "log_likelihood": self.log_likelihood,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BktModel:
        names = list(doc["skills"])
        params = np.array([doc["skills"][n] for n in names], dtype=float).reshape(-1, len(PARAMS))
        return cls(
            names,
            params,
            np.array(doc["default"], dtype=float),
            int(doc.get("iterations", 0)),
            float(doc.get("log_likelihood", float("nan"))),
        )


def _maximise(stats: np.ndarray) -> np.ndarray:
    """The M step, with PSEUDO_COUNT answers of the generic skill mixed into every estimate."""
    a = PSEUDO_COUNT
    d = DEFAULT_PARAMS
    params = np.empty((stats.shape[0], len(PARAMS)))
    for param, (count, total) in {
        PRIOR: ("prior_mastered", "sequences"),
        LEARN: ("learned", "unmastered_before"),
        FORGET: ("forgotten", "mastered_before"),
        GUESS: ("correct_unmastered", "unmastered"),
        SLIP: ("wrong_mastered", "mastered"),
    }.items():
        params[:, param] = (stats[:, _STAT[count]] + a * d[param]) / (stats[:, _STAT[total]] + a)
    return np.ascontiguousarray(np.clip(params, LOWER, UPPER))


def next_mastery(
    params: tuple[float, ...], mastery: float | None, correct: bool
) -> tuple[float, float]:
    """Online update for one answer: (P(correct) it was predicted, P(mastered) afterwards)."""
    return update(params[PRIOR] if mastery is None else mastery, int(correct), params)
