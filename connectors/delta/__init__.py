"""Delta Lake connector (delta-rs): a sink that stores source positions as txn actions."""

from connectors.delta.lookup import DeltaLookup
from connectors.delta.sink import DeltaSink, txn_app_id

__all__ = ["DeltaLookup", "DeltaSink", "txn_app_id"]
