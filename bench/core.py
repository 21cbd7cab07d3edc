"""The core benchmark: a real ``cerana serve`` against a generated database.

    python -m bench.core --backend sqlite
    python -m bench.core --backend postgresql --skip-generate

Generates the data (bench.generate) unless --skip-generate, issues an admin
API key, starts the server on a free port of 127.0.0.1 and measures, over
keep-alive HTTP connections:

- the HTTP floor: ``GET /api/health`` (no authentication, ``SELECT 1``);
- case search: open cases with one tag, newest first, first 50 (tags from
  the most common to the rarest);
- case read: ``GET /api/case/{id}`` of random cases;
- similar observables: ``GET /api/case/artifact/{id}/similar`` of random
  observables whose value is in other live cases, with TheHive's default
  page (the first 10; the target) and with ``range=0-100``;
- case creation, one client in sequence, then 8 clients at once.

Prints a Markdown table with each target's PASS/FAIL and writes the same
figures to ``bench/results/core-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform as host_platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from sqlalchemy import Connection, Select, and_, create_engine, func, or_, select, text
from sqlalchemy.engine import make_url

from bench import generate as generator
from cerana.platform import Platform
from cerana.services import users
from cerana.services.context import system_actor
from cerana.store import tables
from cerana.store.db import Database, normalise_url

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cerana_bench"
DEFAULT_DATA_DIRS = {
    "sqlite": Path("/tmp/cerana-bench-sqlite"),
    "postgresql": Path("/tmp/cerana-bench-postgresql"),
}
CONCURRENT_CLIENTS = 8
SERVER_START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0

# Figures reported elsewhere, printed for comparison; not measured here.
BASELINES = (
    ("TheHive 3 (Elasticsearch)", "case search over 12,580 cases", "26 ms"),
    ("TheHive 4 (JanusGraph)", "case search over 12,580 cases", "12 s"),
)


@dataclass(frozen=True)
class Target:
    """A goal on one statistic: p95 latency at most, or throughput at least."""

    statistic: str  # "p95_ms" or "throughput"
    limit: float
    label: str

    def met_by(self, summary: dict[str, float]) -> bool:
        if self.statistic == "throughput":
            return summary["throughput"] >= self.limit
        return summary[self.statistic] <= self.limit


SEARCH_TARGET = Target("p95_ms", 20.0, "p95 ≤ 20 ms")
SIMILAR_TARGET = Target("p95_ms", 5.0, "p95 ≤ 5 ms")
CREATION_TARGET = Target("throughput", 300.0, "≥ 300 cases/s")


@dataclass(frozen=True)
class Call:
    """One HTTP request to time, with the status it must answer."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    expect: int = 200
    group: str = ""
    check: Callable[[Any], bool] | None = None
    # Checks the whole response instead of its JSON body (web pages).
    check_response: Callable[[httpx.Response], bool] | None = None


@dataclass
class Measurement:
    """The timings of one kind of request."""

    name: str
    clients: int
    latencies_ms: list[float]
    seconds: float
    errors: int
    target: Target | None = None
    notes: str = ""

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms) or [math.nan]
        return {
            "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95),
            "p99_ms": percentile(ordered, 99),
            "mean_ms": statistics.fmean(ordered),
            "throughput": len(self.latencies_ms) / self.seconds
            if self.seconds
            else 0.0,
        }

    def verdict(self) -> str:
        if self.target is None:
            return "-"
        if self.errors:
            return "FAIL (errors)"
        return "PASS" if self.target.met_by(self.summary()) else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "clients": self.clients,
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            **{k: round(v, 3) for k, v in self.summary().items()},
            "target": self.target.label if self.target else None,
            "result": self.verdict(),
            "notes": self.notes,
        }


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = max(0, math.ceil(rank / 100 * len(ordered)) - 1)
    return ordered[index]


# -- database and server ------------------------------------------------------


@dataclass
class Setup:
    backend: str
    database_url: str
    data_dir: Path
    admin_password: str = generator.DEFAULT_ADMIN_PASSWORD
    generation: generator.GenerationReport | None = None
    # More server settings, as CERANA_* variables (bench.analysis sets workers).
    environment: dict[str, str] = field(default_factory=dict)


