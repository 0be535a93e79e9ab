"""schemathesis against central's own OpenAPI schema, signed in as an admin, over a small school:
no operation answers with a server error (5xx), whatever the generated input.

Operations are driven one by one with Hypothesis (schemathesis' pytest plugin does not load under
this pytest), a few examples each so that the whole run stays well under a minute.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import Messages, Store
from hypothesis import HealthCheck, given, settings

from central.db import create_schema, make_engine, make_session_factory
from central.fleet.runtime import start_fleet
from central.ingest import Ingestor
from central.settings import CentralSettings
from classink.mosquitto import Mosquitto

schemathesis = pytest.importorskip("schemathesis")
from school_data import school  # noqa: E402

MAX_EXAMPLES = 8


@schemathesis.serializer("application/zip")
def _zip_body(_ctx: Any, value: Any) -> bytes:
    # The roster import takes a zip; generated "binary" strings go through as they are.
    return value if isinstance(value, bytes) else str(value).encode()


def test_no_operation_fails_with_a_server_error(
    tmp_path: Any, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Configured as in production, so that nothing answers 503 for want of configuration: a
    # research export key, and the fleet's broker client on a real Mosquitto.
    monkeypatch.setenv("CLASSINK_MATCHING_EXPORT_KEY", "fuzzing-export-key-0123456789")
    monkeypatch.setenv("CLASSINK_FLEET_CLIENT_ID", f"fuzz-fleet-{uuid.uuid4().hex[:8]}")
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    with school(Store(url, engine, sessions, Ingestor(sessions)), Messages()) as town:
        monitor = start_fleet(
            town.app, CentralSettings(mqtt_host="127.0.0.1", mqtt_port=mosquitto.port)
        )
        try:
            headers = {"Authorization": f"Bearer {town.app.state.issue_token('admin', 'fuzzer')}"}
            schema = schemathesis.openapi.from_asgi("/openapi.json", town.app, headers=headers)
            for result in schema.get_all_operations():
                operation = result.ok()
                operations += 1

                @given(case=operation.as_strategy())
                @settings(
                    max_examples=MAX_EXAMPLES,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def call(case: Any) -> None:
                    response = case.call(headers=headers)
                    # The login form answers 401 to a made-up token; nothing else may.
                    if case.formatted_path != "/login":
                        statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        failures.append(
                            f"{case.method} {case.formatted_path} {response.status_code}: "
                            f"{response.text[:300]}"
                        )

                call()
        finally:
            if monitor is not None:
                monitor.stop()
    engine.dispose()
    assert operations > 40
    # Signed in for real: nothing was refused for the token, and many calls got through.
    through = sum(n for code, n in statuses.items() if code < 300)
    assert statuses[401] == 0 and through > 50, statuses
    assert failures == [], "\n".join(failures)
