"""Limits measured in the same run: how fast this machine parses the sample JSON into Arrow
(pyarrow.json, and the engine's flat-JSON fast path when it is built) and writes Parquet (the
Delta sink's file format), each on one thread, with nothing else in the way. The engine cannot
beat these per core."""

from __future__ import annotations

import io
import time

from bench.scenarios import Context, Outcome

RECORDS = 200_000
REPEAT = 3


def limits(context: Context) -> Outcome:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    from stream_etl.flatjson import FlatJson
    from stream_etl.samples import ORDER_SCHEMA, orders

    records = min(RECORDS, context.records)
    buffer = b"\n".join(orders(records)) + b"\n"
    options = pj.ParseOptions(explicit_schema=ORDER_SCHEMA)
    read = pj.ReadOptions(use_threads=False, block_size=4 << 20)
    parse_s, write_s = [], []
    table = pa.table({})
    for _ in range(REPEAT):
        started = time.perf_counter()
        table = pj.read_json(io.BytesIO(buffer), read_options=read, parse_options=options)
        parse_s.append(time.perf_counter() - started)
    for _ in range(REPEAT):
        sink = io.BytesIO()
        started = time.perf_counter()
        pq.write_table(table, sink, compression="snappy")
        write_s.append(time.perf_counter() - started)
    fast_s = []
    fast = FlatJson.for_schema(ORDER_SCHEMA, unexpected_fields="ignore")
    for _ in range(REPEAT if fast is not None else 0):
        started = time.perf_counter()
        parsed = fast.parse(buffer, records) if fast is not None else None
        fast_s.append(time.perf_counter() - started)
        if parsed is None or not parsed.equals(table.combine_chunks()):
            msg = "the flat-JSON fast path did not read the sample orders as Arrow does"
            raise RuntimeError(msg)
    parse, write = min(parse_s), min(write_s)
    fast_figures = {"limit_fast_json_parse_rows_per_s": round(records / min(fast_s), 1)} if fast_s else {}
    return Outcome(
        figures={
            **fast_figures,
            "limit_json_parse_rows_per_s": round(records / parse, 1),
            "limit_json_parse_mb_per_s": round(len(buffer) / 2**20 / parse, 1),
            "limit_parquet_write_rows_per_s": round(records / write, 1),
            "limit_parquet_write_mb_per_s": round(table.nbytes / 2**20 / write, 1),
        }
    )
