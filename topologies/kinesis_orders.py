"""Orders from a Kinesis stream into a Delta table on S3, exactly once.

    make kinesalite && stream-etl dev up --kinesis      # S3, Kafka and kinesalite on 127.0.0.1:4567
    # put records in a stream "orders" (docs/KINESIS.md shows how), then:
    stream-etl run topologies/kinesis_orders.py --until-caught-up

Job arguments (``--arg key=value``): ``stream`` (default orders), ``table`` (default
s3://lake/kinesis_orders), ``batch_records`` (default 100000), ``leases`` (where the
workers of the job keep their shard leases: ``s3://...`` or a directory; default the
``STREAM_ETL_KINESIS_LEASE_URI`` setting, else ``.stream-etl/kinesis-leases``),
``lease_seconds`` (a dead worker's shards are taken over after this long, default 10).
Start the same command on several machines (with an ``s3://`` lease URI) and the workers
divide the stream's shards.
"""

from datetime import timedelta

from connectors.delta import DeltaSink
from connectors.kinesis import KinesisSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(
    stream="orders", table="s3://lake/kinesis_orders", batch_records="100000", leases="", lease_seconds="10"
)

source = KinesisSource(
    args["stream"],
    lease_uri=args["leases"] or None,
    lease_duration=timedelta(seconds=float(args["lease_seconds"])),
)
topology = Topology("kinesis_orders", max_batch_records=int(args["batch_records"]))
(
    topology.source(source, format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(DeltaSink(args["table"]))
)
