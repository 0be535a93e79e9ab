"""The logistic model's features: the batch (numpy) version and the online one must agree, and
online predictions must equal the evaluated ones."""

import numpy as np

from central.tracing.data import encode
from central.tracing.features import DENSE, StudentState, batch_features
from central.tracing.logistic import LogisticModel


def _rows(seed: int, users: int = 12, answers: int = 40) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        ability = rng.normal()
        for _ in range(answers):
            skill = int(rng.integers(0, 6))
            p = 1 / (1 + np.exp(-(ability - skill * 0.3 + 0.5)))
            rows.append((f"u{user}", f"s{skill}", int(rng.random() < p)))
    return rows


def test_online_features_equal_batch_features() -> None:
    rows = _rows(1)
    answers = encode(rows)
    batch = batch_features(answers)
    states: dict[str, StudentState] = {}
    online = []
    for user, skill, correct in sorted(rows, key=lambda r: int(r[0][1:])):
        state = states.setdefault(user, StudentState())
        online.append(state.features(skill))
        state.record(skill, bool(correct))
    assert batch.shape == (len(rows), len(DENSE))
    np.testing.assert_allclose(np.array(online), batch, rtol=1e-12, atol=1e-12)


def test_interleaved_users_keep_their_own_order() -> None:
    rows = [("a", "x", 1), ("b", "x", 0), ("a", "x", 0), ("b", "y", 1), ("a", "y", 1)]
    answers = encode(rows)
    assert answers.user_names == ["a", "b"]
    assert answers.correct.tolist() == [1, 0, 1, 0, 1]
    features = batch_features(answers)
    # a's third answer (skill y) comes after one success and one failure overall.
    assert features[2, DENSE.index("log_total_successes")] == np.log1p(1)
    assert features[2, DENSE.index("log_total_failures")] == np.log1p(1)
    assert features[2, DENSE.index("first_on_skill")] == 1.0


def test_online_predictions_equal_evaluated_ones() -> None:
    train = encode(_rows(2, users=40))
    model = LogisticModel.fit(train)
    test_rows = _rows(3, users=5) + [("new", "never-seen-skill", 1), ("new", "s1", 0)]
    test = encode(test_rows, train.skill_names)
    batch = model.predict(test)
    state_by_user: dict[str, StudentState] = {}
    online = np.empty(test.size)
    position = {user: i for i, user in enumerate(test.user_names)}
    starts = test.user_starts
    seen = dict.fromkeys(position, 0)
    for user, skill, correct in test_rows:
        state = state_by_user.setdefault(user, StudentState())
        online[starts[position[user]] + seen[user]] = model.predict_next(state, skill)
        seen[user] += 1
        state.record(skill, bool(correct))
    np.testing.assert_allclose(online, batch, rtol=1e-10)
    restored = StudentState.from_json(state_by_user["u0"].to_json())
    assert restored == state_by_user["u0"]
    again = LogisticModel.from_json(model.to_json())
    np.testing.assert_allclose(again.predict(test), batch, rtol=1e-12)
