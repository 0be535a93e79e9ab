"""A simulated tutoring market: hidden knowledge and effectiveness, requests over simulated weeks.

Students have hidden per-skill knowledge; teachers have hidden per-skill effectiveness (a general
talent, a per-subject strength, a per-skill strength and a knack for students at some mastery
level) that their stated expertise only loosely reflects, and a charm that drives their ratings but
not what students learn. Requests arrive at every slot of the week (weekday evenings), more at peak
hours than supply can serve; unserved requests wait for the next slot.

A session's gain on a skill is (effectiveness + band knack) × (1 − knowledge) plus noise; what the
policies see is competency tracking's noisy estimate of the student's mastery before and after, and
a rating. Policies compared on identical arrivals:

- random: each request, oldest first, to a random available teacher with a free place;
- popular: the student picks the most popular such teacher (most good ratings so far, and charm);
- stated: the teacher with the highest stated expertise on the skills;
- ours: central.matching's batch assignment, learning profiles from the outcomes as it goes;
- oracle: the same batch assignment given the hidden effectiveness instead of learned profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from central.matching.assignment import assign
from central.matching.catalog import Catalog
from central.matching.config import MatchingRules
from central.matching.profiles import N_BANDS, Outcome, TeacherProfiles, mastery_band
from central.matching.ranking import Matcher
from central.matching.requests import CompiledRequest, TutoringRequest, compile_request
from central.matching.teachers import TeacherSpec, TeacherTable

SUBJECTS = {
    "maths": ["place-value", "fractions", "decimals", "geometry", "equations", "word-problems"],
    "chinese": ["characters", "reading", "composition", "poetry", "grammar", "idioms"],
    "english": ["vocabulary", "tenses", "reading", "listening", "writing", "phonics"],
    "science": ["forces", "circuits", "plants", "matter", "space", "energy"],
}
SKILLS = [f"{subject}.{name}" for subject, names in SUBJECTS.items() for name in names]
DAYS = 5  # Monday to Friday
SLOT_HOURS = (17, 18, 19)
SLOTS_PER_WEEK = DAYS * len(SLOT_HOURS)
POLICIES = ("random", "popular", "stated", "ours", "oracle")


@dataclass
class MarketConfig:
    teachers: int = 300
    students: int = 3000
    sessions: int = 10_000
    rural_share: float = 0.4
    # Mean requests per slot relative to the mean free places; peaks go well above 1.
    demand_ratio: float = 0.55
    peak_factors: tuple[float, ...] = (0.5, 1.0, 2.2)  # by hour of the evening
    slots_available: int = 5  # of the 15 weekly slots, per teacher
    max_wait_slots: int = 6  # after that a request is abandoned (counted)
    observation_sd: float = 0.04  # competency tracking's error on mastery
    seed: int = 1


@dataclass
class Population:
    """The hidden truth and the teachers' stated side."""

    specs: list[TeacherSpec]
    effectiveness: np.ndarray  # (teachers, skills)
    band_knack: np.ndarray  # (teachers, bands)
    charm: np.ndarray  # (teachers,)
    knowledge: np.ndarray  # (students, skills)
    rural: np.ndarray  # (students,) bool
    grade: np.ndarray  # (students,)
    slot_available: np.ndarray  # (teachers, SLOTS_PER_WEEK) bool


def slot_hour(slot: int) -> int:
    """Hour of the week of a weekly slot index."""
    day, hour = divmod(slot % SLOTS_PER_WEEK, len(SLOT_HOURS))
    return day * 24 + SLOT_HOURS[hour]


