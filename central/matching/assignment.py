"""Batch assignment for one time slot: many requests, teachers with capacities, one optimum.

A min-cost flow (OR-Tools) on a sparse candidate graph: each request is linked to its best
feasible teachers, each teacher to the sink through as many unit arcs as places it has left, so no
teacher can be given more than its capacity, and each request may also stay unassigned at no value.

Value of serving request r with teacher t: serve bonus (priority group + waiting) + gain weight ×
sampled gain (Thompson sampling from the profile posterior, so uncertain teachers win some of the
time) + a small base, less a tiny penalty per slot already used, which spreads load among equals.

Candidates come from a pool per (skills, mastery band): requests asking the same thing share one
pass over all teachers. When capacity is tight, requests whose candidates filled up get a further
round with fresh candidates among teachers who still have places; each round is solved optimally.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from central.matching.profiles import N_BANDS
from central.matching.ranking import Matcher
from central.matching.requests import CompiledRequest

SERVE_BASE = 0.01  # serving beats leaving a request waiting even with a near-zero sampled gain
COST_SCALE = 1_000_000  # values (gains ~0.01-1) to integer costs, far finer than their noise


@dataclass
class Assignment:
    teacher: np.ndarray  # (requests,) teacher row, or -1 when unassigned
    expected_gain: np.ndarray  # (requests,) posterior mean gain of the chosen pair, nan if none
    rounds: int
    candidate_edges: int


@dataclass
class _Edges:
    request: np.ndarray
    teacher: np.ndarray
    value: np.ndarray
    mean_gain: np.ndarray


def assign(
    matcher: Matcher,
    requests: Sequence[CompiledRequest],
    load: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> Assignment:
    rng = rng or np.random.default_rng()
    n = len(requests)
    n_teachers = len(matcher.teachers)
    load = np.zeros(n_teachers, dtype=np.int64) if load is None else load.astype(np.int64)
    if load.shape != (n_teachers,):
        raise ValueError(f"load has shape {load.shape}, expected ({n_teachers},)")
    capacity = matcher.capacity_now().astype(np.int64)
    free = np.maximum(capacity - load, 0)
    used = load.copy()
    teacher = np.full(n, -1, dtype=np.int64)
    gain = np.full(n, np.nan)
    edges_total = 0
    rounds = 0
    pending = np.arange(n)
    for _ in range(matcher.rules.ranking.assignment_rounds):
        if pending.size == 0 or not free.any():
            break
        rounds += 1
        edges = _candidates(matcher, [requests[i] for i in pending], free, rng)
        edges_total += edges.request.size
        if edges.request.size == 0:
            break
        rows, teachers, means = _solve(matcher, edges, pending.size, free, used, capacity)
        if rows.size == 0:
            break
        chosen = pending[rows]
        teacher[chosen] = teachers
        gain[chosen] = means
        np.subtract.at(free, teachers, 1)
        np.add.at(used, teachers, 1)
        pending = pending[teacher[pending] < 0]
    return Assignment(teacher, gain, rounds, edges_total)


def _candidates(
    matcher: Matcher,
    requests: Sequence[CompiledRequest],
    free: np.ndarray,
    rng: np.random.Generator,
) -> _Edges:
    ranking = matcher.rules.ranking
    explore = matcher.rules.exploration
    snap = matcher.profiles.snapshot()
    t = matcher.teachers
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    bands = np.array([r.band for r in requests], dtype=np.int64)
    for index, request in enumerate(requests):
        groups[request.skills].append(index)
    has_place = free > 0
    teaching: dict[int, np.ndarray] = {}  # rows with a place teaching every subject of a mask
    parts: list[_Edges] = []
    for skills, members in groups.items():
        subjects = requests[members[0]].subjects
        if subjects not in teaching:
            need = np.uint64(subjects)
            teaching[subjects] = np.flatnonzero(has_place & ((t.subjects & need) == need))
        rows = teaching[subjects]
        if rows.size == 0:
            continue
        eff = snap.mean[list(skills)][:, rows]  # (k, rows)
        var = snap.var[list(skills)][:, rows]
        band_adjust = snap.band[:, rows]  # (bands, rows)
        headroom = np.clip(1.0 - np.stack([requests[i].mastery for i in members]), 0.0, 1.0)
        member_bands = bands[members]
        k = len(skills)
        # The pool: best teachers for the group's average request, optimistically.
        mean_room = headroom.mean(axis=0)
        typical = np.bincount(member_bands, minlength=N_BANDS) / len(members) @ band_adjust
        optimistic = mean_room @ (eff + typical) / k + matcher.bonus(
            np.sqrt(mean_room**2 @ var) / k
        )
        if rows.size > ranking.candidate_pool:
            keep = np.argpartition(-optimistic, ranking.candidate_pool)[: ranking.candidate_pool]
            rows, eff, var, band_adjust = (
                rows[keep],
                eff[:, keep],
                var[:, keep],
                band_adjust[:, keep],
            )
        member_requests = [requests[i] for i in members]
        feasible = _request_feasible(matcher, member_requests, rows)
        # (members, pool): each request's own headroom and its own band's adjustment.
        mean = (
            headroom @ eff + headroom.sum(axis=1, keepdims=True) * band_adjust[member_bands]
        ) / k
        sd = np.sqrt(headroom**2 @ var) / k
        score = np.where(feasible, mean + matcher.bonus(sd), -np.inf)
        top, valid = _spread(score, np.asarray(members), ranking.candidates_per_request)
        real = np.isfinite(np.take_along_axis(score, top, axis=1)) & valid
        member_index = np.broadcast_to(np.asarray(members)[:, None], top.shape)[real]
        pool_index = top[real]
        m = np.take_along_axis(mean, top, axis=1)[real]
        s = np.take_along_axis(sd, top, axis=1)[real]
        if explore.method == "thompson":
            sampled = m + s * rng.standard_normal(m.shape)
        elif explore.method == "ucb":
            sampled = m + matcher.bonus(s)
        else:
            sampled = m
        bonus = np.array([requests[i].serve_bonus for i in members])
        weight = np.array([requests[i].gain_weight for i in members])
        # Members are listed in increasing order, so a request's row in the group is a search.
        member_row = np.searchsorted(members, member_index)
        value = bonus[member_row] + weight[member_row] * np.maximum(sampled, 0.0) + SERVE_BASE
        parts.append(_Edges(member_index.astype(np.int64), rows[pool_index], value, m))
    if not parts:
        empty = np.zeros(0)
        return _Edges(empty.astype(np.int64), empty.astype(np.int64), empty, empty)
    return _Edges(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Edges.__annotations__))


def _spread(
    score: np.ndarray, members: np.ndarray, per_request: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pool columns per request: its best half, and a half taken further down its
    feasible list at an offset that differs between requests. Requests that ask the same thing
    would otherwise all list the same few teachers, whose places cannot serve them all; spreading
    puts enough places in the graph while the solver still prefers the best where it can."""
    order = np.argsort(-score, axis=1, kind="stable")
    if order.shape[1] <= per_request:
        return order, np.ones(order.shape, dtype=bool)
    head = per_request // 2
    tail = per_request - head
    feasible = np.isfinite(score).sum(axis=1, keepdims=True)
    span = np.maximum(feasible - head, 1)
    steps = np.arange(tail)[None, :]
    offset = (members[:, None] * tail) % span
    positions = head + (offset + steps) % span
    columns = np.concatenate([order[:, :head], np.take_along_axis(order, positions, 1)], axis=1)
    # With fewer feasible teachers than the offsets cover, positions repeat: keep each once.
    valid = np.concatenate(
        [np.ones((len(members), head), dtype=bool), np.broadcast_to(steps < span, positions.shape)],
        axis=1,
    )
    return columns, valid


