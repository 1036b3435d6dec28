"""Feast definitions of the card-fraud example: one entity, one feature view, one service.

The offline data is ``customer_stats.parquet`` as written by ``examples/data/generate.py``:
daily statistics per customer. Feast reads it from this repo's ``data/`` folder, or from the
folder named by the ``FRAUD_DATA_DIR`` environment variable when it is set. The path is read
when the definitions are applied (``feast apply``, or mlrelay's first use of the repo) and is
stored in the registry from then on.
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

_data_dir = os.environ.get("FRAUD_DATA_DIR")
# A relative path is resolved by Feast against this repo; a directory given in the environment
# is taken relative to where the command runs, as any path on a command line would be.
STATS_PATH = (
    os.path.join(os.path.abspath(_data_dir), "customer_stats.parquet")
    if _data_dir
    else "data/customer_stats.parquet"
)

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder.",
)

customer_stats_source = FileSource(
    name="customer_stats_source",
    path=STATS_PATH,
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    # Statistics are computed daily; a value older than two days is stale, and a transaction
    # that only has stale statistics gets none (the training-set step reports such rows).
    ttl=timedelta(days=2),
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="avg_amount_30d", dtype=Float64, description="Mean amount over 30 days."),
        Field(name="tx_count_7d", dtype=Int64, description="Transactions in the last 7 days."),
        Field(name="chargeback_rate", dtype=Float64, description="Share of charged-back amounts."),
        Field(name="account_age_days", dtype=Int64, description="Days since the account opened."),
    ],
    source=customer_stats_source,
    online=True,
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats],
    description="The features the fraud detector is trained and served with.",
)