def make_population(config: MarketConfig) -> Population:
    rng = np.random.default_rng(config.seed)
    n, k = config.teachers, len(SKILLS)
    subject_of = np.repeat(np.arange(len(SUBJECTS)), [len(v) for v in SUBJECTS.values()])
    talent = rng.normal(0.25, 0.09, n)
    subject_strength = rng.normal(0.0, 0.07, (n, len(SUBJECTS)))
    skill_strength = rng.normal(0.0, 0.04, (n, k))
    effectiveness = np.clip(
        talent[:, None] + subject_strength[:, subject_of] + skill_strength, 0.02, 0.8
    )
    band_knack = rng.normal(0.0, 0.04, (n, N_BANDS))
    charm = rng.normal(0.0, 1.0, n)
    slot_available = np.zeros((n, SLOTS_PER_WEEK), dtype=bool)
    specs = []
    for t in range(n):
        taught = rng.choice(len(SUBJECTS), size=rng.integers(1, 3), replace=False)
        skills = {}
        for s in np.flatnonzero(np.isin(subject_of, taught)):
            # Self-ratings follow real effectiveness only loosely.
            signal = 0.5 + 2.0 * (effectiveness[t, s] - 0.25) + rng.normal(0.0, 0.2)
            skills[SKILLS[s]] = round(float(np.clip(signal, 0.0, 1.0)), 3)
        low = int(rng.integers(1, 8))
        slots = rng.choice(SLOTS_PER_WEEK, size=config.slots_available, replace=False)
        slot_available[t, slots] = True
        blocks = [(int(slot_hour(s) // 24), int(slot_hour(s) % 24), int(slot_hour(s) % 24) + 1)
                  for s in sorted(slots)]  # fmt: skip
        specs.append(
            TeacherSpec(
                teacher_id=f"teacher-{t:05d}",
                skills=skills,
                grades=list(range(low, low + 4)),
                languages=["zh"] if rng.random() < 0.8 else ["zh", "en"],
                availability=blocks,
                capacity=int(rng.integers(1, 4)),
            )
        )
    rural = rng.random(config.students) < config.rural_share
    knowledge = np.where(
        rural[:, None],
        rng.beta(1.5, 3.5, (config.students, k)),
        rng.beta(2.5, 3.0, (config.students, k)),
    )
    grade = rng.integers(2, 10, config.students)
    return Population(
        specs, effectiveness, band_knack, charm, knowledge, rural, grade, slot_available
    )


def history(
    population: Population, sessions: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Past single-skill sessions with random pairings, as (teacher, skill, before, after) arrays
    of what competency tracking observed: the record a city's profiles would be loaded from."""
    rng = np.random.default_rng(seed)
    n_teachers, n_skills = population.effectiveness.shape
    teacher = rng.integers(0, n_teachers, sessions)
    stated = np.array([[SKILLS[s] in spec.skills for s in range(n_skills)]
                       for spec in population.specs])  # fmt: skip
    # A teacher only tutors skills of the subjects they state.
    pick = (rng.random(sessions) * stated.sum(axis=1)[teacher]).astype(np.int64)
    skill = np.argmax(np.cumsum(stated[teacher], axis=1) > pick[:, None], axis=1)
    before = rng.beta(2.0, 3.0, sessions)
    band = mastery_band(before)
    eff = population.effectiveness[teacher, skill] + population.band_knack[teacher, band]
    gain = np.clip(eff * (1 - before) + rng.normal(0, 0.02, sessions), -before, 1 - before)
    observe = lambda v: np.clip(v + rng.normal(0, 0.04, sessions), 0, 1)  # noqa: E731
    return teacher, skill, observe(before), observe(before + gain)


class OracleProfiles(TeacherProfiles):
    """Profiles that know the hidden truth: what the best possible learner would converge to."""

    def __init__(self, population: Population, matcher_profiles: TeacherProfiles) -> None:
        super().__init__(
            np.zeros_like(population.effectiveness),
            matcher_profiles.skill_subject,
            matcher_profiles.prior,
        )
        self.truth = population.effectiveness
        self.knack = population.band_knack
        # Everyone has passed probation: the oracle needs no exploration.
        self.sessions[:] = np.iinfo(np.int64).max // 2

    def effectiveness(
        self, skill: int, teachers: np.ndarray | slice = slice(None)
    ) -> tuple[np.ndarray, np.ndarray]:
        mean = self.truth[teachers, skill]
        return mean, np.zeros_like(mean)

    def band_adjustment(self, band: int, teachers: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.knack[teachers, band]


@dataclass
class Pending:
    request: TutoringRequest
    student: int
    skills: list[int]
    arrived_slot: int


@dataclass
class PolicyResult:
    sessions: int = 0
    total_gain: float = 0.0
    gains: list[float] = field(default_factory=list)
    waits_priority: list[int] = field(default_factory=list)
    waits_other: list[int] = field(default_factory=list)
    abandoned: int = 0
    max_load_over_capacity: float = 0.0
    over_capacity: int = 0

    @property
    def mean_gain(self) -> float:
        return self.total_gain / max(self.sessions, 1)

    def mean_gain_until(self, sessions: int) -> float:
        head = self.gains[:sessions]
        return float(np.mean(head)) if head else float("nan")

    def mean_gain_after(self, warmup: int) -> float:
        tail = self.gains[warmup:]
        return float(np.mean(tail)) if tail else float("nan")


Chooser = Callable[[list[Pending], np.ndarray, int], np.ndarray]


class Market:
    """One run of one policy over the simulated weeks; arrivals depend only on the seed."""

    def __init__(
        self, config: MarketConfig, population: Population, rules: MatchingRules, policy: str
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: choose from {', '.join(POLICIES)}")
        self.config = config
        self.population = population
        self.rules = rules
        self.policy = policy
        self.catalog = Catalog()
        for skill in SKILLS:
            self.catalog.add_skill(skill)
        self.teachers = TeacherTable.build(self.catalog, population.specs)
        profiles = TeacherProfiles(self.teachers.stated, self.catalog.skill_subject, rules.prior)
        self.matcher = Matcher(self.catalog, self.teachers, profiles, rules)
        if policy == "oracle":
            self.matcher = Matcher(
                self.catalog, self.teachers, OracleProfiles(population, profiles), rules
            )
        self.knowledge = population.knowledge.copy()
        self.good_ratings = np.zeros(len(self.teachers))
        self.arrivals = np.random.default_rng(config.seed + 1)
        self.outcomes_rng = np.random.default_rng(config.seed + 2)
        self.choice_rng = np.random.default_rng(config.seed + 3)
        self.assign_rng = np.random.default_rng(config.seed + 4)
        mean_places = float(
            (population.slot_available * self.teachers.capacity[:, None]).sum(0).mean()
        )
        self.mean_demand = config.demand_ratio * mean_places

    def run(self, progress: Callable[[int], None] | None = None) -> PolicyResult:
        result = PolicyResult()
        pending: list[Pending] = []
        slot = 0
        while result.sessions < self.config.sessions:
            pending.extend(self._arrivals(slot))
            load = np.zeros(len(self.teachers), dtype=np.int64)
            chosen = self._choose(pending, slot)
            np.add.at(load, chosen[chosen >= 0], 1)
            over = load - self.teachers.capacity
            result.over_capacity += int((over > 0).sum())
            ratio = load / self.teachers.capacity
            result.max_load_over_capacity = max(result.max_load_over_capacity, float(ratio.max()))
            served = [(p, int(t)) for p, t in zip(pending, chosen, strict=True) if t >= 0]
            self._sessions(served, slot, result)
            waiting = []
            for p, t in zip(pending, chosen, strict=True):
                if t >= 0:
                    continue
                if slot - p.arrived_slot >= self.config.max_wait_slots:
                    result.abandoned += 1
                else:
                    waiting.append(p)
            pending = waiting
            slot += 1
            if progress is not None:
                progress(result.sessions)
        return result

    def _arrivals(self, slot: int) -> list[Pending]:
        peak = self.config.peak_factors[slot % len(SLOT_HOURS)]
        scale = self.mean_demand / float(np.mean(self.config.peak_factors))
        count = int(self.arrivals.poisson(scale * peak))
        students = self.arrivals.integers(0, self.config.students, count)
        two_skills = self.arrivals.random(count) < 0.2
        picks = self.arrivals.random((count, 2))
        out = []
        for i, student in enumerate(students):
            # Students ask about what they know least (weights from the current knowledge).
            weakness = (1.0 - self.knowledge[student]) ** 2
            cumulative = np.cumsum(weakness / weakness.sum())
            first = int(np.searchsorted(cumulative, picks[i, 0]))
            skills = [min(first, len(SKILLS) - 1)]
            if two_skills[i]:
                per = len(SKILLS) // len(SUBJECTS)
                start = skills[0] // per * per
                other = start + int(picks[i, 1] * per)
                if other != skills[0]:
                    skills.append(other)
            out.append(self._request(int(student), skills, slot))
        return out

    def _request(self, student: int, skills: list[int], slot: int) -> Pending:
        hour = slot_hour(slot)
        observed = self._observe(self.knowledge[student, skills])
        request = TutoringRequest(
            request_id=f"r{slot}-{student}-{skills[0]}",
            student_id=f"student-{student:05d}",
            skills=[SKILLS[s] for s in skills],
            mastery={SKILLS[s]: float(m) for s, m in zip(skills, observed, strict=True)},
            window_start_hour=hour,
            window_end_hour=hour + 1,
            grade=int(self.population.grade[student]),
            languages=["zh"],
            attributes={"rural": bool(self.population.rural[student])},
        )
        return Pending(request, student, skills, slot)

    def _observe(self, truth: np.ndarray) -> np.ndarray:
        noisy = truth + self.outcomes_rng.normal(0.0, self.config.observation_sd, truth.shape)
        return np.clip(noisy, 0.0, 1.0)

    def _choose(self, pending: list[Pending], slot: int) -> np.ndarray:
        if not pending:
            return np.zeros(0, dtype=np.int64)
        compiled = [self._compile(p, slot) for p in pending]
        if self.policy in ("ours", "oracle"):
            return assign(self.matcher, compiled, rng=self.assign_rng).teacher
        return self._sequential(pending, compiled)

    def _compile(self, p: Pending, slot: int) -> CompiledRequest:
        hour = slot_hour(slot)
        # A waiting request asks for the current slot now; waiting also raises its priority.
        waited = slot - p.arrived_slot
        request = p.request.model_copy(
            update={"window_start_hour": hour, "window_end_hour": hour + 1, "waited_slots": waited}
        )
        return compile_request(request, self.catalog, self.rules)

    def _sequential(self, pending: list[Pending], compiled: list[CompiledRequest]) -> np.ndarray:
        """Baselines: requests one at a time, oldest first, each taking a teacher with a place."""
        capacity = self.teachers.capacity.astype(np.int64)
        load = np.zeros(len(self.teachers), dtype=np.int64)
        zero = np.zeros(len(self.teachers), dtype=np.int64)
        chosen = np.full(len(pending), -1, dtype=np.int64)
        order = sorted(range(len(pending)), key=lambda i: (pending[i].arrived_slot, i))
        for i in order:
            ok = self.matcher.feasible(compiled[i], zero) & (load < capacity)
            rows = np.flatnonzero(ok)
            if rows.size == 0:
                continue
            if self.policy == "random":
                pick = int(self.choice_rng.choice(rows))
            elif self.policy == "popular":
                popularity = self.good_ratings[rows] + 2.0 * self.population.charm[rows]
                pick = int(rows[np.argmax(popularity)])
            else:
                stated = self.teachers.stated[rows][:, list(compiled[i].skills)].mean(axis=1)
                pick = int(rows[np.argmax(stated)])
            chosen[i] = pick
            load[pick] += 1
        return chosen

    def _sessions(self, served: Sequence[tuple[Pending, int]], slot: int, result: PolicyResult):
        outcomes = []
        for p, teacher in served:
            truth_before = self.knowledge[p.student, p.skills]
            band = int(mastery_band(float(truth_before.mean())))
            eff = (
                self.population.effectiveness[teacher, p.skills]
                + (self.population.band_knack[teacher, band])
            )
            noise = self.outcomes_rng.normal(0.0, 0.02, len(p.skills))
            gain = np.clip(eff * (1.0 - truth_before) + noise, -truth_before, 1.0 - truth_before)
            self.knowledge[p.student, p.skills] = truth_before + gain
            mean_gain = float(gain.mean())
            rating_signal = 3.3 + 0.8 * self.population.charm[teacher] + 3.0 * mean_gain
            rating = int(np.clip(round(rating_signal + self.outcomes_rng.normal(0, 0.7)), 1, 5))
            self.good_ratings[teacher] += rating >= 4
            outcomes.append(
                Outcome(
                    teacher=teacher,
                    skills=p.skills,
                    before=[float(v) for v in self._observe(truth_before)],
                    after=[float(v) for v in self._observe(truth_before + gain)],
                    rating=rating,
                )
            )
            result.sessions += 1
            result.total_gain += mean_gain
            result.gains.append(mean_gain)
            wait = slot - p.arrived_slot
            (result.waits_priority if p.request.attributes["rural"] else result.waits_other).append(
                wait
            )
        if self.policy == "ours":
            rejected = self.matcher.profiles.observe(outcomes)
            if rejected:
                raise RuntimeError(f"the simulator produced {rejected} malformed outcomes")


def run_policies(
    config: MarketConfig,
    rules: MatchingRules,
    policies: Sequence[str] = POLICIES,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, PolicyResult]:
    population = make_population(config)
    results = {}
    for policy in policies:
        market = Market(config, population, rules, policy)
        report = None if progress is None else (lambda n, p=policy: progress(p, n))
        results[policy] = market.run(report)
    return results
