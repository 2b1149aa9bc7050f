"""Orders from Kafka into Hive-partitioned Parquet files on S3, named after their offsets.

    stream-etl dev up
    stream-etl produce orders --count 20000
    stream-etl run topologies/orders_parquet.py --until-caught-up --arg dir=s3://lake/orders_files

Each commit writes ``country=XX/part-<topic>-<partition>-<first>-<last>...parquet`` files and
then a manifest under ``_stream_etl/commits/`` with the offsets; a replay after a crash
overwrites the same files, and files of a commit cut short are removed on restart, so
the directory never holds a row twice. One worker per directory (``assignment=direct``).
Job arguments: ``topic`` (default orders), ``dir`` (default s3://lake/orders_files),
``batch_records`` (default 100000).
"""

from connectors.kafka import KafkaSource
from connectors.parquet import ParquetSink
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(topic="orders", dir="s3://lake/orders_files", batch_records="100000")

topology = Topology("orders_parquet", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"], assignment="direct"), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(ParquetSink(args["dir"], partition_by=["country"]))
)
