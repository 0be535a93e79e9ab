"""Teacher profiles learned from session outcomes, with uncertainty.

Model (per teacher t, skill s): a session's gain on s is `eff[t, s] × headroom + noise`, where
headroom = 1 − the student's mastery before the session. So `(after − before) / headroom` is a noisy
observation of eff with weight headroom² (a nearly-mastered skill says little about the teacher).

eff[t, s] = prior(stated expertise) + teacher[t] + subject[t, subject(s)] + cell[t, s]: the
teacher and subject terms pool evidence across a teacher's skills, so a few sessions already move
every related estimate, and the cell term picks up skill-specific strength as its own evidence
builds. All terms are Gaussian; the model keeps sufficient statistics (weight, weighted sum and sum
of squares per teacher and skill), so an update is O(1) per observation and the posterior for all
teachers on a skill is one vectorised expression (terms are estimated top-down, each shrunk to
its prior: a fast approximation of the joint posterior). With enough data the prior's base and
slope on stated expertise and the noise level are re-estimated from the observations themselves.

"Similar students" are students in the same mastery band (below 0.4, up to 0.7, above) on the
requested skills: per teacher and band we keep the residual against the skill estimate, which lets a
teacher who is unusually good with struggling students rank higher for them.

Ratings (1..5) are kept as a Beta posterior of "rated 4 or 5"; students rate charm as much as
learning, so ratings are shown as a reason and weigh only a little in ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from central.matching.config import ProfilePrior

BAND_EDGES = (0.4, 0.7)
BAND_NAMES = ("struggling", "developing", "secure")
N_BANDS = len(BAND_NAMES)


def mastery_band(mastery: np.ndarray | float) -> np.ndarray:
    return np.searchsorted(np.asarray(BAND_EDGES), np.asarray(mastery), side="right")


@dataclass(frozen=True)
class Snapshot:
    mean: np.ndarray  # (skills, teachers) posterior mean effectiveness
    var: np.ndarray  # (skills, teachers) its variance
    band: np.ndarray  # (bands, teachers) adjustment for students of each mastery band


@dataclass
class Outcome:
    """One finished session: the student's mastery on each requested skill before and after (as
    estimated by competency tracking) and the student's rating 1..5 (None if not given)."""

    teacher: int
    skills: Sequence[int]
    before: Sequence[float]
    after: Sequence[float]
    rating: int | None = None


