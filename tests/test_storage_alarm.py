"""A failing disk is logged at once, then at most every few seconds, however often it fails."""

from gateway.storage_alarm import StorageAlarm


def test_first_failure_is_said_then_at_most_once_per_period():
    alarm = StorageAlarm(every_s=2.0)
    said = [t for t in (100.0, 100.1, 101.9, 102.0, 102.5, 107.0) if alarm.due(t)]
    assert said == [100.0, 102.0, 107.0]
