"""Orders cleaned with SQL, deduplicated, enriched from a lookup table: the benchmark's rich topology.

    stream-etl run topologies/orders_rich.py --until-caught-up --arg table=s3://lake/orders_rich

Steps: ``dedupe`` drops an order id seen again within ten minutes of event time (bounded
state, restored after a restart), ``sql`` keeps valid amounts and converts them to cents in
one statement, ``enrich`` joins the country lookup (a CSV shipped beside this module; left
join, reloaded every five minutes), and ``derive`` adds the VAT. Job arguments: ``topic``
(default orders), ``table`` (default s3://lake/orders_rich), ``lookup`` (default:
topologies/data/countries.csv), ``batch_records`` (default 100000), ``partition_by``
(comma-separated partition columns, default none), ``assignment`` (group or direct).
"""

from datetime import timedelta
from pathlib import Path

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA
from stream_etl.transforms import FileLookup

args = job_args(
    topic="orders",
    table="s3://lake/orders_rich",
    lookup=str(Path(__file__).parent / "data" / "countries.csv"),
    batch_records="100000",
    partition_by="",
    assignment="group",
)

topology = Topology("orders_rich", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"], assignment=args["assignment"]), format=JsonFormat(ORDER_SCHEMA))
    .dedupe("id", time_column="ts", horizon=timedelta(minutes=10), name="unique_ids")
    .sql(
        "SELECT id, user, country, ts, CAST(round(amount * 100) AS BIGINT) AS amount_cents FROM batch WHERE amount >= 0",
        name="clean",
    )
    .enrich(FileLookup(args["lookup"], format="csv"), on={"country": "code"}, name="countries")
    .derive("vat_cents", "CAST(round(amount_cents * vat_rate) AS BIGINT)", name="vat_cents")
    .select("id", "user", "country", "region", "amount_cents", "vat_cents", "ts", name="project")
    .sink(DeltaSink(args["table"], partition_by=[c for c in args["partition_by"].split(",") if c]))
)