def reset_postgresql(url: str, *, drop: bool) -> None:
    """Creates the database of ``url`` if missing, dropping it first if asked."""
    target = make_url(url)
    name = target.database or "cerana_bench"
    engine = create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            exists = conn.execute(query, {"name": name}).first() is not None
            if exists and drop:
                print(f"dropping database {name}", flush=True)
                conn.exec_driver_sql(f"DROP DATABASE {quoted} WITH (FORCE)")
                exists = False
            if not exists:
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        engine.dispose()


def remove_sqlite_files(url: str) -> None:
    """Deletes the SQLite database of ``url`` with its WAL and shared-memory files."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)


def prepare_database(
    setup: Setup, volume: generator.Volume, skip: bool, seed: int
) -> None:
    """Starts from an empty database and fills it, unless ``skip``."""
    if setup.backend == "postgresql":
        reset_postgresql(setup.database_url, drop=not skip)
    elif not skip:
        remove_sqlite_files(setup.database_url)
    if skip:
        return
    print(
        f"generating {volume.cases:,} cases, {volume.observables:,} observables, "
        f"{volume.tasks:,} tasks",
        flush=True,
    )
    setup.generation = generator.generate(
        setup.database_url, volume, data_dir=setup.data_dir, seed=seed
    )
    generator.print_report(setup.generation)


def issue_admin_key(setup: Setup) -> str:
    """Returns a fresh API key of the administrator."""
    settings = generator.bench_settings(
        setup.database_url, setup.data_dir, setup.admin_password
    )
    platform = Platform.open(settings)
    try:
        platform.prepare()
        with platform.db.write() as conn:
            return users.renew_key(
                conn, system_actor(settings.organisation), settings.admin_login
            )
    finally:
        platform.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(setup: Setup) -> dict[str, str]:
    """The environment of the server: ours, with no stray Cerana settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERANA_")}
    env.update(
        CERANA_DATA_DIR=str(setup.data_dir),
        CERANA_DATABASE_URL=setup.database_url,
        CERANA_ADMIN_PASSWORD=setup.admin_password,
    )
    env.update(setup.environment)
    return env


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{base_url}/api/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the server did not answer /api/health in {SERVER_START_TIMEOUT} s"
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_server(setup: Setup) -> Iterator[str]:
    """Runs ``cerana serve`` on a free port; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "cerana.cli", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log_path = setup.data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=server_environment(setup), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_healthy(process, base_url)
            print(
                f"server {process.pid} ready on {base_url} (log: {log_path})",
                flush=True,
            )
            yield base_url
        finally:
            stop_server(process)


# -- what to ask --------------------------------------------------------------


class Recurring(NamedTuple):
    """A live observable whose value is in ``others`` other live cases."""

    id: str
    data_type: str
    others: int


@dataclass
class Inputs:
    """Real ids and tags from the database, for requests that find something."""

    case_ids: list[str]
    tags: dict[str, list[str]]  # tier -> tags
    similar: list[Recurring]
    volume: dict[str, int] = field(default_factory=dict)


def random_case_ids(conn: Connection, count: int) -> list[str]:
    case = tables.case
    query = select(case.c.id).where(case.c.status != "Deleted")
    return list(conn.execute(query.order_by(func.random()).limit(count)).scalars())


def tags_by_tier(conn: Connection) -> dict[str, list[str]]:
    """Tags of open cases in three tiers: the five most common, five from
    the middle of the ranking, the five rarest."""
    tag, case = tables.case_tag, tables.case
    counted = func.count().label("cases")
    rows = conn.execute(
        select(tag.c.tag, counted)
        .join(case, case.c.id == tag.c.case_id)
        .where(case.c.status == "Open")
        .group_by(tag.c.tag)
        .order_by(counted.desc(), tag.c.tag)
    ).all()
    ranked = [row.tag for row in rows]
    middle = len(ranked) // 2
    return {
        "common": ranked[:5],
        "medium": ranked[max(0, middle - 2) : middle + 3],
        "rare": ranked[-5:],
    }


def _live(query: Select[Any]) -> Select[Any]:
    """Joins the observables of ``query`` to their case and keeps those the
    similar look-up counts: observable Ok, case neither deleted nor a duplicate."""
    obs, case = tables.observable, tables.case
    resolution = case.c.resolution_status
    return (
        query.join(case, case.c.id == obs.c.case_id)
        .where(obs.c.status == "Ok", case.c.status != "Deleted")
        .where(or_(resolution.is_(None), resolution != "Duplicated"))
    )


def _cases_holding(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Returns, per (type, key), how many live cases hold a live observable of it."""
    obs = tables.observable
    holders: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        wanted = or_(
            *(and_(obs.c.data_type == t, obs.c.data_key == k) for t, k in chunk)
        )
        counted = select(
            obs.c.data_type, obs.c.data_key, func.count(func.distinct(obs.c.case_id))
        )
        query = _live(counted).where(wanted).group_by(obs.c.data_type, obs.c.data_key)
        for data_type, key, cases in conn.execute(query):
            holders[(data_type, key)] = int(cases)
    return holders