class TeacherProfiles:
    """Posterior effectiveness of every teacher on every skill; rows follow the TeacherTable."""

    def __init__(
        self, stated: np.ndarray, skill_subject: Sequence[int], prior: ProfilePrior
    ) -> None:
        self.prior = prior
        n, k = stated.shape
        if len(skill_subject) != k:
            raise ValueError(f"{len(skill_subject)} skill subjects for {k} skills")
        self.stated = stated.astype(np.float64)
        self.skill_subject = np.asarray(skill_subject, dtype=np.int64)
        n_subjects = int(self.skill_subject.max(initial=-1)) + 1
        # (skills, subjects) one-hot, to sum per-skill statistics into per-subject ones.
        self.subject_onehot = np.zeros((k, n_subjects))
        self.subject_onehot[np.arange(k), self.skill_subject] = 1.0
        self.base = prior.base
        self.slope = prior.slope
        self.noise_var = prior.noise_sd**2
        self.cell_w = np.zeros((n, k))
        self.cell_wy = np.zeros((n, k))
        self.cell_wyy = np.zeros((n, k))
        self.skill_sessions = np.zeros((n, k), dtype=np.int64)
        self.band_w = np.zeros((n, N_BANDS))
        self.band_s = np.zeros((n, N_BANDS))  # weighted residual against the skill estimate
        self.band_n = np.zeros((n, N_BANDS), dtype=np.int64)
        self.band_gain = np.zeros((n, N_BANDS))  # raw gain sum, for the reasons
        self.sessions = np.zeros(n, dtype=np.int64)
        self.rating_good = np.zeros(n)
        self.rating_n = np.zeros(n)
        self.observations = 0
        self._calibrated_at = 0
        self._snapshot: Snapshot | None = None
        self._derive()

    def _derive(self) -> None:
        """Prior means, prior strengths and the pooled statistics, after the prior changed."""
        self._snapshot = None
        self.prior_mean = self.base + self.slope * self.stated
        self.k_teacher = self.noise_var / self.prior.teacher_sd**2
        self.k_subject = self.noise_var / self.prior.subject_sd**2
        self.k_cell = self.noise_var / self.prior.cell_sd**2
        self.k_band = self.noise_var / self.prior.band_sd**2
        self.cell_dev = self.cell_wy - self.cell_w * self.prior_mean
        self.subject_w = self.cell_w @ self.subject_onehot
        self.subject_dev = self.cell_dev @ self.subject_onehot
        self.teacher_w = self.cell_w.sum(axis=1)
        self.teacher_dev = self.cell_dev.sum(axis=1)

    @property
    def n_teachers(self) -> int:
        return self.prior_mean.shape[0]

    def _terms(
        self, skill: int, teachers: np.ndarray | slice
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(teacher offset + subject offset, the cell's weight, the cell's deviation)."""
        tw = self.teacher_w[teachers]
        offset = self.teacher_dev[teachers] / (tw + self.k_teacher)
        subject = self.skill_subject[skill]
        sw = self.subject_w[teachers, subject]
        offset = offset + (self.subject_dev[teachers, subject] - sw * offset) / (
            sw + self.k_subject
        )
        return offset, self.cell_w[teachers, skill], self.cell_dev[teachers, skill]

    def effectiveness(
        self, skill: int, teachers: np.ndarray | slice = slice(None)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of eff[t, skill] for the given teachers."""
        offset, cw, dev = self._terms(skill, teachers)
        mean = self.prior_mean[teachers, skill] + offset + (dev - cw * offset) / (cw + self.k_cell)
        subject = self.skill_subject[skill]
        sw = self.subject_w[teachers, subject]
        tw = self.teacher_w[teachers]
        upper = self.noise_var / (sw + self.k_subject) + (
            self.k_subject / (sw + self.k_subject)
        ) ** 2 * self.noise_var / (tw + self.k_teacher)
        var = self.noise_var / (cw + self.k_cell) + (self.k_cell / (cw + self.k_cell)) ** 2 * upper
        return mean, np.sqrt(var)

    def band_adjustment(self, band: int, teachers: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.band_s[teachers, band] / (self.band_w[teachers, band] + self.k_band)

    def snapshot(self) -> Snapshot:
        """Posterior of every teacher on every skill at once, cached until the next update:
        ranking then only gathers rows instead of recomputing the model per request."""
        if self._snapshot is None:
            k = self.prior_mean.shape[1]
            stats = [self.effectiveness(skill) for skill in range(k)]
            self._snapshot = Snapshot(
                mean=np.ascontiguousarray(np.stack([m for m, _ in stats])),
                var=np.ascontiguousarray(np.stack([sd**2 for _, sd in stats])),
                band=np.ascontiguousarray(
                    np.stack([self.band_adjustment(b) for b in range(N_BANDS)])
                ),
            )
        return self._snapshot

    def expected_gain(
        self,
        skills: Sequence[int],
        mastery: Sequence[float] | np.ndarray,
        teachers: np.ndarray | slice = slice(None),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean over the requested skills of headroom × eff, and its sd, for the given teachers."""
        snap = self.snapshot()
        headroom = np.clip(1.0 - np.asarray(mastery, dtype=np.float64), 0.0, 1.0)
        band = int(mastery_band(float(np.mean(mastery))))
        columns = list(skills)
        n = len(columns)
        mean = headroom @ (snap.mean[columns][:, teachers] + snap.band[band, teachers]) / n
        sd = np.sqrt((headroom**2) @ snap.var[columns][:, teachers]) / n
        return mean, sd

    def rating_share(self, teachers: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Posterior mean share of good ratings under a Beta(1, 1) prior."""
        return (self.rating_good[teachers] + 1.0) / (self.rating_n[teachers] + 2.0)

    def observe(self, outcomes: Sequence[Outcome]) -> int:
        """Add outcomes; returns how many were rejected (and logged by the caller) as malformed."""
        teachers: list[int] = []
        skills: list[int] = []
        before: list[float] = []
        after: list[float] = []
        session_of: list[int] = []
        rejected = 0
        for index, outcome in enumerate(outcomes):
            if not self._valid(outcome):
                rejected += 1
                continue
            count = len(outcome.skills)
            self._snapshot = None
            teachers.extend([outcome.teacher] * count)
            skills.extend(outcome.skills)
            before.extend(outcome.before)
            after.extend(outcome.after)
            session_of.extend([index] * count)
            self.sessions[outcome.teacher] += 1
            if outcome.rating is not None:
                self.rating_n[outcome.teacher] += 1
                self.rating_good[outcome.teacher] += outcome.rating >= 4
        if teachers:
            self._observe_arrays(
                np.asarray(teachers), np.asarray(skills), np.asarray(before), np.asarray(after)
            )
        return rejected

    def _valid(self, outcome: Outcome) -> bool:
        n = len(outcome.skills)
        if n == 0 or len(outcome.before) != n or len(outcome.after) != n:
            return False
        if not 0 <= outcome.teacher < self.n_teachers:
            return False
        if any(not 0 <= s < self.prior_mean.shape[1] for s in outcome.skills):
            return False
        values = np.asarray([*outcome.before, *outcome.after], dtype=np.float64)
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            return False
        return outcome.rating is None or 1 <= outcome.rating <= 5

    def observe_skills(
        self, teachers: np.ndarray, skills: np.ndarray, before: np.ndarray, after: np.ndarray
    ) -> int:
        """Bulk per-skill observations (e.g. a history being loaded), each counted as a session;
        returns how many rows were rejected as malformed."""
        teachers, skills = np.asarray(teachers, np.int64), np.asarray(skills, np.int64)
        before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
        ok = (teachers >= 0) & (teachers < self.n_teachers)
        ok &= (skills >= 0) & (skills < self.prior_mean.shape[1])
        with np.errstate(invalid="ignore"):
            ok &= (before >= 0) & (before <= 1) & (after >= 0) & (after <= 1)
        np.add.at(self.sessions, teachers[ok], 1)
        self._snapshot = None
        if ok.any():
            self._observe_arrays(teachers[ok], skills[ok], before[ok], after[ok])
        return int((~ok).sum())

    def _observe_arrays(
        self, teachers: np.ndarray, skills: np.ndarray, before: np.ndarray, after: np.ndarray
    ) -> None:
        """Per-skill observations, vectorised; repeated (teacher, skill) pairs add up exactly."""
        self._snapshot = None
        headroom = np.maximum(1.0 - before, self.prior.min_headroom)
        y = (after - before) / headroom
        w = headroom**2
        band = mastery_band(before)
        # Residual against the estimate before this batch: what the band term should explain.
        estimate = np.empty_like(y)
        for skill in np.unique(skills):
            at = skills == skill
            estimate[at] = self.effectiveness(int(skill), teachers[at])[0]
        deviation = y - self.prior_mean[teachers, skills]
        subjects = self.skill_subject[skills]
        np.add.at(self.cell_w, (teachers, skills), w)
        np.add.at(self.cell_wy, (teachers, skills), w * y)
        np.add.at(self.cell_wyy, (teachers, skills), w * y * y)
        np.add.at(self.cell_dev, (teachers, skills), w * deviation)
        np.add.at(self.subject_w, (teachers, subjects), w)
        np.add.at(self.subject_dev, (teachers, subjects), w * deviation)
        np.add.at(self.teacher_w, teachers, w)
        np.add.at(self.teacher_dev, teachers, w * deviation)
        np.add.at(self.skill_sessions, (teachers, skills), 1)
        np.add.at(self.band_w, (teachers, band), w)
        np.add.at(self.band_s, (teachers, band), w * (y - estimate))
        np.add.at(self.band_n, (teachers, band), 1)
        np.add.at(self.band_gain, (teachers, band), after - before)
        self.observations += y.size
        calibrate_after = self.prior.calibrate_after
        # Re-estimating costs a pass over all cells: do it each time the evidence grew by half.
        if calibrate_after and self.observations >= max(calibrate_after, 1.5 * self._calibrated_at):
            self.calibrate()

    def calibrate(self) -> None:
        """Empirical Bayes: base and slope on stated expertise by weighted least squares over the
        observations, noise from the spread within each teacher-and-skill cell."""
        w, wy = self.cell_w, self.cell_wy
        x = self.stated
        sums = np.array([w.sum(), (w * x).sum(), (w * x * x).sum()])
        design = np.array([[sums[0], sums[1]], [sums[1], sums[2]]])
        target = np.array([wy.sum(), (wy * x).sum()])
        if np.linalg.cond(design) < 1e8:
            self.base, self.slope = (float(v) for v in np.linalg.solve(design, target))
        counts = self.skill_sessions
        repeated = counts >= 2
        if repeated.any():
            within = self.cell_wyy[repeated] - wy[repeated] ** 2 / w[repeated]
            dof = float((counts[repeated] - 1).sum())
            self.noise_var = max(float(within.sum()) / dof, 1e-4)
        self._calibrated_at = self.observations
        self._derive()
