"""PostgreSQL path of central ingest: COPY straight into answer_events, and what happens when
another worker stores one of the batch's answers while the COPY runs."""

from __future__ import annotations

import json
import threading
import time

from conftest import Messages, Store
from sqlalchemy import select

from central.ingest import OutcomeKind
from central.models import AnswerEvent


def test_an_answer_another_worker_commits_during_the_copy_is_a_duplicate_not_an_error(
    postgres_store: Store, messages: Messages
) -> None:
    """The ids already stored are looked up before the COPY; one that another worker stores in
    between makes the COPY fail on the unique index, and the batch goes through ON CONFLICT."""
    from datetime import UTC, datetime

    from central.ingest import _Checked, _copy_answers, _copy_row

    raced = messages.answer()
    other = messages.answer()
    payload = json.dumps(raced).encode()
    copied = threading.Event()

    def other_worker() -> None:
        with postgres_store.sessions.begin() as session:
            row = _copy_row(_Checked("answers", raced, payload), datetime.now(UTC))
            assert _copy_answers(session, [row]) == {raced["event_id"]}
            copied.set()
            # Commit only once our COPY below waits on the unique index for this transaction.
            deadline = time.monotonic() + 10
            with postgres_store.engine.connect() as watcher:
                while not watcher.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted"
                ).scalar_one():
                    assert time.monotonic() < deadline, "the ingest never waited on the COPY"
                    time.sleep(0.02)

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert copied.wait(10)
    outcomes = postgres_store.ingestor.handle_batch(
        [(messages.topic(), payload), (messages.topic(), json.dumps(other).encode())]
    )
    thread.join()
    assert [o.kind for o in outcomes] == [OutcomeKind.DUPLICATE, OutcomeKind.STORED]
    with postgres_store.sessions() as session:
        ids = sorted(session.scalars(select(AnswerEvent.event_id)))
    assert ids == sorted([raced["event_id"], other["event_id"]])
