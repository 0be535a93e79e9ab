"""The BKT kernels (ext.bkt) against their Python reference; the reference against brute force."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.tracing.bkt import DEFAULT_PARAMS, LOWER, UPPER, BktModel
from central.tracing.data import encode
from ext import bkt, bkt_ref


def _random_problem(seed: int, rows: int = 600, skills: int = 4):
    rng = np.random.default_rng(seed)
    correct = rng.integers(0, 2, rows).astype(np.int8)
    cuts = np.unique(np.concatenate([[0], rng.integers(0, rows, rows // 8), [rows]]))
    starts = cuts.astype(np.int64)
    seq_skill = rng.integers(0, skills, len(starts) - 1).astype(np.int32)
    params = np.column_stack(
        [
            rng.uniform(0.05, 0.95, skills),
            rng.uniform(0.01, 0.5, skills),
            rng.uniform(0.0, 0.3, skills),
            rng.uniform(0.02, 0.45, skills),
            rng.uniform(0.02, 0.45, skills),
        ]
    )
    return correct, starts, seq_skill, np.ascontiguousarray(params)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_kernel_agrees_with_reference(seed: int) -> None:
    problem = _random_problem(seed)
    np.testing.assert_allclose(
        bkt.em_statistics(*problem), bkt_ref.em_statistics(*problem), rtol=1e-10, atol=1e-10
    )
    fast, slow = bkt.forward_predict(*problem), bkt_ref.forward_predict(*problem)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-12)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-12)


def _brute_force(obs: list[int], p: np.ndarray) -> dict[str, float]:
    """Expected counts by summing over every hidden path (2^n of them)."""
    prior, learn, forget, guess, slip = p
    move = [[1 - learn, learn], [forget, 1 - forget]]

    def emit(state: int, o: int) -> float:
        return (1 - slip if o else slip) if state else (guess if o else 1 - guess)

    total = 0.0
    counts = dict.fromkeys(bkt_ref.STATS, 0.0)
    for path in itertools.product((0, 1), repeat=len(obs)):
        weight = (prior if path[0] else 1 - prior) * emit(path[0], obs[0])
        for t in range(1, len(obs)):
            weight *= move[path[t - 1]][path[t]] * emit(path[t], obs[t])
        total += weight
        counts["prior_mastered"] += weight * path[0]
        for t, (state, o) in enumerate(zip(path, obs, strict=True)):
            counts["correct_unmastered"] += weight * (state == 0) * o
            counts["unmastered"] += weight * (state == 0)
            counts["wrong_mastered"] += weight * state * (1 - o)
            counts["mastered"] += weight * state
            if t:
                before = path[t - 1]
                counts["learned"] += weight * (before == 0 and state == 1)
                counts["unmastered_before"] += weight * (before == 0)
                counts["forgotten"] += weight * (before == 1 and state == 0)
                counts["mastered_before"] += weight * (before == 1)
    result = {key: value / total for key, value in counts.items()}
    result["sequences"] = 1.0
    result["log_likelihood"] = math.log(total)
    return result


@pytest.mark.parametrize("obs", [[1], [0, 1], [1, 1, 0, 1], [0, 0, 1, 1, 1, 0, 1]])
def test_reference_matches_brute_force(obs: list[int]) -> None:
    params = np.array([[0.3, 0.2, 0.1, 0.25, 0.15]])
    stats = bkt_ref.em_statistics(
        np.array(obs, dtype=np.int8),
        np.array([0, len(obs)], dtype=np.int64),
        np.array([0], dtype=np.int32),
        params,
    )[0]
    expected = _brute_force(obs, params[0])
    for name, value in zip(bkt_ref.STATS, stats, strict=True):
        assert value == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def _simulate(rng: np.random.Generator, params: list[float], users: int, length: int):
    prior, learn, forget, guess, slip = params
    rows = []
    for user in range(users):
        mastered = rng.random() < prior
        for _ in range(length):
            p = 1 - slip if mastered else guess
            rows.append((f"u{user}", "s", int(rng.random() < p)))
            mastered = rng.random() >= forget if mastered else rng.random() < learn
    return rows


def test_em_raises_the_likelihood_and_recovers_parameters() -> None:
    truth = [0.3, 0.2, 0.02, 0.2, 0.1]
    answers = encode(_simulate(np.random.default_rng(3), truth, users=800, length=12))
    model = BktModel.fit(answers)
    fitted = model.params[0]
    np.testing.assert_allclose(fitted[[0, 1, 3, 4]], [0.3, 0.2, 0.2, 0.1], atol=0.07)
    assert fitted[2] < 0.08
    at_start = bkt.em_statistics(
        answers.correct,
        answers.user_starts,
        np.zeros(len(answers.user_names), np.int32),
        DEFAULT_PARAMS[np.newaxis, :].copy(),
    )
    assert model.log_likelihood > at_start[0, 10]


def test_one_sided_skills_keep_sensible_parameters() -> None:
    rows = [(f"u{u}", "easy", 1) for u in range(30) for _ in range(5)]
    rows += [(f"u{u}", "hard", 0) for u in range(30) for _ in range(5)]
    model = BktModel.fit(encode(rows))
    assert np.all((model.params >= LOWER) & (model.params <= UPPER))
    easy, hard = model.params
    assert easy[0] * (1 - easy[4]) + (1 - easy[0]) * easy[3] > 0.8
    assert hard[0] * (1 - hard[4]) + (1 - hard[0]) * hard[3] < 0.3