def recurring_observables(conn: Connection, count: int) -> list[Recurring]:
    """Returns up to ``count`` random live observables whose value is in
    other live cases too."""
    obs = tables.observable
    candidates = conn.execute(
        _live(select(obs.c.id, obs.c.data_type, obs.c.data_key))
        .order_by(func.random())
        .limit(count * 4)
    ).all()
    holders = _cases_holding(
        conn, list({(c.data_type, c.data_key) for c in candidates})
    )
    recurring = [
        Recurring(c.id, c.data_type, holders[(c.data_type, c.data_key)] - 1)
        for c in candidates
    ]
    return [r for r in recurring if r.others > 0][:count]


def table_counts(conn: Connection) -> dict[str, int]:
    counted = (tables.case, tables.task, tables.observable, tables.case_tag)
    return {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in counted
    }


def collect_inputs(database_url: str, count: int) -> Inputs:
    db = Database(database_url)
    try:
        with db.read() as conn:
            return Inputs(
                case_ids=random_case_ids(conn, count),
                tags=tags_by_tier(conn),
                similar=recurring_observables(conn, count),
                volume=table_counts(conn),
            )
    finally:
        db.dispose()


# -- requests -----------------------------------------------------------------

CallFactory = Callable[[int, int], list[Call]]  # (how many, first input index)


def search_calls(tags: dict[str, list[str]]) -> CallFactory:
    """Case searches cycling through the tiers and their tags."""
    cycle = [(tier, tag) for tier, names in tags.items() for tag in names]

    def make(count: int, start: int) -> list[Call]:
        calls = []
        for index in range(start, start + count):
            tier, tag = cycle[index % len(cycle)]
            body = {
                "query": {"_and": [{"status": "Open"}, {"tags": tag}]},
                "sort": ["-startDate"],
                "range": "0-50",
            }
            check = _open_with_tag(tag)
            calls.append(
                Call("POST", "/api/case/_search", body, group=tier, check=check)
            )
        return calls

    return make


def _open_with_tag(tag: str) -> Callable[[Any], bool]:
    def check(found: Any) -> bool:
        return isinstance(found, list) and all(
            c.get("status") == "Open" and tag in c.get("tags", []) for c in found
        )

    return check


def case_calls(case_ids: Sequence[str]) -> CallFactory:
    def make(count: int, start: int) -> list[Call]:
        return [
            Call("GET", f"/api/case/{case_ids[i % len(case_ids)]}", check=_is_case)
            for i in range(start, start + count)
        ]

    return make


def _is_case(found: Any) -> bool:
    return isinstance(found, dict) and "caseId" in found


def similar_calls(
    observables: Sequence[Recurring], range_: str | None = None
) -> CallFactory:
    """Similar look-ups of ``observables`` in turn: the default page (as
    TheHive's clients ask), or ``range_``."""
    suffix = "" if range_ is None else f"?range={range_}"

    def make(count: int, start: int) -> list[Call]:
        calls = []
        for index in range(start, start + count):
            observable = observables[index % len(observables)]
            path = f"/api/case/artifact/{observable.id}/similar{suffix}"
            calls.append(
                Call("GET", path, group=observable.data_type, check=_non_empty_list)
            )
        return calls

    return make


def health_calls() -> CallFactory:
    def make(count: int, start: int) -> list[Call]:
        return [Call("GET", "/api/health") for _ in range(count)]

    return make


def _non_empty_list(found: Any) -> bool:
    return isinstance(found, list) and len(found) > 0


def creation_calls(rng: random.Random, tags: Sequence[str]) -> CallFactory:
    def make(count: int, start: int) -> list[Call]:
        return [
            Call(
                "POST",
                "/api/case",
                _case_body(rng, tags, i),
                expect=201,
                check=_is_case,
            )
            for i in range(start, start + count)
        ]

    return make