def _request_feasible(
    matcher: Matcher, requests: Sequence[CompiledRequest], rows: np.ndarray
) -> np.ndarray:
    t = matcher.teachers
    languages = np.array([r.languages for r in requests], dtype=np.uint64)[:, None]
    grades = np.array([r.grade for r in requests], dtype=np.uint64)[:, None]
    windows = np.stack([r.window for r in requests])
    ok = (t.languages[rows][None, :] & languages) != 0
    ok &= ((t.grades[rows][None, :] >> grades) & np.uint64(1)) != 0
    hit = np.zeros(ok.shape, dtype=np.uint64)
    for word in range(windows.shape[1]):
        hit |= t.availability_words[word][rows][None, :] & windows[:, word, None]
    return ok & (hit != 0)


def _solve(
    matcher: Matcher,
    edges: _Edges,
    n_requests: int,
    free: np.ndarray,
    used: np.ndarray,
    capacity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-cost flow on this round's candidate graph: (request, teacher, mean gain) per pair.

    source → each request (1 unit) → candidate teachers → sink through one arc per free place of
    the teacher, each dearer than the last (spreads load among equals) — or straight to the sink,
    unassigned, at cost 0. Values become negative integer costs (OR-Tools works in integers).
    """
    teachers, local = np.unique(edges.teacher, return_inverse=True)
    n_teachers = teachers.size
    source = n_requests + n_teachers
    sink = source + 1
    places = np.minimum(free[teachers], np.bincount(local, minlength=n_teachers))
    penalty = matcher.rules.ranking.slot_penalty
    place_of = np.repeat(np.arange(n_teachers), places)
    nth = np.arange(place_of.size) - np.repeat(np.cumsum(places) - places, places)
    busy = (used[teachers][place_of] + nth) / np.maximum(capacity[teachers][place_of], 1)
    tails = np.concatenate(
        [np.full(n_requests, source), edges.request, n_requests + place_of, np.arange(n_requests)]
    )
    heads = np.concatenate(
        [np.arange(n_requests), n_requests + local, np.full(place_of.size, sink),
         np.full(n_requests, sink)]
    )  # fmt: skip
    value = np.concatenate(
        [np.zeros(n_requests), edges.value, -penalty * busy, np.zeros(n_requests)]
    )
    costs = -np.round(value * COST_SCALE).astype(np.int64)
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        tails.astype(np.int32), heads.astype(np.int32), np.ones(tails.size, np.int64), costs
    )
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[source], supplies[sink] = n_requests, -n_requests
    flow.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supplies)
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    edge_arcs = arcs[n_requests : n_requests + edges.request.size]
    chosen = flow.flows(edge_arcs) > 0
    return edges.request[chosen], edges.teacher[chosen], edges.mean_gain[chosen]
