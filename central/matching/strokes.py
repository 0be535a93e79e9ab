"""A pen stroke as the classroom pipeline sends it (protocol_specs/mqtt.md, `answers` events)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Stroke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t0_ms: int = Field(ge=0)
    points: list[tuple[float, float, float, float]] = Field(min_length=1)
    offline: bool = False

    @field_validator("points")
    @classmethod
    def _finite(cls, points: list[tuple[float, float, float, float]]) -> list:
        for point in points:
            if not all(math.isfinite(v) for v in point):
                raise ValueError(f"non-finite value in point {point}")
            if point[2] < 0:
                raise ValueError(f"negative dt_ms in point {point}")
        return points
