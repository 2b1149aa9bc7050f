"""Orders enriched with country data from a lookup table, revenue per region.

    stream-etl run topologies/orders_enriched.py --until-caught-up --arg table=s3://lake/orders_enriched

The lookup is a CSV file shipped beside this module (point ``lookup`` at Parquet or CSV
on S3, or use connectors.delta.DeltaLookup for a Delta table); it is reloaded every
five minutes. Orders for unknown countries keep null lookup columns (a left join).
Job arguments: ``topic`` (default orders), ``table`` (default s3://lake/orders_enriched),
``lookup`` (default: topologies/data/countries.csv).
"""

from pathlib import Path

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA
from stream_etl.transforms import FileLookup

args = job_args(
    topic="orders",
    table="s3://lake/orders_enriched",
    lookup=str(Path(__file__).parent / "data" / "countries.csv"),
)

topology = Topology("orders_enriched")
(
    topology.source(KafkaSource(args["topic"]), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .enrich(FileLookup(args["lookup"], format="csv"), on={"country": "code"}, name="countries")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .derive("vat_cents", "CAST(round(amount * 100 * vat_rate) AS BIGINT)", name="vat_cents")
    .select("id", "user", "country", "country_name", "region", "amount_cents", "vat_cents", "ts", name="project")
    .sink(DeltaSink(args["table"], partition_by=["region"]))
)
