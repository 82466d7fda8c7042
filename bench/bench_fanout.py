"""1. Fan-out throughput: the package's publishing path against the stock hook and a naive loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench_common import log, median

from nba_phase5 import config
from nba_phase5.config import PREDICTION_REQUESTS_TOPIC as REQUESTS_TOPIC


def drain_count(project: str, expected: int) -> tuple[int, int]:
    """Pull and ack everything on the workers' subscription: (messages, distinct request ids).

    Stops early once ``expected`` have arrived, after one more pull finds nothing extra.
    """
    from google.api_core.exceptions import DeadlineExceeded

    from nba_phase5.bigquery.clients import subscriber_client

    client = subscriber_client()
    path = client.subscription_path(project, config.PREDICTION_REQUESTS_SUBSCRIPTION)
    total, ids = 0, set()
    empty = 0
    with client:
        while empty < 2:
            settled = total >= expected
            try:
                response = client.pull(
                    request={"subscription": path, "max_messages": 1000, "return_immediately": settled},
                    timeout=1 if settled else 3,
                )
            except DeadlineExceeded:
                empty += 1
                continue
            received = response.received_messages
            if not received:
                empty += 2 if settled else 1
                continue
            total += len(received)
            ids.update(m.message.attributes["request_id"] for m in received)
            client.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in received]})
    return total, len(ids)


Messages = list[tuple[bytes, dict[str, str]]]


def fanout_paths(project: str) -> dict[str, Callable[[list[Any], Messages], None]]:
    from airflow.providers.google.cloud.hooks.pubsub import PubSubHook

    from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
    from nba_phase5.bigquery.clients import publisher_client

    def ours(requests: list[Any], messages: Messages) -> None:
        # The fan-out's own publishing path: chunks published, each recorded in the publish ledger.
        operator = PredictionFanOutOperator(
            task_id="bench_fan_out", game_date=requests[0].game_date, batch_id=requests[0].batch_id
        )
        result = operator.publish_and_record(requests, context={})
        assert not result.failed, result.errors

    def stock(requests: list[Any], messages: Messages) -> None:
        # Exactly what PubSubPublishMessageOperator.execute does.
        PubSubHook(gcp_conn_id=config.GCP_CONN_ID).publish(
            project_id=project, topic=REQUESTS_TOPIC, messages=[{"data": d, "attributes": a} for d, a in messages]
        )

    def naive(requests: list[Any], messages: Messages) -> None:
        publisher = publisher_client()
        topic = publisher.topic_path(project, REQUESTS_TOPIC)
        for data, attributes in messages:
            publisher.publish(topic, data, **attributes).result()

    return {"package": ours, "stock_hook": stock, "naive_loop": naive}


def bench_fanout(project: str, sizes: list[int], reps: int, slow_cap: int, naive_cap: int) -> dict[str, Any]:
    from nba_phase5.core.prediction_requests import PredictionRequest

    results: dict[str, Any] = {}
    for size in sizes:
        requests = [
            PredictionRequest(
                game_date="2025-11-28",
                player_lookup=f"player{i:05d}",
                game_id="0022500001",
                batch_id="batch_2025-11-28_1764306000",
                points_line=25.5,
                correlation_id="4f2a9c1e",
                timestamp="2025-11-28T06:12:03.123456",
            )
            for i in range(size)
        ]
        messages = [(r.body(), r.attributes()) for r in requests]
        for name, publish in fanout_paths(project).items():
            # The serial peers cost ~13 ms a message here: one repetition at the largest size keeps the
            # run under 10 minutes; the cell says how many repetitions stand behind its median.
            runs = reps if (name == "package" or size <= slow_cap) else 1
            if name == "naive_loop" and size > naive_cap:
                results[f"{name}@{size}"] = {"skipped": "same per-message cost as stock_hook; not run at this size"}
                continue
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                publish(requests, messages)
                times.append(time.perf_counter() - start)
                delivered, distinct = drain_count(project, size)
                assert (delivered, distinct) == (size, size), (
                    f"{name}@{size}: {delivered} delivered, {distinct} distinct"
                )
            seconds = median(times)
            results[f"{name}@{size}"] = {
                "seconds": seconds,
                "msgs_per_s": size / seconds,
                "reps": runs,
                "delivered_once": True,
            }
            log(f"fan-out {name:<11} {size:>6}: {seconds:7.3f} s  ({size / seconds:,.0f} msg/s, n={runs})")
    return results
