"""BatchPublishHook with a fake publisher: what it resends, and what it reports as accepted."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from nba_phase5.airflow.hooks.pubsub import BatchPublishHook


class ScriptedPublisher:
    """Answers each publish as scripted per request id: accept, refuse (an error) or never answer."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.calls: list[str] = []

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        rid = attributes["request_id"]
        self.calls.append(rid)
        answers = self.script.get(rid, ["accept"])
        answer = answers[min(self.calls.count(rid) - 1, len(answers) - 1)]
        future: Future[str] = Future()
        if answer == "accept":
            future.set_result(f"msg-{rid}-{self.calls.count(rid)}")
        elif answer == "refuse":
            future.set_exception(RuntimeError("503 unavailable"))
        return future  # "hang": never answered


def publish(script: dict[str, list[str]], n: int = 4, **kwargs: Any) -> tuple[Any, ScriptedPublisher]:
    publisher = ScriptedPublisher(script)
    hook = BatchPublishHook.__new__(BatchPublishHook)  # no connection needed with an explicit publisher
    messages = [(b"{}", {"request_id": f"r{i}"}) for i in range(n)]
    result = hook.publish_batch(project_id="p", topic="t", messages=messages, publisher=publisher, **kwargs)
    return result, publisher


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nba_phase5.airflow.hooks.pubsub.time.sleep", lambda s: None)


def test_only_refused_publishes_are_sent_again() -> None:
    result, publisher = publish({"r1": ["refuse", "accept"]})
    assert sorted(publisher.calls) == ["r0", "r1", "r1", "r2", "r3"]
    assert (result.published, result.retried, result.failed) == (4, 1, [])
    assert sorted(message_id for _, message_id, _ in result.accepted) == [
        "msg-r0-1",
        "msg-r1-2",
        "msg-r2-1",
        "msg-r3-1",
    ]


def test_an_unanswered_publish_is_never_resent_it_may_still_be_accepted() -> None:
    result, publisher = publish({"r2": ["hang"]}, timeout=0.05)
    assert publisher.calls.count("r2") == 1
    assert (result.published, result.failed, result.unconfirmed) == (3, [2], [2])
    assert "unanswered" in result.errors[-1]


def test_a_publish_refused_on_every_attempt_fails_after_max_attempts() -> None:
    result, publisher = publish({"r0": ["refuse"]}, max_attempts=3)
    assert publisher.calls.count("r0") == 3
    assert (result.published, result.failed, result.unconfirmed) == (3, [0], [])
