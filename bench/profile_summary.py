"""Summarize a py-spy speedscope profile (``py-spy record --format speedscope --threads``).

    python -m bench.profile_summary PROFILE.speedscope.json [--top 20] [--category]

Per thread: how many samples it has (py-spy records a thread only while it is
active, unless --idle was given; with --gil, only while it holds the GIL), the
functions with the most inclusive samples, and the lines with the most self
samples. ``--category`` also sorts every sample into one engine stage (innermost
match wins), e.g. Kafka consume, JSON decode, transform, Delta write.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

#: (category, predicate on "file:function"), checked from the innermost frame outwards.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("import", ("_find_and_load", "_call_with_frames_removed")),
    ("kafka consume", ("connectors/kafka/source.py:KafkaReader.poll", "connectors/kafka/source.py:poll")),
    ("kafka end probe", ("_probe_ends", "end_positions")),
    ("kafka commit/close", ("KafkaReader.close", "KafkaReader.commit", "_finish_join")),
    ("batcher", ("stream_etl/batcher.py",)),
    ("json decode", ("stream_etl/decode.py",)),
    ("sink snapshot", ("DeltaWriter.snapshot", "DeltaSnapshot", "read_positions")),
    ("delta write/commit", ("write_deltalake", "DeltaWriter.commit")),
    ("plan/accounting", ("stream_etl/checkpoint.py", "stream_etl/metrics.py")),
    ("transform", ("stream_etl/transforms/", "stream_etl/topology.py", "_Conform", "DeltaWriter.conform")),
    ("sink summary", ("DeltaWriter.summary",)),
    ("queue wait", ("queue.py:Queue.get", "queue.py:Queue.put", "threading.py:Condition.wait")),
    ("sleep", ("time.sleep",)),
]


def _category(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def summarize(path: Path, top: int, categories: bool, callers: str | None = None) -> dict[str, Any]:
    data = json.loads(path.read_text())
    frames = [f"{f.get('file', '')}:{f['name']}" for f in data["shared"]["frames"]]
    lines = [f"{f.get('file', '')}:{f.get('line')} {f['name']}" for f in data["shared"]["frames"]]
    threads: dict[str, Any] = {}
    for profile in data["profiles"]:
        samples: list[list[int]] = profile["samples"]
        weights: list[float] = profile.get("weights") or [1] * len(samples)
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        stages: Counter[str] = Counter()
        chains: Counter[str] = Counter()
        total = 0.0
        for stack, weight in zip(samples, weights, strict=True):
            total += weight
            names = [frames[i] for i in stack]
            for name in set(names):
                inclusive[name] += weight
            if stack:
                own[lines[stack[-1]]] += weight
            if categories:
                stages[_category(names)] += weight
            if callers:
                hits = [i for i, name in enumerate(names) if callers in name]
                if hits:
                    at = hits[0]
                    chains[" <- ".join(lines[stack[j]] for j in range(at, max(at - 4, -1), -1))] += weight
        threads[profile["name"]] = {
            "samples": len(samples),
            "seconds": total,
            "unit": profile.get("unit", ""),
            "chains": chains.most_common(top),
            "inclusive": inclusive.most_common(top),
            "self": own.most_common(top),
            "categories": stages.most_common(),
        }
    return threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--category", action="store_true", help="also sort samples into engine stages")
    parser.add_argument("--callers", metavar="TEXT", help="show the call chains into frames whose name contains TEXT")
    args = parser.parse_args(argv)
    threads = summarize(args.profile, args.top, args.category, args.callers)
    grand = sum(t["seconds"] for t in threads.values()) or 1
    for name, info in sorted(threads.items(), key=lambda item: -item[1]["seconds"]):
        total = info["seconds"] or 1
        print(
            f"\n=== {name}: {info['samples']} samples, {info['seconds']:.2f} {info['unit']} "
            f"({100 * info['seconds'] / grand:.0f}% of all)"
        )
        if args.category:
            print("  stages: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in info["categories"]))
        if info["chains"]:
            print(f"  call chains into {args.callers!r} (innermost first):")
            for chain, weight in info["chains"]:
                print(f"    {100 * weight / total:5.1f}%  {chain}")
        print("  inclusive:")
        for frame, weight in info["inclusive"]:
            print(f"    {100 * weight / total:5.1f}%  {frame}")
        print("  self (innermost line):")
        for frame, weight in info["self"]:
            print(f"    {100 * weight / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
