"""Where the shared data sets live, how to read them, and which writers are held out.

The data sets are never copied into the repository: they are read from `../shared/data` beside the
checkout (or from CLASSINK_SHARED_DATA). The writer split lives here, in one place, because training
must never see the writers that evaluation and the classroom simulator use.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# pendigits ships its own writer-disjoint split (train and test files); the other sets are split by
# a stable hash of the writer id so the split never depends on file order or on a random seed.
EVAL_SHARE_BUCKETS = 4


def data_dir() -> Path:
    configured = os.environ.get("CLASSINK_SHARED_DATA")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared data not found at {path}: put the shared/ folder beside the checkout "
            "or set CLASSINK_SHARED_DATA to its data/ folder"
        )
    return path


def read_jsonl(relative: str) -> Iterator[dict]:
    path = data_dir() / relative
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def is_eval_writer(dataset: str, writer: str) -> bool:
    """True when this writer is held out of training (used for evaluation and simulation)."""
    if dataset == "pendigits":
        return writer.startswith("pdtes")
    return zlib.crc32(f"{dataset}:{writer}".encode()) % EVAL_SHARE_BUCKETS == 0
