"""Deterministic card-fraud data: transactions and per-customer statistics, no download.

Writes two Parquet files (and a CSV copy of the transactions for tools that want CSV):

- ``transactions.parquet``: one row per card transaction (``transaction_id``, ``customer_id``,
  ``event_timestamp``, ``amount``, ``merchant_category``, ``hour``, ``is_online``, ``is_fraud``).
  This is the entity data frame of the training set: keys, event time, label.
- ``customer_stats.parquet``: daily statistics per customer (``customer_id``, ``event_timestamp``,
  ``avg_amount_30d``, ``tx_count_7d``, ``chargeback_rate``, ``account_age_days``), the source of
  the Feast feature view. A few customers (``NEW_CUSTOMERS``) have no statistics at all, as new
  accounts do in real systems, so Feast's file store drops their transactions: the training-set
  step must report them.

Run: ``python examples/data/generate.py OUT_DIR [--rows N] [--seed S] [--corrupt]``.
``--corrupt`` injects negative amounts and null customer ids, which the suite must catch.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 60
CATEGORIES = ["grocery", "electronics", "travel", "fuel", "restaurants", "gaming", "jewelry"]
RISKY = {"electronics": 1.2, "gaming": 1.0, "jewelry": 1.5, "travel": 0.6}
NEW_CUSTOMERS = 5  # customers with transactions but no statistics (Feast drops their rows)


def generate(
    rows: int = 5000, customers: int = 400, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (transactions, customer_stats); the same arguments always give the same frames."""
    rng = np.random.default_rng(seed)
    cust_ids = np.arange(1001, 1001 + customers)
    risk = rng.beta(1.2, 12.0, size=customers)  # latent fraud propensity per customer
    base_amount = rng.lognormal(3.4, 0.6, size=customers)
    age_days = rng.integers(30, 3000, size=customers)

    # Daily statistics for every customer except the newest few.
    days = [START + timedelta(days=d) for d in range(DAYS)]
    known = customers - NEW_CUSTOMERS
    stats = pd.DataFrame(
        {
            "customer_id": np.repeat(cust_ids[:known], DAYS),
            "event_timestamp": np.tile(days, known),
            "avg_amount_30d": np.repeat(base_amount[:known], DAYS)
            * rng.normal(1.0, 0.05, known * DAYS),
            "tx_count_7d": rng.poisson(6, known * DAYS),
            "chargeback_rate": np.clip(
                np.repeat(risk[:known], DAYS) * 0.3 + rng.normal(0, 0.01, known * DAYS), 0, 1
            ),
            "account_age_days": np.repeat(age_days[:known], DAYS) + np.tile(np.arange(DAYS), known),
        }
    )
    stats["created"] = stats["event_timestamp"]

    # Transactions start one day in, so every known customer has statistics before them.
    idx = rng.integers(0, customers, size=rows)
    ts = [
        START + timedelta(days=1, seconds=int(s)) for s in rng.integers(0, (DAYS - 1) * 86400, rows)
    ]
    category = rng.choice(CATEGORIES, size=rows)
    amount = base_amount[idx] * rng.lognormal(0.0, 0.5, rows)
    hour = np.array([t.hour for t in ts])
    online = rng.random(rows) < 0.45
    logit = (
        -4.2
        + 9.0 * risk[idx]
        + 0.9 * np.log(amount / base_amount[idx] + 1e-9)
        + np.array([RISKY.get(c, 0.0) for c in category])
        + 0.8 * ((hour < 5) | (hour > 22))
        + 0.5 * online
    )
    fraud = rng.random(rows) < 1 / (1 + np.exp(-logit))
    tx = pd.DataFrame(
        {
            "transaction_id": np.arange(1, rows + 1),
            "customer_id": cust_ids[idx],
            "event_timestamp": ts,
            "amount": amount.round(2),
            "merchant_category": category,
            "hour": hour,
            "is_online": online.astype(int),
            "is_fraud": fraud.astype(int),
        }
    ).sort_values("event_timestamp", ignore_index=True)
    return tx, stats


def corrupt(tx: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """A broken extract: negative amounts and missing customer ids in about 2 % of rows."""
    rng = np.random.default_rng(seed)
    bad = tx.copy()
    hit = rng.random(len(bad)) < 0.02
    bad.loc[hit, "amount"] = -bad.loc[hit, "amount"]
    bad["customer_id"] = bad["customer_id"].astype("Int64")
    bad.loc[rng.random(len(bad)) < 0.02, "customer_id"] = pd.NA
    return bad


def write(out: Path, rows: int = 5000, seed: int = 7, broken: bool = False) -> dict[str, Path]:
    """Generate and write the files under ``out``; returns their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    tx, stats = generate(rows=rows, seed=seed)
    if broken:
        tx = corrupt(tx)
    paths = {
        "transactions": out / "transactions.parquet",
        "transactions_csv": out / "transactions.csv",
        "customer_stats": out / "customer_stats.parquet",
    }
    tx.to_parquet(paths["transactions"], index=False)
    tx.to_csv(paths["transactions_csv"], index=False)
    stats.to_parquet(paths["customer_stats"], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--corrupt", action="store_true")
    args = parser.parse_args()
    for name, path in write(args.out, args.rows, args.seed, args.corrupt).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
