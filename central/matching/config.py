"""The district's matching rules as configuration: priority groups, exploration, ranking weights.

Loaded from a JSON or TOML file (`rules.toml` beside this module is the documented default;
docs/matching.md explains every field). Unknown keys are refused so that a misspelt rule fails
loudly instead of being silently ignored.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriorityGroup(_Strict):
    """Students whose attributes match `match` (all keys equal) belong to this group.

    `serve_bonus` is added to the value of serving a request at all, so when demand exceeds supply
    the solver serves the group with the larger bonus first; when supply suffices it changes
    nothing. `gain_weight` scales the expected learning gain, steering the best teachers.
    """

    name: str
    match: dict[str, str | bool | int]
    serve_bonus: float = Field(ge=0)
    gain_weight: float = Field(default=1.0, gt=0)


class Exploration(_Strict):
    """How uncertain (new) teachers get requests: an optimism bonus (UCB: `ucb_c` × posterior sd,
    at most `max_bonus`) or Thompson sampling from the posterior in batch assignment, and a
    probation that bounds how many requests an unproven teacher takes at once."""

    method: Literal["thompson", "ucb", "none"] = "ucb"
    ucb_c: float = Field(default=1.0, ge=0)
    max_bonus: float = Field(default=0.15, ge=0)
    probation_sessions: int = Field(default=3, ge=0)
    probation_capacity: int = Field(default=2, ge=1)


class ProfilePrior(_Strict):
    """Gain model: a session's gain on a skill = effectiveness × (1 − mastery before) + noise.

    Effectiveness = `base + slope × stated expertise` (0..1) + a teacher offset (sd `teacher_sd`)
    + a teacher-and-subject offset (`subject_sd`) + a teacher-and-skill term (`cell_sd`). Once
    `calibrate_after` skill observations exist, base, slope and the noise are re-estimated from
    them (empirical Bayes); 0 keeps the configured values.
    """

    base: float = 0.15
    slope: float = 0.25
    teacher_sd: float = Field(default=0.10, gt=0)
    subject_sd: float = Field(default=0.07, gt=0)
    cell_sd: float = Field(default=0.05, gt=0)
    band_sd: float = Field(default=0.05, gt=0)
    noise_sd: float = Field(default=0.25, gt=0)
    min_headroom: float = Field(default=0.05, gt=0, le=1)
    calibrate_after: int = Field(default=500, ge=0)


class Ranking(_Strict):
    top_k: int = Field(default=10, ge=1, le=200)
    candidates_per_request: int = Field(default=12, ge=1, le=500)
    candidate_pool: int = Field(default=256, ge=1)
    load_penalty: float = Field(default=0.3, ge=0, le=1)
    slot_penalty: float = Field(default=0.002, ge=0)
    rating_weight: float = Field(default=0.01, ge=0)
    assignment_rounds: int = Field(default=3, ge=1, le=10)


class MatchingRules(_Strict):
    priority_groups: list[PriorityGroup] = Field(default_factory=list)
    default_serve_bonus: float = Field(default=0.0, ge=0)
    wait_bonus_per_slot: float = Field(default=0.05, ge=0)
    exploration: Exploration = Exploration()
    prior: ProfilePrior = ProfilePrior()
    ranking: Ranking = Ranking()

    def group_of(self, attributes: dict[str, Any]) -> PriorityGroup | None:
        for group in self.priority_groups:
            if all(attributes.get(key) == value for key, value in group.match.items()):
                return group
        return None


def load_rules(path: Path | str | None = None) -> MatchingRules:
    """Rules from a .toml or .json file; the shipped defaults when no path is given."""
    source = Path(path) if path is not None else DEFAULT_RULES_PATH
    text = source.read_text(encoding="utf-8")
    try:
        if source.suffix == ".toml":
            data = tomllib.loads(text)
        elif source.suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"{source}: matching rules must be a .toml or .json file")
        return MatchingRules.model_validate(data)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValidationError) as error:
        raise ValueError(f"{source}: invalid matching rules: {error}") from error
