"""Pictures of mastery, drawn as SVG on the server: the knowledge graph and the colour scale.

The graph is laid out in layers: a skill sits one layer below its deepest prerequisite, so every
arrow (prerequisite -> skill) points downwards; within a layer skills are ordered by the mean
position of their prerequisites to keep arrows short and uncrossed. Every text that comes from
data is XML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from central.tracing.recommend import MASTERED, SkillState

NODE_W = 168
NODE_H = 58
GAP_X = 28
GAP_Y = 64
MARGIN = 20
LEGEND_H = 34
NAME_CHARS = 22
UNASSESSED = "#e6e6e6"

# Colour stops from "not mastered" through "developing" to "mastered".
_STOPS = ((0.0, (214, 69, 65)), (0.5, (240, 180, 60)), (MASTERED, (76, 175, 80)))


def mastery_colour(mastery: float | None) -> str:
    """A fill colour for P(mastered); grey when there is no evidence yet (None)."""
    if mastery is None:
        return UNASSESSED
    value = min(max(mastery, 0.0), 1.0)
    if value >= _STOPS[-1][0]:
        r, g, b = _STOPS[-1][1]
    else:
        for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:], strict=False):
            if value <= x1:
                t = (value - x0) / (x1 - x0)
                r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1, strict=True))
                break
    return f"#{r:02x}{g:02x}{b:02x}"


def _depths(skills: Iterable[str], requires: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """0 for a skill without prerequisites, else one more than its deepest prerequisite."""
    known = set(skills)
    depth: dict[str, int] = {}

    def depth_of(skill: str, trail: frozenset[str] = frozenset()) -> int:
        if skill in depth:
            return depth[skill]
        parents = [r for r in requires.get(skill, ()) if r in known and r not in trail]
        value = 1 + max((depth_of(p, trail | {skill}) for p in parents), default=-1)
        depth[skill] = value
        return value

    for skill in known:
        depth_of(skill)
    return depth


def skills_in_graph_order(
    names: Mapping[str, str], requires: Mapping[str, Iterable[str]]
) -> list[str]:
    """Skills with prerequisites after the prerequisites, then by name: for table columns."""
    depth = _depths(names, requires)
    return sorted(names, key=lambda s: (depth[s], names[s], s))


def _layers(states: dict[str, SkillState]) -> list[list[str]]:
    depth = _depths(states, {skill: state.requires for skill, state in states.items()})
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for skill in states:  # states come in name order
        layers[depth[skill]].append(skill)
    # Two sweeps of the barycentre heuristic: order each layer by its prerequisites' positions.
    for _ in range(2):
        for index in range(1, len(layers)):
            above = {skill: i for i, skill in enumerate(layers[index - 1])}
            for upper in layers[: index - 1]:
                above.update({skill: i for i, skill in enumerate(upper)})

            def key(skill: str, above: dict[str, int] = above) -> float:
                positions = [above[r] for r in states[skill].requires if r in above]
                return sum(positions) / len(positions) if positions else float("inf")

            layers[index].sort(key=key)
    return layers


def _wrap(text: str) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > NAME_CHARS:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    if len(lines) > 2:
        lines = [lines[0], (lines[1] + " " + " ".join(lines[2:]))]
    return [ln if len(ln) <= NAME_CHARS else ln[: NAME_CHARS - 1] + "…" for ln in lines]


def knowledge_graph_svg(states: dict[str, SkillState], link_prefix: str | None = None) -> str:
    """The skills as boxes coloured by mastery, with an arrow from each prerequisite."""
    layers = _layers(states)
    widest = max((len(layer) for layer in layers), default=0)
    width = 2 * MARGIN + max(widest * NODE_W + max(widest - 1, 0) * GAP_X, LEGEND_W)
    height = 2 * MARGIN + LEGEND_H + len(layers) * NODE_H + max(len(layers) - 1, 0) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        span = len(layer) * NODE_W + (len(layer) - 1) * GAP_X
        left = (width - span) / 2
        for column, skill in enumerate(layer):
            where[skill] = (
                left + column * (NODE_W + GAP_X),
                MARGIN + LEGEND_H + row * (NODE_H + GAP_Y),
            )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="knowledge-graph" width="{width:.0f}"'
        f' height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img"'
        ' aria-label="Knowledge graph: skills coloured by mastery, arrows from prerequisites">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"'
        ' fill="#555"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#fff"/>',
        _legend(),
        '<g class="edges" fill="none" stroke="#555" stroke-width="1.4">',
    ]
    for skill, state in states.items():
        x, y = where[skill]
        for requirement in state.requires:
            if requirement not in where:
                continue
            px, py = where[requirement]
            x0, y0 = px + NODE_W / 2, py + NODE_H
            x1, y1 = x + NODE_W / 2, y - 2
            bend = (y1 - y0) / 2
            parts.append(
                f'<path class="edge" data-from={quoteattr(requirement)} data-to={quoteattr(skill)}'
                f' d="M{x0:.1f} {y0:.1f} C{x0:.1f} {y0 + bend:.1f} {x1:.1f} {y1 - bend:.1f}'
                f' {x1:.1f} {y1:.1f}" marker-end="url(#arrow)"/>'
            )
    parts.append('</g><g class="skills" font-family="system-ui, sans-serif">')
    for skill, state in states.items():
        x, y = where[skill]
        fill = mastery_colour(state.mastery if state.assessed else None)
        dashed = "" if state.assessed else ' stroke-dasharray="4 3"'
        status = (
            f"{round(100 * state.mastery)}% · {state.correct}/{state.answers} right"
            if state.assessed
            else "no answers yet"
        )
        title = f"{state.name}: {status}" + (" (mastered)" if state.mastered else "")
        node = [
            f'<g class="skill" data-skill={quoteattr(skill)}'
            f' data-mastery="{state.mastery:.3f}"><title>{escape(title)}</title>',
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8"'
            f' fill="{fill}" stroke="#333" stroke-width="1"{dashed}/>',
        ]
        lines = _wrap(state.name)
        for i, line in enumerate(lines):
            baseline = y + 20 + i * 15 - (0 if len(lines) > 1 else -6)
            node.append(
                f'<text x="{x + NODE_W / 2:.1f}" y="{baseline:.1f}" text-anchor="middle"'
                f' font-size="13" font-weight="600" fill="#111">{escape(line)}</text>'
            )
        node.append(
            f'<text x="{x + NODE_W / 2:.1f}" y="{y + NODE_H - 8:.1f}" text-anchor="middle"'
            f' font-size="11" fill="#222">{escape(status)}</text></g>'
        )
        if link_prefix is not None:
            node = [f"<a href={quoteattr(link_prefix + skill)}>", *node, "</a>"]
        parts.extend(node)
    parts.append("</g></svg>")
    return "".join(parts)


_LEGEND: Sequence[tuple[str, str, bool]] = (
    ("not yet", mastery_colour(0.1), False),
    ("developing", mastery_colour(0.5), False),
    (f"mastered (≥ {round(100 * MASTERED)}%)", mastery_colour(MASTERED), False),
    ("no answers yet", UNASSESSED, True),
)
# Room for each legend entry: swatch, gap, and its label at about 7 px a character.
LEGEND_W = sum(30 + 7 * len(label) for label, _, _ in _LEGEND)


def _legend() -> str:
    parts = ['<g class="legend" font-family="system-ui, sans-serif" font-size="12">']
    x = MARGIN
    for label, colour, dashed in _LEGEND:
        dash = ' stroke-dasharray="3 2"' if dashed else ""
        parts.append(
            f'<rect x="{x}" y="{MARGIN - 6}" width="16" height="16" rx="3" fill="{colour}"'
            f' stroke="#333"{dash}/><text x="{x + 22}" y="{MARGIN + 7}">{escape(label)}</text>'
        )
        x += 30 + 7 * len(label)
    parts.append("</g>")
    return "".join(parts)


def sparkline_svg(values: Sequence[float], width: int = 120, height: int = 28) -> str:
    """Mastery after each answer, as a small line with the mastery threshold dashed."""
    if not values:
        return ""
    n = len(values)
    step = (width - 4) / max(n - 1, 1)

    def y(v: float) -> float:
        return height - 2 - v * (height - 4)

    points = " ".join(f"{2 + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    last = values[-1]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" aria-hidden="true">'
        f'<line x1="0" x2="{width}" y1="{y(MASTERED):.1f}" y2="{y(MASTERED):.1f}" stroke="#999"'
        ' stroke-dasharray="2 2" stroke-width="0.8"/>'
        f'<polyline points="{points}" fill="none" stroke="#1a5fb4" stroke-width="1.5"/>'
        f'<circle cx="{2 + (n - 1) * step:.1f}" cy="{y(last):.1f}" r="2.5"'
        f' fill="{mastery_colour(last)}" stroke="#333" stroke-width="0.5"/></svg>'
    )
