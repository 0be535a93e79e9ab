"""Tutoring matching library: rules, learned profiles, ranking with reasons, batch assignment."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from central.matching.assignment import SERVE_BASE, assign
from central.matching.catalog import Catalog
from central.matching.config import DEFAULT_RULES_PATH, MatchingRules, load_rules
from central.matching.profiles import Outcome, TeacherProfiles
from central.matching.ranking import Matcher
from central.matching.requests import TutoringRequest, compile_request
from central.matching.teachers import TeacherSpec, TeacherTable

EVENINGS = [(day, 17, 20) for day in range(5)]


def teacher(teacher_id: str, **overrides: object) -> TeacherSpec:
    fields: dict[str, object] = {
        "teacher_id": teacher_id,
        "skills": {"maths.fractions": 0.5, "maths.decimals": 0.5},
        "grades": [3, 4, 5],
        "languages": ["zh"],
        "availability": EVENINGS,
        "capacity": 2,
    }
    fields.update(overrides)
    return TeacherSpec.model_validate(fields)


def request(request_id: str = "r1", **overrides: object) -> TutoringRequest:
    fields: dict[str, object] = {
        "request_id": request_id,
        "student_id": f"s-{request_id}",
        "skills": ["maths.fractions"],
        "mastery": {"maths.fractions": 0.3},
        "window_start_hour": 17,  # Monday 17:00-19:00
        "window_end_hour": 19,
        "grade": 4,
        "languages": ["zh"],
    }
    fields.update(overrides)
    return TutoringRequest.model_validate(fields)


def rules(**overrides: object) -> MatchingRules:
    data = load_rules().model_dump()
    for section, values in overrides.items():
        if isinstance(values, dict):
            data[section].update(values)
        else:
            data[section] = values
    return MatchingRules.model_validate(data)


def matcher(specs: list[TeacherSpec], matching_rules: MatchingRules | None = None) -> Matcher:
    matching_rules = matching_rules or rules()
    catalog = Catalog()
    table = TeacherTable.build(catalog, specs)
    profiles = TeacherProfiles(table.stated, catalog.skill_subject, matching_rules.prior)
    return Matcher(catalog, table, profiles, matching_rules)


def outcomes(m: Matcher, row: int, gain_share: float, n: int) -> list[Outcome]:
    """n sessions on fractions where the student closes `gain_share` of the gap to mastery."""
    skill = m.catalog.skill_index("maths.fractions")
    return [
        Outcome(teacher=row, skills=[skill], before=[0.3], after=[0.3 + 0.7 * gain_share], rating=4)
        for _ in range(n)
    ]


# --- rules -------------------------------------------------------------------------------------


def test_shipped_rules_load_and_json_gives_the_same(tmp_path: Path) -> None:
    shipped = load_rules(DEFAULT_RULES_PATH)
    assert shipped.priority_groups[0].name == "rural"
    assert shipped.group_of({"rural": True}).name == "rural"
    assert shipped.group_of({"rural": False}) is None
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps(shipped.model_dump()))
    assert load_rules(as_json) == shipped


def test_misspelt_rule_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('wait_bonus_per_slt = 0.1\n[exploration]\nmethod = "ucb"\n')
    with pytest.raises(ValueError, match="wait_bonus_per_slt"):
        load_rules(bad)
    (tmp_path / "rules.yaml").write_text("{}")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        load_rules(tmp_path / "rules.yaml")


def test_bad_teacher_and_request_are_refused() -> None:
    with pytest.raises(ValidationError, match="not within 0..1"):
        teacher("t", skills={"maths.fractions": 1.5})
    with pytest.raises(ValidationError, match="availability block"):
        teacher("t", availability=[(7, 17, 18)])
    with pytest.raises(ValidationError, match="ends before it starts"):
        request(window_start_hour=20, window_end_hour=18)
    m = matcher([teacher("t")])
    with pytest.raises(KeyError, match="unknown skill"):
        compile_request(request(skills=["music.rhythm"]), m.catalog, m.rules)


# --- profiles ----------------------------------------------------------------------------------


def test_profiles_learn_from_outcomes_and_grow_certain() -> None:
    # t0 states high expertise but helps little; t1 states little but helps a lot.
    m = matcher([teacher("t0", skills={"maths.fractions": 0.9}),
                 teacher("t1", skills={"maths.fractions": 0.2})])  # fmt: skip
    skill = m.catalog.skill_index("maths.fractions")
    prior_mean, prior_sd = m.profiles.effectiveness(skill)
    assert prior_mean[0] > prior_mean[1]  # before evidence, stated expertise decides
    m.profiles.observe(outcomes(m, 0, 0.05, 30) + outcomes(m, 1, 0.45, 30))
    mean, sd = m.profiles.effectiveness(skill)
    assert mean[1] > mean[0] + 0.2
    assert mean[1] == pytest.approx(0.45, abs=0.08)
    assert np.all(sd < prior_sd / 2)
    assert m.profiles.sessions.tolist() == [30, 30]


def test_malformed_outcomes_are_counted_not_learned() -> None:
    m = matcher([teacher("t0")])
    skill = m.catalog.skill_index("maths.fractions")
    bad = [
        Outcome(teacher=0, skills=[skill], before=[0.3], after=[1.4]),
        Outcome(teacher=5, skills=[skill], before=[0.3], after=[0.4]),
        Outcome(teacher=0, skills=[skill], before=[0.3, 0.2], after=[0.4]),
        Outcome(teacher=0, skills=[skill], before=[float("nan")], after=[0.4]),
        Outcome(teacher=0, skills=[skill], before=[0.3], after=[0.4], rating=9),
    ]
    assert m.profiles.observe(bad) == len(bad)
    assert m.profiles.sessions.tolist() == [0]
    assert m.profiles.observe_skills([0, 0], [skill, 99], [0.2, 0.2], [0.3, 0.3]) == 1


def test_calibration_recovers_the_stated_to_effectiveness_line() -> None:
    rng = np.random.default_rng(3)
    levels = rng.uniform(0, 1, 200)
    specs = [teacher(f"t{i}", skills={"maths.fractions": float(v)}) for i, v in enumerate(levels)]
    m = matcher(specs, rules(prior={"calibrate_after": 1000, "base": 0.0, "slope": 0.0}))
    skill = m.catalog.skill_index("maths.fractions")
    rows = np.repeat(np.arange(200), 10)
    before = rng.uniform(0.1, 0.6, rows.size)
    true_eff = 0.1 + 0.3 * levels[rows]
    after = before + true_eff * (1 - before) + rng.normal(0, 0.01, rows.size)
    m.profiles.observe_skills(rows, np.full(rows.size, skill), before, np.clip(after, 0, 1))
    assert m.profiles.base == pytest.approx(0.1, abs=0.03)
    assert m.profiles.slope == pytest.approx(0.3, abs=0.05)
    assert np.sqrt(m.profiles.noise_var) < 0.1


# --- ranking -----------------------------------------------------------------------------------


def test_ranking_filters_and_explains() -> None:
    specs = [
        teacher("good"),
        teacher("english-only", languages=["en"]),
        teacher("wrong-grades", grades=[9, 10]),
        teacher("other-subject", skills={"english.tenses": 0.9}),
        teacher("away", availability=[(2, 8, 12)]),
        teacher("full", capacity=1),
        teacher("poor"),
    ]
    m = matcher(specs)
    m.profiles.observe(outcomes(m, 0, 0.5, 12) + outcomes(m, 5, 0.5, 12) + outcomes(m, 6, 0.02, 12))
    load = np.zeros(len(specs), dtype=np.int32)
    load[5] = 1
    ranked = m.rank(compile_request(request(), m.catalog, m.rules), load)
    assert [r.teacher_id for r in ranked] == ["good", "poor"]
    best = ranked[0].reasons
    assert best.skill_fit[0].skill == "maths.fractions"
    assert best.skill_fit[0].sessions == 12
    assert best.similar_students.band == "struggling"
    assert best.similar_students.sessions == 12
    assert best.similar_students.mean_gain == pytest.approx(0.35)
    assert best.availability.hours_in_window == best.availability.window_hours == 2
    assert best.load.current == 0 and best.load.capacity == 2
    assert best.new_teacher is False
    assert ranked[0].expected_gain > ranked[1].expected_gain
    assert len(best.summary) >= 4


def test_new_teachers_get_a_bounded_exploration_bonus() -> None:
    m = matcher([teacher("proven"), teacher("new")])
    m.profiles.observe(outcomes(m, 0, 0.3, 40))
    ranked = {r.teacher_id: r for r in m.rank(compile_request(request(), m.catalog, m.rules))}
    new, proven = ranked["new"].reasons, ranked["proven"].reasons
    assert new.new_teacher and not proven.new_teacher
    assert 0 < new.exploration_bonus <= m.rules.exploration.max_bonus
    assert new.exploration_bonus > proven.exploration_bonus
    # Probation: a new teacher offers at most probation_capacity places at once.
    assert new.load.capacity == m.rules.exploration.probation_capacity
    none = matcher([teacher("a")], rules(exploration={"method": "none"}))
    assert (
        none.rank(compile_request(request(), none.catalog, none.rules))[0].reasons.exploration_bonus
        == 0
    )


def test_load_lowers_the_score() -> None:
    m = matcher([teacher("a", capacity=4), teacher("b", capacity=4)],
                rules(exploration={"probation_sessions": 0}))  # fmt: skip
    load = np.array([3, 0], dtype=np.int32)
    ranked = m.rank(compile_request(request(), m.catalog, m.rules), load)
    assert [r.teacher_id for r in ranked] == ["b", "a"]
    assert ranked[1].reasons.load.current == 3


# --- assignment --------------------------------------------------------------------------------


def _random_market(seed: int, n_teachers: int, n_requests: int) -> tuple[Matcher, list]:
    rng = np.random.default_rng(seed)
    skills = ["maths.fractions", "maths.decimals", "science.forces"]
    specs = [
        teacher(
            f"t{i}",
            skills={s: float(rng.uniform()) for s in skills if rng.random() < 0.7}
            or {skills[0]: 0.5},
            capacity=int(rng.integers(1, 4)),
            availability=[(0, int(h), int(h) + 2) for h in rng.choice([16, 17, 18], 2)],
        )
        for i in range(n_teachers)
    ]  # fmt: skip
    m = matcher(specs, rules(exploration={"probation_sessions": 0}))
    known = [s for s in skills if m.catalog.skills.get(s) is not None]
    reqs = [
        compile_request(
            request(
                f"r{i}",
                skills=[known[int(rng.integers(len(known)))]],
                attributes={"rural": bool(rng.random() < 0.5)},
            ).model_copy(update={"mastery": {}}),
            m.catalog,
            m.rules,
        )
        for i in range(n_requests)
    ]
    return m, reqs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_teachers=st.integers(1, 12), n_requests=st.integers(1, 40))
def test_assignment_never_exceeds_capacity(seed: int, n_teachers: int, n_requests: int) -> None:
    m, reqs = _random_market(seed, n_teachers, n_requests)
    load = np.random.default_rng(seed).integers(0, 2, n_teachers)
    result = assign(m, reqs, load=load, rng=np.random.default_rng(seed))
    given_now = np.bincount(result.teacher[result.teacher >= 0], minlength=n_teachers)
    assert np.all(load + given_now <= m.teachers.capacity)
    for r, t in zip(reqs, result.teacher, strict=True):
        if t >= 0:
            assert m.feasible(r, np.zeros(n_teachers, dtype=np.int64))[t]
    # Unassigned only when every feasible teacher is full.
    total = load + given_now
    for r, t in zip(reqs, result.teacher, strict=True):
        if t < 0:
            ok = m.feasible(r, np.zeros(n_teachers, dtype=np.int64))
            assert np.all(total[ok] >= m.teachers.capacity[ok])


def test_assignment_is_optimal_on_a_small_market() -> None:
    """Against brute force over every capacity-respecting assignment."""
    flat = rules(exploration={"method": "none", "probation_sessions": 0},
                 ranking={"slot_penalty": 0.0})  # fmt: skip
    for seed in range(6):
        m, reqs = _random_market(seed, 3, 5)
        m = Matcher(m.catalog, m.teachers, m.profiles, flat)
        m.profiles.observe(
            [Outcome(teacher=t, skills=[0], before=[0.2], after=[0.2 + 0.1 * t]) for t in range(3)]
        )
        zero = np.zeros(3, dtype=np.int64)

        def value(r: int, t: int, m: Matcher = m, reqs: list = reqs) -> float:
            c = reqs[r]
            gain, _ = m.profiles.expected_gain(c.skills, c.mastery, np.array([t]))
            return c.serve_bonus + c.gain_weight * max(float(gain[0]), 0.0) + SERVE_BASE

        best = 0.0
        options = [[-1, *np.flatnonzero(m.feasible(r, zero)).tolist()] for r in reqs]
        for combo in itertools.product(*options):
            counts = np.bincount([t for t in combo if t >= 0], minlength=3)
            if np.all(counts <= m.teachers.capacity):
                best = max(best, sum(value(r, t) for r, t in enumerate(combo) if t >= 0))
        result = assign(m, reqs, rng=np.random.default_rng(seed))
        got = sum(value(r, int(t)) for r, t in enumerate(result.teacher) if t >= 0)
        assert got == pytest.approx(best, abs=1e-5)


def test_rural_students_first_when_demand_exceeds_supply() -> None:
    m = matcher([teacher("only", capacity=2)], rules(exploration={"probation_sessions": 0}))
    reqs = [
        compile_request(request(f"r{i}", attributes={"rural": i >= 3}), m.catalog, m.rules)
        for i in range(5)
    ]
    result = assign(m, reqs, rng=np.random.default_rng(0))
    assert sorted(np.flatnonzero(result.teacher >= 0).tolist()) == [3, 4]
    # With enough places everyone is served, rural or not.
    roomy = matcher([teacher("big", capacity=5)], m.rules)
    again = [compile_request(request(f"r{i}"), roomy.catalog, roomy.rules) for i in range(5)]
    assert np.all(assign(roomy, again).teacher == 0)


def test_probation_bounds_what_a_new_teacher_takes() -> None:
    m = matcher([teacher("new", capacity=10)])
    reqs = [compile_request(request(f"r{i}"), m.catalog, m.rules) for i in range(6)]
    result = assign(m, reqs)
    assert int((result.teacher == 0).sum()) == m.rules.exploration.probation_capacity