def _case_body(rng: random.Random, tags: Sequence[str], index: int) -> dict[str, Any]:
    return {
        "title": f"Benchmark case {index}",
        "description": "Opened by bench.core to measure case creation.",
        "tags": rng.sample(list(tags), 2),
        "severity": rng.choice((1, 2, 3)),
        "tlp": 2,
    }


@dataclass
class Timings:
    latencies_ms: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    # Per timed response: its Server-Timing durations in ms ({} without the
    # header) and its body size in bytes.
    server_timings: list[dict[str, float]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def merge(self, other: Timings) -> None:
        self.latencies_ms += other.latencies_ms
        self.groups += other.groups
        self.server_timings += other.server_timings
        self.sizes += other.sizes
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error


def send(client: httpx.Client, call: Call, timings: Timings) -> None:
    """Sends ``call`` and records its latency; a wrong status or answer
    counts as an error."""
    started = time.perf_counter()
    try:
        response = client.request(call.method, call.path, json=call.body)
    except httpx.HTTPError as exc:
        timings.errors += 1
        timings.first_error = timings.first_error or f"{call.path}: {exc!r}"
        return
    timings.latencies_ms.append((time.perf_counter() - started) * 1000)
    timings.groups.append(call.group)
    timings.server_timings.append(server_timing(response))
    timings.sizes.append(len(response.content))
    ok = response.status_code == call.expect
    if ok and call.check is not None:
        ok = call.check(response.json())
    if ok and call.check_response is not None:
        ok = call.check_response(response)
    if not ok:
        timings.errors += 1
        detail = (
            f"{call.method} {call.path} -> {response.status_code} {response.text[:300]}"
        )
        timings.first_error = timings.first_error or detail


def server_timing(response: httpx.Response) -> dict[str, float]:
    """Returns the durations of a ``Server-Timing`` header, in ms by metric
    name (``db;dur=1.2, app;dur=3.4``); {} without the header."""
    durations: dict[str, float] = {}
    for metric in response.headers.get("server-timing", "").split(","):
        name, _, params = metric.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    durations[name] = float(value)
                except ValueError:
                    continue
    return durations


def new_client(base_url: str, key: str) -> httpx.Client:
    """A keep-alive client authenticated with the API key."""
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=REQUEST_TIMEOUT,
    )


