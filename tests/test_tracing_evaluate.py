"""`classink tracing evaluate`: the JSON it prints, on made-up and real answers; bad input."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from central.tracing.data import read_rows
from classink.cli import main
from classink.shared_data import data_dir

HEADER = "user_id,skill_id,correct\n"


def _write(path: Path, rows: list[tuple[str, str, int]], header: str = HEADER) -> Path:
    text = header + "".join(f"{u},{s},{c}\n" for u, s, c in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _learners(prefix: str, users: int, seed: int) -> list[tuple[str, str, int]]:
    """Students who get better with practice, on skills of different difficulty."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        ability = rng.normal()
        practice: dict[int, int] = {}
        for _ in range(30):
            skill = int(rng.integers(0, 5))
            n = practice.get(skill, 0)
            p = 1 / (1 + np.exp(-(ability + 0.4 * n - 0.5 * skill + 0.3)))
            rows.append((f"{prefix}{user}", f"k{skill}", int(rng.random() < p)))
            practice[skill] = n + 1
    return rows


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    code = main(["tracing", "evaluate", *args])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else None, captured.err


@pytest.mark.parametrize("model", ["bkt", "logistic"])
def test_evaluate_prints_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    train = _write(tmp_path / "train.csv.gz", _learners("tr", 120, 1))
    test_rows = _learners("te", 40, 2) + [("te-once", "k1", 1), ("te-new", "brand-new", 0)]
    test = _write(tmp_path / "test.csv", test_rows)
    code, result, _ = _run(capsys, "--train", str(train), "--test", str(test), "--model", model)
    assert code == 0
    assert result is not None
    assert result["model"] == model
    assert result["test_answers"] == len(test_rows)
    assert result["test_users"] == 42
    assert result["unknown_skill_answers"] == 1
    assert 0.65 < result["auc"] <= 1.0
    assert 0.0 < result["rmse"] < 0.5
    assert result["fit_seconds"] >= 0 and result["predict_seconds"] >= 0


def _real_subset(tmp_path: Path, name: str, users: int) -> Path:
    rows = read_rows(data_dir() / "knowledge_tracing" / name)
    keep = list(dict.fromkeys(u for u, _, _ in rows))[:users]
    wanted = set(keep)
    return _write(tmp_path / name.replace(".gz", ""), [r for r in rows if r[0] in wanted])


def test_real_answers_beat_chance_and_the_logistic_model_beats_bkt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _real_subset(tmp_path, "assist2009_train.csv.gz", 600)
    test = _real_subset(tmp_path, "assist2009_test.csv.gz", 250)
    aucs = {}
    for model in ("bkt", "logistic"):
        code, result, _ = _run(capsys, "--train", str(train), "--test", str(test), "--model", model)
        assert code == 0 and result is not None
        aucs[model] = result["auc"]
    assert aucs["bkt"] > 0.65
    assert aucs["logistic"] > aucs["bkt"]


def test_one_sided_data_is_handled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    always = [(f"tr{u}", "always-right", 1) for u in range(10) for _ in range(4)]
    never = [(f"tr{u}", "always-wrong", 0) for u in range(10) for _ in range(4)]
    train = _write(tmp_path / "train.csv", always + never)
    test = _write(tmp_path / "test.csv", [("te1", "always-right", 1), ("te1", "always-wrong", 0)])
    code, result, _ = _run(capsys, "--train", str(train), "--test", str(test), "--model", "bkt")
    assert code == 0 and result is not None
    assert result["auc"] == 1.0

    right = _write(tmp_path / "right.csv", [("te1", "always-right", 1), ("te2", "always-wrong", 1)])
    code, result, err = _run(capsys, "--train", str(train), "--test", str(right), "--model", "bkt")
    assert code == 0 and result is not None
    assert "auc" not in result
    assert "every test answer is correct" in result["note"] and "AUC is undefined" in err

    only_right = _write(tmp_path / "only-right.csv", always)
    code, result, err = _run(capsys, "--train", str(only_right), "--test", str(test))
    assert code == 2 and result is None
    assert "every training answer is correct" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        (HEADER, "no answers after the header"),
        ("user_id,skill,correct\nu,s,1\n", "missing column(s) skill_id"),
        (HEADER + "u1,s1,1\nu1,s1,2\n", "line 3: correct must be 0 or 1, not '2'"),
        (HEADER + "u1,s1,yes\n", "correct must be 0 or 1, not 'yes'"),
        (HEADER + "u1,s1,1,extra\n", "line 2: 4 fields where the header has 3"),
        (HEADER + "u1,,1\n", "line 2: user_id and skill_id must be set"),
    ],
)
def test_bad_test_files_are_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    train = _write(tmp_path / "train.csv", _learners("tr", 5, 1))
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    code, result, err = _run(capsys, "--train", str(train), "--test", str(bad))
    assert code == 2 and result is None
    assert str(bad) in err and message in err


def test_other_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _write(tmp_path / "train.csv", _learners("u", 5, 1))
    overlapping = _write(tmp_path / "test.csv", _learners("u", 2, 3))
    code, _, err = _run(capsys, "--train", str(train), "--test", str(overlapping))
    assert code == 2 and "2 user(s) appear in both" in err and "disjoint" in err

    code, _, err = _run(capsys, "--train", str(train), "--test", str(train), "--model", "dkt")
    assert code == 2 and "unknown model 'dkt'; choose one of bkt, logistic" in err

    code, _, err = _run(capsys, "--train", str(tmp_path / "nope.csv"), "--test", str(train))
    assert code == 2 and "nope.csv: no such file" in err

    not_gzip = tmp_path / "fake.csv.gz"
    not_gzip.write_text(HEADER)
    code, _, err = _run(capsys, "--train", str(not_gzip), "--test", str(train))
    assert code == 2 and "unreadable" in err
