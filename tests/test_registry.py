"""The pen registry: addresses in any spelling, plain and detailed entries, passwords per pen."""

from __future__ import annotations

import json

import pytest

from firmware_bridge.registry import PenEntry, PenRegistry, normalise_address


def test_addresses_in_any_spelling_are_one_pen():
    assert normalise_address("9C-7B-EF-00-00-01") == "9c:7b:ef:00:00:01"
    assert normalise_address("9c7bef000001") == "9c:7b:ef:00:00:01"
    with pytest.raises(ValueError):
        normalise_address("9c:7b:ef")


def test_plain_and_detailed_entries(tmp_path):
    path = tmp_path / "roster.json"
    pens = {
        "9C:7B:EF:00:00:01": "stu-001",
        "9c7bef000002": {"student": "stu-002", "booklet": "b-17", "password": "4821"},
    }
    path.write_text(json.dumps({"pens": pens}))
    registry = PenRegistry.load(path)
    assert registry.roster() == {"9c:7b:ef:00:00:01": "stu-001", "9c:7b:ef:00:00:02": "stu-002"}
    assert registry.password_for("9c:7b:ef:00:00:02") == "4821"
    assert registry.password_for("9c:7b:ef:00:00:01") is None
    assert registry.entry("9C7BEF000002") == PenEntry("stu-002", "b-17", "4821")
    assert "9c:7b:ef:00:00:09" not in registry
    registry.assign("9c:7b:ef:00:00:09", PenEntry("stu-009"))
    assert registry.roster()["9c:7b:ef:00:00:09"] == "stu-009"


@pytest.mark.parametrize("text", ['{"pens": {"9c7bef000001": 7}}', '{"pen": {}}', "not json"])
def test_a_broken_roster_says_what_a_roster_is(tmp_path, text):
    path = tmp_path / "roster.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="a roster is JSON"):
        PenRegistry.load(path)
