"""Reads Tributary's per-table Debezium topics with kafka-python (a client
no one here wrote) and checks that every acknowledged write appears with the
right before/after values, and that every delete is followed by a tombstone.

Usage: debezium_consumer.py BROKERS TOPIC EXPECTED.json
EXPECTED.json: [{"op": "c"|"u"|"d", "key": {...}, "before": {...}|null, "after": {...}|null}, ...]
Exit status 0 when everything was found, 1 otherwise.
"""
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def main():
    brokers, topic, expected_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(expected_file) as f:
        expected = json.load(f)
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, consumer_timeout_ms=1000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    seen = []  # (key dict, envelope dict or None for a tombstone)
    deadline = time.time() + 60
    while time.time() < deadline:
        for m in consumer:
            key = json.loads(m.key)
            seen.append((key, json.loads(m.value) if m.value is not None else None))
        if all(find(seen, e) is not None for e in expected):
            break
    missing = [e for e in expected if find(seen, e) is None]
    bad_tombstones = [e for e in expected if e["op"] == "d" and not tombstone_after(seen, e)]
    print(f"events read: {len(seen)}, expected: {len(expected)}, missing: {len(missing)}, "
          f"deletes without a tombstone: {len(bad_tombstones)}")
    for e in (missing + bad_tombstones)[:5]:
        print("problem:", json.dumps(e))
    return 0 if not missing and not bad_tombstones else 1


def find(seen, e):
    for i, (key, env) in enumerate(seen):
        if env is None or key != e["key"]:
            continue
        if env["op"] == e["op"] and env["before"] == e["before"] and env["after"] == e["after"]:
            return i
    return None


def tombstone_after(seen, e):
    i = find(seen, e)
    return i is not None and any(key == e["key"] and env is None for key, env in seen[i + 1:])


if __name__ == "__main__":
    sys.exit(main())
