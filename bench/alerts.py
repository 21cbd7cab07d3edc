"""The alert benchmark: a real ``cerana serve`` on a database of cases and
alerts (issue #4).

    python -m bench.alerts --backend sqlite
    python -m bench.alerts --backend sqlite --alerts 5000 --cases 100 \\
        --observables 1000 --tasks 300          # 1/100 scale, a quick check

Generates cases with bench.generate, then alerts straight into the tables
(10 artifacts each by default, some of them values the cases hold, so the
similarity look-ups find something), starts the server and measures:

- alert list: ``GET /api/alert`` newest first, and the New alerts, first 15;
- alert preview: ``GET /api/alert/{id}?similarity=1`` of random alerts;
- single-alert ingest over HTTP, 10 artifacts each, 8 clients at once;
- bulk ingest: ``POST /api/alert/_bulk`` with 1,000 alerts a request.

Prints a Markdown table with each target's PASS/FAIL and writes the figures
to ``bench/results/alerts-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import core
from bench import generate as generator
from cerana.domain.alerts import alert_id
from cerana.domain.dates import now_ms
from cerana.services.observables import data_key
from cerana.store import tables
from cerana.store.db import Database

LIST_TARGET = core.Target("p95_ms", 30.0, "p95 ≤ 30 ms")
PREVIEW_TARGET = core.Target("p95_ms", 20.0, "p95 ≤ 20 ms")
INGEST_TARGET = core.Target("throughput", 400.0, "≥ 400 alerts/s")
BULK_TARGET = core.Target("throughput", 5000.0, "≥ 5,000 alerts/s")
BULK_SIZE = 1000
KNOWN_SHARE = 0.3  # artifacts whose value some case holds
ALERT_STATUS = generator.Weighted.of(
    {"New": 40, "Updated": 5, "Ignored": 35, "Imported": 20}
)
SOURCES = ("splunk", "elastalert", "wazuh", "suricata", "mail-gateway", "misp")
TYPES = ("siem", "ids", "edr", "external", "misp")
DAY_MS = generator.DAY_MS


@dataclass(frozen=True)
class AlertVolume:
    alerts: int
    artifacts_per_alert: int


class BulkMeasurement(core.Measurement):
    """Timings of bulk requests, with throughput counted in alerts."""

    items_per_request: int = BULK_SIZE

    def summary(self) -> dict[str, float]:
        figures = super().summary()
        figures["throughput"] *= self.items_per_request
        return figures


# -- data ---------------------------------------------------------------------


def known_values(db: Database, limit: int) -> list[generator.Observed]:
    """Returns up to ``limit`` distinct observable values of the cases."""
    observable = tables.observable
    with db.read() as conn:
        rows = conn.execute(
            select(observable.c.data_type, observable.c.data, observable.c.data_key)
            .where(observable.c.data.is_not(None))
            .group_by(observable.c.data_type, observable.c.data, observable.c.data_key)
            .order_by(func.count().desc())
            .limit(limit)
        ).all()
    return [generator.Observed(*row) for row in rows]


class ArtifactValues:
    """Draws artifact values: values the cases hold (skewed towards the
    most common) or fresh ones."""

    def __init__(self, known: Sequence[generator.Observed]) -> None:
        self.known = list(known)
        self.serial = 10_000_000  # far above the case generator's serials

    def draw(
        self, rng: random.Random, taken: set[tuple[str, str]]
    ) -> generator.Observed:
        if self.known and rng.random() < KNOWN_SHARE:
            candidate = self.known[int(len(self.known) * rng.random() ** 2)]
            if (candidate.data_type, candidate.key) not in taken:
                return candidate
        self.serial += 1
        data_type = generator.DATATYPE.pick(rng)
        value = generator._fresh_value(rng, data_type, self.serial)
        return generator.Observed(data_type, value, data_key(value))


def alert_batches(
    rng: random.Random,
    volume: AlertVolume,
    values: ArtifactValues,
    organisation: str,
    batch_size: int,
    now: int,
) -> Iterator[generator.Batch]:
    tags = generator.tag_vocabulary()[:40]
    for start in range(0, volume.alerts, batch_size):
        alerts, alert_tags, artifacts = [], [], []
        for number in range(start, min(start + batch_size, volume.alerts)):
            row = _alert_row(rng, number, organisation, now, volume)
            chosen = rng.sample(tags, rng.randint(0, 3))
            row["tags"] = chosen
            alerts.append(row)
            alert_tags += ({"alert_id": row["id"], "tag": t} for t in chosen)
            artifacts += _artifact_rows(rng, row, values, volume.artifacts_per_alert)
        yield [
            (tables.alert, alerts),
            (tables.alert_tag, alert_tags),
            (tables.alert_artifact, artifacts),
        ]


def _alert_row(
    rng: random.Random, number: int, organisation: str, now: int, volume: AlertVolume
) -> dict[str, Any]:
    alert_type, source = rng.choice(TYPES), rng.choice(SOURCES)
    source_ref = f"bench-{number}"
    date = now - rng.randint(0, 365 * DAY_MS)
    return {
        "id": alert_id(alert_type, source, source_ref),
        "type": alert_type,
        "source": source,
        "source_ref": source_ref,
        "date": date,
        "last_sync_date": date,
        "case_id": None,
        "title": f"{source} detection {number}",
        "description": "Generated by bench.alerts to measure alert pages.",
        "severity": generator.SEVERITY.pick(rng),
        "tlp": generator.TLP.pick(rng),
        "status": ALERT_STATUS.pick(rng),
        "follow": True,
        "case_template": None,
        "tags": [],
        "occurrences": 1,
        "last_seen": date,
        "artifact_count": volume.artifacts_per_alert,
        "organisation": organisation,
        "created_by": "admin",
        "created_at": date,
        "updated_by": None,
        "updated_at": None,
        "version": 1,
    }


def _artifact_rows(
    rng: random.Random, alert: dict[str, Any], values: ArtifactValues, count: int
) -> list[dict[str, Any]]:
    rows = []
    taken: set[tuple[str, str]] = set()
    for position in range(count):
        observed = values.draw(rng, taken)
        taken.add((observed.data_type, observed.key))
        rows.append(
            {
                "id": generator.new_id(rng),
                "alert_id": alert["id"],
                "organisation": alert["organisation"],
                "position": position,
                "data_type": observed.data_type,
                "data": observed.value,
                "data_key": observed.key,
                "message": None,
                "tags": [],
                "tlp": alert["tlp"],
                "ioc": rng.random() < 0.1,
                "start_date": alert["date"],
                "attachment_id": None,
                "attachment_name": None,
                "attachment_content_type": None,
            }
        )
    return rows


def generate_alerts(
    setup: core.Setup, volume: AlertVolume, seed: int
) -> dict[str, int]:
    """Inserts the alerts straight into the tables; returns rows per table."""
    print(
        f"generating {volume.alerts:,} alerts with "
        f"{volume.alerts * volume.artifacts_per_alert:,} artifacts",
        flush=True,
    )
    db = Database(setup.database_url, sqlite_synchronous="OFF")
    try:
        values = ArtifactValues(known_values(db, 50_000))
        rows: Counter[str] = Counter()
        batches = alert_batches(
            random.Random(seed), volume, values, "cerana", 2_000, now_ms()
        )
        progress = generator.Progress("alerts", volume.alerts)
        generator.write_batches(db, progress, batches, rows)
        generator.analyze(db)
    finally:
        db.dispose()
    return dict(rows)


# -- requests -----------------------------------------------------------------


def list_calls() -> core.CallFactory:
    queries = [
        ("all", "/api/alert?range=0-15&sort=-date", None),
        (
            "New",
            "/api/alert/_search",
            {"query": {"status": "New"}, "sort": ["-date"], "range": "0-15"},
        ),
    ]

    def make(count: int, start: int) -> list[core.Call]:
        calls = []
        for index in range(start, start + count):
            group, path, body = queries[index % len(queries)]
            method = "GET" if body is None else "POST"
            calls.append(core.Call(method, path, body, group=group, check=_page))
        return calls

    return make


def _page(found: Any) -> bool:
    return isinstance(found, list) and 0 < len(found) <= 15 and "artifacts" in found[0]


def preview_calls(alert_ids: Sequence[str]) -> core.CallFactory:
    def make(count: int, start: int) -> list[core.Call]:
        return [
            core.Call(
                "GET",
                f"/api/alert/{alert_ids[i % len(alert_ids)]}?similarity=1",
                check=_preview,
            )
            for i in range(start, start + count)
        ]

    return make


def _preview(found: Any) -> bool:
    return isinstance(found, dict) and "similarCases" in found


def ingest_calls(run: str, artifacts: int) -> core.CallFactory:
    def make(count: int, start: int) -> list[core.Call]:
        return [
            core.Call("POST", "/api/alert", new_alert(run, i, artifacts), expect=201)
            for i in range(start, start + count)
        ]

    return make


def bulk_calls(run: str, artifacts: int) -> core.CallFactory:
    def make(count: int, start: int) -> list[core.Call]:
        calls = []
        for request in range(start, start + count):
            first = (request + 1) * 1_000_000
            items = [new_alert(run, first + n, artifacts) for n in range(BULK_SIZE)]
            calls.append(
                core.Call(
                    "POST", "/api/alert/_bulk", items, expect=201, check=_all_created
                )
            )
        return calls

    return make


def _all_created(found: Any) -> bool:
    return isinstance(found, dict) and found.get("created") == BULK_SIZE


def new_alert(run: str, number: int, artifacts: int) -> dict[str, Any]:
    """An alert as a SIEM sends it, with ``artifacts`` distinct values."""
    kinds = (
        ("ip", lambda n, k: f"10.{k}.{(n // 250) % 250}.{n % 250}"),
        ("domain", lambda n, k: f"h{n}-{k}.{run}.example"),
        ("url", lambda n, k: f"https://{run}.example/{n}/{k}"),
        ("hash", lambda n, k: f"{(n * 31 + k) & (2**128 - 1):032x}"),
        ("mail", lambda n, k: f"user{n}.{k}@{run}.example"),
    )
    return {
        "type": "bench",
        "source": f"bench-{run}",
        "sourceRef": f"event-{number}",
        "title": f"Benchmark alert {number}",
        "description": "Sent by bench.alerts to measure ingestion.",
        "severity": 2,
        "tags": ["bench"],
        "artifacts": [
            {
                "dataType": kinds[k % 5][0],
                "data": kinds[k % 5][1](number, k),
                "message": "seen",
            }
            for k in range(artifacts)
        ],
    }


# -- run ----------------------------------------------------------------------


def sample_alert_ids(url: str, count: int) -> list[str]:
    db = Database(url)
    try:
        with db.read() as conn:
            return list(
                conn.execute(
                    select(tables.alert.c.id).order_by(func.random()).limit(count)
                ).scalars()
            )
    finally:
        db.dispose()


def count_rows(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.read() as conn:
            return {
                t.name: int(
                    conn.execute(select(func.count()).select_from(t)).scalar_one()
                )
                for t in (
                    tables.alert,
                    tables.alert_artifact,
                    tables.case,
                    tables.observable,
                )
            }
    finally:
        db.dispose()


def run_benchmark(
    base_url: str, key: str, alert_ids: list[str], args: argparse.Namespace
) -> list[core.Measurement]:
    run = f"r{int(time.time())}"
    with core.new_client(base_url, key) as client:
        bench = core.Bench(base_url, key, client, args.requests, args.warmup)
        listing, timings = bench.measure(
            "alert list (newest first, 0-15)", list_calls(), target=LIST_TARGET
        )
        results = [
            listing,
            *core.group_measurements(listing, timings, "alert list, {}"),
        ]
        preview, _ = bench.measure(
            "alert preview with similarity",
            preview_calls(alert_ids),
            target=PREVIEW_TARGET,
        )
        ingest, _ = bench.measure(
            f"alert ingest, {args.artifacts} artifacts, 8 clients",
            ingest_calls(run, args.artifacts),
            concurrent=True,
            target=INGEST_TARGET,
        )
        results += [preview, ingest, measure_bulk(bench, run, args)]
    return results


def measure_bulk(
    bench: core.Bench, run: str, args: argparse.Namespace
) -> core.Measurement:
    make = bulk_calls(f"{run}b", args.artifacts)
    bench.sequential(make(1, args.bulk_requests))  # warm-up
    timings, seconds = bench.sequential(make(args.bulk_requests, 0))
    measurement = BulkMeasurement(
        f"bulk ingest ({BULK_SIZE} alerts, {args.artifacts} artifacts each, per request)",
        1,
        timings.latencies_ms,
        seconds,
        timings.errors,
        BULK_TARGET,
        "throughput in alerts/s",
    )
    if timings.errors:
        print(f"  bulk: {timings.errors} error(s), first: {timings.first_error}")
    return measurement


def write_results(
    setup: core.Setup,
    rows: dict[str, int],
    measurements: Sequence[core.Measurement],
    args: argparse.Namespace,
) -> Path:
    payload = {
        "backend": setup.backend,
        "database_url": make_url(setup.database_url).render_as_string(
            hide_password=True
        ),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "requests": args.requests,
        "measurements": [m.as_json() for m in measurements],
        "machine": core.machine_description(setup),
    }
    core.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = core.RESULTS_DIR / f"alerts-{setup.backend}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerts",
        description="Benchmark alert ingestion and alert pages on a real server.",
    )
    core.add_server_arguments(parser)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, help="untimed requests first")
    parser.add_argument("--bulk-requests", type=int, default=10)
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--alerts", type=int, default=500_000)
    parser.add_argument("--artifacts", type=int, default=10, help="per alert")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--observables", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.warmup = (
        args.warmup if args.warmup is not None else max(20, args.requests // 10)
    )
    setup = core.setup_from(args)
    setup.data_dir.mkdir(parents=True, exist_ok=True)
    cases = generator.Volume(args.cases, args.observables, args.tasks)
    core.prepare_database(setup, cases, args.skip_generate, args.seed)
    if not args.skip_generate:
        generate_alerts(setup, AlertVolume(args.alerts, args.artifacts), args.seed)
    alert_ids = sample_alert_ids(setup.database_url, args.requests + args.warmup)
    rows = count_rows(setup.database_url)
    if not alert_ids:
        print(
            "error: the database has no alerts; run without --skip-generate",
            file=sys.stderr,
        )
        return 1
    key = core.issue_admin_key(setup)
    try:
        with core.running_server(setup) as base_url:
            measurements = run_benchmark(base_url, key, alert_ids, args)
    except RuntimeError as exc:
        print(f"error: {exc}; see {setup.data_dir / 'server.log'}", file=sys.stderr)
        return 1
    path = write_results(setup, rows, measurements, args)
    print(f"\n## Cerana alert benchmark ({setup.backend})\n")
    print("Rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + "\n")
    print(core.markdown_table(measurements))
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
