"""Plain-Python reference of the Bayesian knowledge tracing kernels (BKT with forgetting).

`ext/bkt.pyx` must return what this module returns, to rounding: this is the readable statement of
the model, and the baseline the kernel is checked against.

The model is a two-state hidden Markov model per skill. State 0: the skill is not mastered; state 1:
it is. Per skill, `params` holds one row of PARAMS:
  prior   P(mastered before the first answer)
  learn   P(not mastered -> mastered) between two answers on the skill
  forget  P(mastered -> not mastered) between two answers on the skill
  guess   P(correct | not mastered)
  slip    P(wrong | mastered)

A *sequence* is one student's answers on one skill, in order: rows seq_starts[k]:seq_starts[k+1]
of `correct`, modelled with the parameters of skill seq_skill[k].
"""

import math
from collections.abc import Sequence

import numpy as np

PARAMS = ("prior", "learn", "forget", "guess", "slip")
PRIOR, LEARN, FORGET, GUESS, SLIP = range(5)

# Expected counts gathered by the E step, one row per skill (see em_statistics).
STATS = (
    "prior_mastered",
    "sequences",
    "learned",
    "unmastered_before",
    "forgotten",
    "mastered_before",
    "correct_unmastered",
    "unmastered",
    "wrong_mastered",
    "mastered",
    "log_likelihood",
)
N_STATS = len(STATS)


def _emission(state: int, observed: int, guess: float, slip: float) -> float:
    if state == 1:
        return 1.0 - slip if observed else slip
    return guess if observed else 1.0 - guess


def em_statistics(
    correct: np.ndarray, seq_starts: np.ndarray, seq_skill: np.ndarray, params: np.ndarray
) -> np.ndarray:
    """The E step of Baum-Welch: expected counts per skill, shape (len(params), N_STATS).

    Forward-backward with scaling on every sequence; the last column is the log-likelihood.
    """
    stats = np.zeros((params.shape[0], N_STATS))
    for k in range(len(seq_skill)):
        begin, end = int(seq_starts[k]), int(seq_starts[k + 1])
        if end <= begin:
            continue
        s = int(seq_skill[k])
        prior, learn, forget, guess, slip = (float(v) for v in params[s])
        move = ((1.0 - learn, learn), (forget, 1.0 - forget))
        obs = [int(o) for o in correct[begin:end]]
        n = len(obs)
        alpha: list[tuple[float, float]] = []
        scale: list[float] = []
        before = (1.0 - prior, prior)
        for t in range(n):
            if t > 0:
                a0, a1 = alpha[-1]
                before = (a0 * move[0][0] + a1 * move[1][0], a0 * move[0][1] + a1 * move[1][1])
            e0 = before[0] * _emission(0, obs[t], guess, slip)
            e1 = before[1] * _emission(1, obs[t], guess, slip)
            total = e0 + e1
            alpha.append((e0 / total, e1 / total))
            scale.append(total)
        row = stats[s]
        row[10] += sum(math.log(c) for c in scale)
        row[1] += 1.0
        beta = (1.0, 1.0)
        for t in range(n - 1, -1, -1):
            gamma = (alpha[t][0] * beta[0], alpha[t][1] * beta[1])
            if t == 0:
                row[0] += gamma[1]
            row[6] += gamma[0] * obs[t]
            row[7] += gamma[0]
            row[8] += gamma[1] * (1 - obs[t])
            row[9] += gamma[1]
            if t < n - 1:
                # Time spent in each state with a transition still to come.
                row[3] += gamma[0]
                row[5] += gamma[1]
            if t > 0:
                # Transitions from t-1 to t, and beta for t-1.
                weighted = (
                    _emission(0, obs[t], guess, slip) * beta[0] / scale[t],
                    _emission(1, obs[t], guess, slip) * beta[1] / scale[t],
                )
                p0, p1 = alpha[t - 1]
                row[2] += p0 * move[0][1] * weighted[1]
                row[4] += p1 * move[1][0] * weighted[0]
                beta = (
                    move[0][0] * weighted[0] + move[0][1] * weighted[1],
                    move[1][0] * weighted[0] + move[1][1] * weighted[1],
                )
    return stats


def update(mastery: float, observed: int, params: Sequence[float]) -> tuple[float, float]:
    """One answer: (P(correct) predicted before it, P(mastered) at the next answer after it)."""
    _, learn, forget, guess, slip = params
    predicted = mastery * (1.0 - slip) + (1.0 - mastery) * guess
    if observed:
        posterior = mastery * (1.0 - slip) / predicted
    else:
        posterior = mastery * slip / (1.0 - predicted)
    return predicted, posterior * (1.0 - forget) + (1.0 - posterior) * learn


def forward_predict(
    correct: np.ndarray, seq_starts: np.ndarray, seq_skill: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step ahead: P(correct) of every answer from the earlier answers of its sequence only,
    and P(mastered) after each sequence's last answer (at its next opportunity)."""
    predicted = np.empty(correct.shape[0])
    final = np.empty(len(seq_skill))
    for k in range(len(seq_skill)):
        begin, end = int(seq_starts[k]), int(seq_starts[k + 1])
        skill_params = params[int(seq_skill[k])]
        mastery = float(skill_params[PRIOR])
        for t in range(begin, end):
            predicted[t], mastery = update(mastery, int(correct[t]), skill_params)
        final[k] = mastery
    return predicted, final
