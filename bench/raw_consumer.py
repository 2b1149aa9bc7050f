"""The baseline: a bare confluent-kafka consumer, run as its own process.

    python -m bench.raw_consumer --config '<librdkafka JSON>' --topic T --expected N

It joins the consumer group with ``subscribe`` and positions every assigned
partition at the beginning in ``on_assign``, as the engine's KafkaReader does for
partitions without a stored position (with ``--assign``: it assigns every partition of
the topic itself, no group join, as the engine's ``assignment="direct"`` does), then calls ``consume(num_messages=...)``
until it has read ``--expected`` records. Per message it only looks at
``error()`` (end-of-partition events arrive as messages, as in the engine). It
prints one JSON line of wall-clock timestamps (``time.time()``) on stdout; the
parent compares them with the timestamp it took right before spawning.
"""

import time

STARTED_AT = time.time()  # before any import: interpreter start-up is already behind us

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import confluent_kafka as ck  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="librdkafka settings as a JSON object")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expected", type=int, required=True, help="records to read before stopping")
    parser.add_argument("--num-messages", type=int, default=20_000, help="num_messages of each consume() call")
    parser.add_argument("--poll-timeout", type=float, default=0.1, help="timeout of each consume() call (s)")
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--assign", action="store_true", help="assign all partitions directly (no group join)")
    args = parser.parse_args(argv)

    imported_at = time.time()
    report: dict[str, object] = {"started_at": STARTED_AT, "imported_at": imported_at}
    assigned: dict[str, float] = {}

    def on_assign(consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = ck.OFFSET_BEGINNING
        consumer.assign(partitions)
        assigned.setdefault("at", time.time())
        report["partitions"] = sorted(tp.partition for tp in partitions)

    consumer = ck.Consumer(json.loads(args.config))
    if args.assign:
        metadata = consumer.list_topics(args.topic, timeout=30)
        partitions = sorted(metadata.topics[args.topic].partitions)
        on_assign(consumer, [ck.TopicPartition(args.topic, p) for p in partitions])
    else:
        consumer.subscribe([args.topic], on_assign=on_assign)

    error_of = ck.Message.error
    num_messages, timeout, expected = args.num_messages, args.poll_timeout, args.expected
    count = calls = events = 0
    first_at = last_at = 0.0
    first_count = 0
    give_up = time.monotonic() + args.deadline
    while count < expected and time.monotonic() < give_up:
        messages = consumer.consume(num_messages=num_messages, timeout=timeout)
        calls += 1
        if not messages:
            continue
        errors = list(map(error_of, messages))
        got = len(messages)
        if any(errors):
            for error in errors:
                if error is None:
                    continue
                got -= 1
                events += 1
                if error.code() != ck.KafkaError._PARTITION_EOF:
                    print(f"raw consumer: {error}", file=sys.stderr)
        if not got:
            continue
        count += got
        last_at = time.time()
        if not first_at:
            first_at, first_count = last_at, got

    report.update(
        assigned_at=assigned.get("at"),
        first_at=first_at or None,
        first_count=first_count,
        last_at=last_at or None,
        records=count,
        expected=expected,
        consume_calls=calls,
        events=events,
        num_messages=num_messages,
    )
    print(json.dumps(report), flush=True)
    consumer.close()
    return 0 if count == expected else 1


if __name__ == "__main__":
    sys.exit(main())