@dataclass
class Bench:
    """The server under test and how much to ask of it."""

    base_url: str
    key: str
    client: httpx.Client
    requests: int
    warmup: int

    def sequential(self, calls: Sequence[Call]) -> tuple[Timings, float]:
        timings = Timings()
        started = time.perf_counter()
        for call in calls:
            send(self.client, call, timings)
        return timings, time.perf_counter() - started

    def concurrent(self, calls: Sequence[Call]) -> tuple[Timings, float]:
        """Sends ``calls`` from several threads, each with its own connection;
        returns the merged timings and the wall-clock time of the whole run."""
        shares = [calls[i::CONCURRENT_CLIENTS] for i in range(CONCURRENT_CLIENTS)]
        results = [Timings() for _ in shares]
        barrier = threading.Barrier(len(shares) + 1)
        threads = [
            threading.Thread(target=self._client_thread, args=(share, timings, barrier))
            for share, timings in zip(shares, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        merged = Timings()
        for timings in results:
            merged.merge(timings)
        return merged, seconds

    def _client_thread(
        self, calls: Sequence[Call], timings: Timings, barrier: threading.Barrier
    ) -> None:
        with new_client(self.base_url, self.key) as client:
            client.get("/api/health")  # connect before the clock starts
            barrier.wait()
            for call in calls:
                send(client, call, timings)

    def measure(
        self,
        name: str,
        make_calls: CallFactory,
        *,
        concurrent: bool = False,
        target: Target | None = None,
        notes: str = "",
    ) -> tuple[Measurement, Timings]:
        """Sends warm-up calls untimed, then times ``requests`` more."""
        run = self.concurrent if concurrent else self.sequential
        run(make_calls(self.warmup, self.requests))
        timings, seconds = run(make_calls(self.requests, 0))
        if timings.errors:
            print(f"  {name}: {timings.errors} error(s), first: {timings.first_error}")
        clients = CONCURRENT_CLIENTS if concurrent else 1
        measurement = Measurement(
            name, clients, timings.latencies_ms, seconds, timings.errors, target, notes
        )
        print(f"  {name}: {self.requests} requests in {seconds:.2f} s", flush=True)
        return measurement, timings


def group_measurements(
    whole: Measurement, timings: Timings, label: str
) -> list[Measurement]:
    """Splits ``whole`` by the group of its calls (tag tier, datatype)."""
    split = []
    for name in dict.fromkeys(timings.groups):
        latencies = [
            ms
            for ms, group in zip(timings.latencies_ms, timings.groups, strict=True)
            if group == name
        ]
        seconds = whole.seconds * len(latencies) / max(1, len(timings.latencies_ms))
        part = Measurement(label.format(name), 1, latencies, seconds, 0, whole.target)
        split.append(part)
    return split


def measure_search(bench: Bench, inputs: Inputs) -> list[Measurement]:
    tiers = "; ".join(
        f"{tier}: {', '.join(tags)}" for tier, tags in inputs.tags.items()
    )
    search, timings = bench.measure(
        "case search (Open + tag, newest first, 0-50)",
        search_calls(inputs.tags),
        target=SEARCH_TARGET,
        notes=tiers,
    )
    return [search, *group_measurements(search, timings, "search, {} tags")]


def measure_similar(bench: Bench, inputs: Inputs) -> list[Measurement]:
    others = sorted(r.others for r in inputs.similar)
    notes = (
        f"{len(others)} observables; other cases per value: "
        f"median {statistics.median(others):.0f}, max {others[-1]}"
    )
    similar, timings = bench.measure(
        "similar observables",
        similar_calls(inputs.similar),
        target=SIMILAR_TARGET,
        notes=notes,
    )
    by_type = sorted(
        group_measurements(similar, timings, "similar, {}"), key=lambda m: m.name
    )
    # The first 100 instead of TheHive's default 10: what a caller asking for
    # more pays (no target).
    wider, _ = bench.measure(
        "similar observables, range 0-100", similar_calls(inputs.similar, "0-100")
    )
    return [similar, *by_type, wider]


def measure_creation(
    bench: Bench, inputs: Inputs, rng: random.Random
) -> list[Measurement]:
    tags = [tag for tier in inputs.tags.values() for tag in tier]
    alone, _ = bench.measure("case creation, 1 client", creation_calls(rng, tags))
    together, _ = bench.measure(
        f"case creation, {CONCURRENT_CLIENTS} clients",
        creation_calls(rng, tags),
        concurrent=True,
        target=CREATION_TARGET,
    )
    return [alone, together]


def run_benchmark(
    base_url: str, key: str, inputs: Inputs, args: argparse.Namespace
) -> list[Measurement]:
    with new_client(base_url, key) as client:
        bench = Bench(base_url, key, client, args.requests, args.warmup)
        # What any request costs: HTTP, middleware, one trivial query.
        floor = bench.measure("HTTP floor (GET /api/health)", health_calls())[0]
        results = [floor, *measure_search(bench, inputs)]
        case_read = bench.measure("case read", case_calls(inputs.case_ids))[0]
        results += [case_read, *measure_similar(bench, inputs)]
        results += measure_creation(bench, inputs, random.Random(args.seed))
    return results


# -- report -------------------------------------------------------------------


def markdown_table(measurements: Sequence[Measurement]) -> str:
    lines = [
        "| Measurement | Clients | Requests | p50 ms | p95 ms | p99 ms | mean ms "
        "| req/s | Target | Result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for m in measurements:
        s = m.summary()
        target = m.target.label if m.target else "-"
        lines.append(
            f"| {m.name} | {m.clients} | {len(m.latencies_ms)} | {s['p50_ms']:.2f} "
            f"| {s['p95_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} "
            f"| {s['throughput']:.0f} | {target} | {m.verdict()} |"
        )
    return "\n".join(lines)


def baselines_text() -> str:
    lines = ["Baselines (given figures, not measured by this benchmark):"]
    lines += [f"- {system}: {what} in {figure}" for system, what, figure in BASELINES]
    return "\n".join(lines)


def machine_description(setup: Setup) -> dict[str, Any]:
    described: dict[str, Any] = {
        "platform": host_platform.platform(),
        "python": host_platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if setup.backend == "sqlite":
        described["sqlite"] = sqlite3.sqlite_version
    else:
        db = Database(setup.database_url)
        try:
            with db.read() as conn:
                described["postgresql"] = conn.exec_driver_sql(
                    "SHOW server_version"
                ).scalar()
        finally:
            db.dispose()
    return described


def write_results(
    setup: Setup,
    inputs: Inputs,
    measurements: Sequence[Measurement],
    args: argparse.Namespace,
) -> Path:
    generation = setup.generation
    payload = {
        "backend": setup.backend,
        "database_url": make_url(setup.database_url).render_as_string(
            hide_password=True
        ),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": inputs.volume,
        "generation": asdict(generation) if generation else None,
        "requests": args.requests,
        "warmup": args.warmup,
        "measurements": [m.as_json() for m in measurements],
        "baselines": [
            {"system": system, "measure": what, "figure": figure}
            for system, what, figure in BASELINES
        ],
        "machine": machine_description(setup),
    }
    return save_results(f"core-{setup.backend}.json", payload)


def save_results(filename: str, payload: dict[str, Any]) -> Path:
    """Writes ``payload`` as JSON to ``filename`` in the results folder."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / filename
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def print_report(
    setup: Setup, inputs: Inputs, measurements: Sequence[Measurement], path: Path
) -> None:
    rows = ", ".join(f"{name} {count:,}" for name, count in inputs.volume.items())
    print(f"\n## Cerana core benchmark ({setup.backend})\n")
    print(f"Rows: {rows}\n")
    print(markdown_table(measurements))
    print()
    for m in measurements:
        if m.notes:
            print(f"- {m.name}: {m.notes}")
    print()
    print(baselines_text())
    print(f"\nresults written to {path}")


# -- command line -------------------------------------------------------------


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options every benchmark shares: which database, where the
    server keeps its data."""
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--database-url", help="database to use (default per backend)")
    parser.add_argument(
        "--data-dir", type=Path, help="Cerana data folder of the server"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.core",
        description="Benchmark a real cerana server on generated data.",
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--requests", type=int, default=500, help="timed requests per measurement"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="untimed requests first (default requests/10, at least 20)",
    )
    parser.add_argument(
        "--skip-generate",
        action="store_true",
        help="reuse the data already in the database",
    )
    generator.add_volume_arguments(parser, lambda n: n)
    return parser


def setup_from(
    args: argparse.Namespace,
    *,
    postgresql_url: str = DEFAULT_POSTGRESQL_URL,
    data_dirs: Mapping[str, Path] = DEFAULT_DATA_DIRS,
    environment: Callable[[Path], dict[str, str]] | None = None,
) -> Setup:
    """The setup `add_server_arguments` asked for; a benchmark with data of
    its own passes its own defaults, and server settings derived from the
    data folder as ``environment``."""
    data_dir = (args.data_dir or data_dirs[args.backend]).resolve()
    if args.database_url:
        url = normalise_url(args.database_url)
    elif args.backend == "sqlite":
        url = f"sqlite:///{data_dir / 'cerana.db'}"
    else:
        url = postgresql_url
    backend = make_url(url).get_backend_name()
    if backend != args.backend:
        raise SystemExit(
            f"error: --database-url is a {backend} URL, not {args.backend}"
        )
    extra = environment(data_dir) if environment else {}
    return Setup(args.backend, url, data_dir, environment=extra)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.warmup = (
        args.warmup if args.warmup is not None else max(20, args.requests // 10)
    )
    setup = setup_from(args)
    setup.data_dir.mkdir(parents=True, exist_ok=True)
    volume = generator.Volume(args.cases, args.observables, args.tasks)
    prepare_database(setup, volume, args.skip_generate, args.seed)

    inputs = collect_inputs(setup.database_url, args.requests + args.warmup)
    if not inputs.case_ids or not inputs.similar:
        print(
            "error: the database has no cases or no recurring observables",
            file=sys.stderr,
        )
        print("run without --skip-generate to generate them", file=sys.stderr)
        return 1
    key = issue_admin_key(setup)
    try:
        with running_server(setup) as base_url:
            measurements = run_benchmark(base_url, key, inputs, args)
    except RuntimeError as exc:
        print(f"error: {exc}; see {setup.data_dir / 'server.log'}", file=sys.stderr)
        return 1

    path = write_results(setup, inputs, measurements, args)
    print_report(setup, inputs, measurements, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
