"""The analysis engine benchmark: jobs through a real ``cerana serve``.

    python -m bench.analysis --backend sqlite
    python -m bench.analysis --backend sqlite --jobs 1000 --external-jobs 50

Starts from an empty database, writes a Cortex analyzers folder with one
external analyzer built on cortexutils, starts the server with its queue
workers (2 by default) and measures:

- throughput: ``--jobs`` jobs of the native no-op analyzer submitted through
  ``POST /cortex/api/analyzer/NoOp_1_0/run`` from 8 clients at once, every
  value distinct so the job cache never answers; timed from the first
  submission until the engine records the last job's end (``--rounds``
  times);
- overhead: ``--external-jobs`` jobs of the cortexutils analyzer, one at a
  time, against the same program run bare (same input folder, no engine)
  alternately; the overhead is the difference of the medians.

Prints a Markdown table with each target's PASS/FAIL and writes the figures
to ``bench/results/analysis-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import core
from cerana.analysis.jobs import input_document
from cerana.domain.dates import now_ms
from cerana.store import tables
from cerana.store.db import Database

NOOP_ID = "NoOp_1_0"
EXTERNAL_ID = "BenchEcho_1_0"
DEFAULT_POSTGRESQL_URL = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/cerana_bench_analysis"
)
DEFAULT_DATA_DIRS = {
    "sqlite": Path("/tmp/cerana-bench-analysis-sqlite"),
    "postgresql": Path("/tmp/cerana-bench-analysis-postgresql"),
}
THROUGHPUT_TARGET = 200.0  # jobs/s, no-op analyzer, 2 workers
OVERHEAD_TARGET_MS = 100.0  # per external job
FINISHED = ("Success", "Failure")
POLL_SECONDS = 0.25
EXTERNAL_POLL_SECONDS = 0.005

# Figures of Cortex given for comparison; not measured here.
BASELINES = (
    (
        "Cortex 3",
        "jobs run in parallel at most (default thread pool of the job runner)",
        "20",
    ),
)

# A minimal Cortex analyzer on cortexutils: reads the job folder, answers
# with a report and one taxonomy, as most real analyzers end.
PROGRAM = """
from cortexutils.analyzer import Analyzer


class BenchEcho(Analyzer):
    def run(self):
        self.report({"echo": self.get_data()})

    def summary(self, raw):
        return {"taxonomies": [self.build_taxonomy("info", "Bench", "Echo", "seen")]}


if __name__ == "__main__":
    BenchEcho().run()
"""

DEFINITION = {
    "name": "BenchEcho",
    "version": "1.0",
    "author": "Cerana benchmarks",
    "url": "https://example.org",
    "license": "AGPL-V3",
    "description": "Echoes its observable; measures the engine's overhead",
    "dataTypeList": ["other"],
    "command": "BenchEcho/program.py",
    "baseConfig": "BenchEcho",
    "configurationItems": [],
    "config": {},
}


# -- setup --------------------------------------------------------------------


def write_analyzer(root: Path) -> Path:
    """Writes the cortexutils analyzer under ``root``; returns its program."""
    folder = root / "BenchEcho"
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "program.py"
    program.write_text(f"#!{sys.executable}\n{PROGRAM}", encoding="utf-8")
    program.chmod(0o755)
    (folder / "BenchEcho.json").write_text(json.dumps(DEFINITION), encoding="utf-8")
    return program


def setup_from(args: argparse.Namespace) -> core.Setup:
    def environment(data_dir: Path) -> dict[str, str]:
        return {
            # With --worker-process the server queues jobs and a `cerana
            # worker` runs them; otherwise the server's own threads do.
            "CERANA_WORKERS": "0" if args.worker_process else str(args.workers),
            "CERANA_ANALYZER_PATHS": str(data_dir / "analyzers"),
        }

    return core.setup_from(
        args,
        postgresql_url=DEFAULT_POSTGRESQL_URL,
        data_dirs=DEFAULT_DATA_DIRS,
        environment=environment,
    )


@contextmanager
def worker_process(setup: core.Setup, threads: int) -> Iterator[None]:
    """Runs `cerana worker` with ``threads`` threads beside the server."""
    command = [sys.executable, "-m", "cerana.cli", "worker", "--threads", str(threads)]
    log_path = setup.data_dir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=core.server_environment(setup),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            print(f"worker {process.pid} running {threads} threads", flush=True)
            yield
        finally:
            core.stop_server(process)


def reset(setup: core.Setup) -> None:
    """Empties the database, the queue and the analyzers folder."""
    if setup.backend == "postgresql":
        core.reset_postgresql(setup.database_url, drop=True)
    else:
        core.remove_sqlite_files(setup.database_url)
    for name in ("queue.db", "queue.db-wal", "queue.db-shm"):
        (setup.data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(setup.data_dir / "analyzers", ignore_errors=True)
    shutil.rmtree(setup.data_dir / "jobs", ignore_errors=True)


# -- figures ------------------------------------------------------------------


@dataclass
class Throughput:
    """One round of no-op jobs: submission and completion."""

    jobs: int
    clients: int
    submit_seconds: float
    complete_seconds: float
    submit_p50_ms: float
    submit_p95_ms: float
    job_p50_ms: float  # created → ended, as the engine records them
    job_p95_ms: float
    failed: int
    errors: int
    first_error: str
    load: str
    server_cpu_ms: float  # CPU time of the server process per job
    client_cpu_ms: float  # CPU time of this benchmark per job

    @property
    def submit_rate(self) -> float:
        return self.jobs / self.submit_seconds

    @property
    def complete_rate(self) -> float:
        return self.jobs / self.complete_seconds

    def verdict(self) -> str:
        if self.errors or self.failed:
            return "FAIL (errors)"
        return "PASS" if self.complete_rate >= THROUGHPUT_TARGET else "FAIL"


@dataclass
class Overhead:
    """External jobs one at a time against the bare program runs."""

    jobs: int
    bare_ms: list[float]
    run_ms: list[float]  # admitted → ended
    total_ms: list[float]  # created → ended
    seen_ms: list[float]  # client: submission → Success seen
    failed: int
    load: str

    @property
    def overhead_ms(self) -> float:
        return statistics.median(self.total_ms) - statistics.median(self.bare_ms)

    @property
    def run_overhead_ms(self) -> float:
        return statistics.median(self.run_ms) - statistics.median(self.bare_ms)

    def verdict(self) -> str:
        if self.failed or len(self.total_ms) < self.jobs:
            return "FAIL (errors)"
        return "PASS" if self.overhead_ms <= OVERHEAD_TARGET_MS else "FAIL"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def server_cpu_seconds() -> float:
    """CPU time used so far by the server, this process's child (Linux)."""
    me = os.getpid()
    children = Path(f"/proc/{me}/task/{me}/children")
    try:
        pids = children.read_text().split()
        fields = Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def client_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def ms_percentiles(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values) or [float("nan")]
    return core.percentile(ordered, 50), core.percentile(ordered, 95)


# -- throughput ---------------------------------------------------------------


def run_calls(prefix: str) -> core.CallFactory:
    def make(count: int, start: int) -> list[core.Call]:
        return [
            core.Call(
                "POST",
                f"/cortex/api/analyzer/{NOOP_ID}/run",
                {"dataType": "other", "data": f"{prefix}-{i}"},
                check=_queued,
            )
            for i in range(start, start + count)
        ]

    return make


def _queued(found: Any) -> bool:
    return isinstance(found, dict) and found.get("fromCache") is False


def measure_throughput(
    bench: core.Bench, db: Database, jobs: int, prefix: str, drain_timeout: float
) -> Throughput:
    """Submits ``jobs`` no-op jobs from several clients and waits for them."""
    server_cpu, client_cpu = server_cpu_seconds(), client_cpu_seconds()
    started_ms = now_ms()
    timings, submit_seconds = bench.concurrent(run_calls(prefix)(jobs, 0))
    print(f"  {jobs} jobs submitted in {submit_seconds:.2f} s", flush=True)
    rows = wait_for_jobs(db, NOOP_ID, started_ms, jobs, drain_timeout)
    server_cpu = server_cpu_seconds() - server_cpu
    client_cpu = client_cpu_seconds() - client_cpu
    last_end = max((r.end_date for r in rows if r.end_date), default=now_ms())
    job_p50, job_p95 = ms_percentiles(
        [r.end_date - r.created_at for r in rows if r.end_date]
    )
    submit_p50, submit_p95 = ms_percentiles(timings.latencies_ms)
    return Throughput(
        jobs=jobs,
        clients=core.CONCURRENT_CLIENTS,
        submit_seconds=submit_seconds,
        complete_seconds=(last_end - started_ms) / 1000,
        submit_p50_ms=submit_p50,
        submit_p95_ms=submit_p95,
        job_p50_ms=job_p50,
        job_p95_ms=job_p95,
        failed=sum(r.status != "Success" for r in rows) + jobs - len(rows),
        errors=timings.errors,
        first_error=timings.first_error,
        load=load_average(),
        server_cpu_ms=server_cpu * 1000 / jobs,
        client_cpu_ms=client_cpu * 1000 / jobs,
    )


def wait_for_jobs(
    db: Database, analyzer_id: str, since_ms: int, count: int, timeout: float
) -> list[Any]:
    """Waits until ``count`` jobs of ``analyzer_id`` created since
    ``since_ms`` have ended (or ``timeout``); returns their rows."""
    job = tables.analysis_job
    ended = select(func.count()).where(
        job.c.analyzer_id == analyzer_id,
        job.c.created_at >= since_ms,
        job.c.status.in_(FINISHED),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as conn:
            done = conn.execute(ended).scalar_one()
        if done >= count:
            break
        time.sleep(POLL_SECONDS)
    with db.read() as conn:
        return list(
            conn.execute(
                select(job.c.status, job.c.created_at, job.c.end_date).where(
                    job.c.analyzer_id == analyzer_id, job.c.created_at >= since_ms
                )
            )
        )


# -- overhead -----------------------------------------------------------------


def run_bare(program: Path, document: dict[str, Any], folder: Path) -> float:
    """Runs ``program`` on a fresh job folder as the engine would, without
    the engine; returns the process's wall time in ms."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "input").mkdir(parents=True)
    (folder / "output").mkdir()
    (folder / "input" / "input.json").write_text(json.dumps(document))
    started = time.perf_counter()
    completed = subprocess.run(
        [str(program), str(folder)],
        cwd=program.parent.parent,
        input=json.dumps(document).encode(),
        capture_output=True,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    report = folder / "output" / "output.json"
    if completed.returncode != 0 or not report.is_file():
        raise RuntimeError(f"bare run failed: {completed.stderr.decode()[-500:]}")
    return elapsed


def run_engine_job(
    client: httpx.Client, data: str, timeout: float
) -> tuple[str, float]:
    """Submits one external job and waits for its end; returns (job id,
    client-side ms from submission to the end seen)."""
    started = time.perf_counter()
    response = client.post(
        f"/cortex/api/analyzer/{EXTERNAL_ID}/run",
        json={"dataType": "other", "data": data},
    )
    response.raise_for_status()
    job_id = str(response.json()["id"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/cortex/api/job/{job_id}").json()["status"]
        if status in FINISHED:
            break
        time.sleep(EXTERNAL_POLL_SECONDS)
    return job_id, (time.perf_counter() - started) * 1000


def measure_overhead(
    client: httpx.Client, db: Database, program: Path, jobs: int, prefix: str
) -> Overhead:
    """Alternates bare runs of ``program`` and engine jobs, one at a time."""
    folder = program.parent.parent.parent / "bare-job"
    seen, job_ids, bare = [], [], []
    for index in range(jobs):
        data = f"{prefix}-{index}"
        bare.append(run_bare(program, bare_document(data), folder))
        job_id, elapsed = run_engine_job(client, data, timeout=60.0)
        job_ids.append(job_id)
        seen.append(elapsed)
    shutil.rmtree(folder, ignore_errors=True)
    job = tables.analysis_job
    with db.read() as conn:
        rows = list(
            conn.execute(
                select(
                    job.c.status, job.c.created_at, job.c.start_date, job.c.end_date
                ).where(job.c.id.in_(job_ids))
            )
        )
    ended = [r for r in rows if r.status == "Success"]
    return Overhead(
        jobs=jobs,
        bare_ms=bare,
        run_ms=[float(r.end_date - r.start_date) for r in ended],
        total_ms=[float(r.end_date - r.created_at) for r in ended],
        seen_ms=seen,
        failed=len(rows) - len(ended) + jobs - len(rows),
        load=load_average(),
    )


def bare_document(data: str) -> dict[str, Any]:
    """The input document the engine writes for this job (no configuration)."""
    job = {
        "data_type": "other",
        "tlp": 2,
        "pap": 2,
        "message": "",
        "parameters": {},
        "attachment_id": None,
        "data": data,
    }
    return input_document(job, {})


# -- report -------------------------------------------------------------------


def markdown_table(rounds: Sequence[Throughput], overhead: Overhead | None) -> str:
    lines = [
        "| Measurement | Jobs | Figure | Detail | Load (1/5/15 min) | Target | Result |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for number, r in enumerate(rounds, 1):
        detail = (
            f"submit {r.submit_rate:.0f} jobs/s from {r.clients} clients "
            f"(p50 {r.submit_p50_ms:.1f} ms, p95 {r.submit_p95_ms:.1f} ms); "
            f"job created → ended p50 {r.job_p50_ms / 1000:.1f} s; CPU per job: "
            f"server {r.server_cpu_ms:.1f} ms, client {r.client_cpu_ms:.1f} ms"
        )
        lines.append(
            f"| no-op jobs, round {number} | {r.jobs} | {r.complete_rate:.1f} jobs/s "
            f"| {detail} | {r.load} | ≥ {THROUGHPUT_TARGET:.0f} jobs/s "
            f"| {r.verdict()} |"
        )
    if overhead is not None:
        lines.append(overhead_row(overhead))
    return "\n".join(lines)


def overhead_row(o: Overhead) -> str:
    bare_p50, bare_p95 = ms_percentiles(o.bare_ms)
    total_p50, total_p95 = ms_percentiles(o.total_ms)
    run_p50, _ = ms_percentiles(o.run_ms)
    seen_p50, _ = ms_percentiles(o.seen_ms)
    detail = (
        f"bare run p50 {bare_p50:.0f} ms (p95 {bare_p95:.0f}); engine created → "
        f"ended p50 {total_p50:.0f} ms (p95 {total_p95:.0f}); admitted → ended "
        f"p50 {run_p50:.0f} ms; client sees the end after {seen_p50:.0f} ms"
    )
    return (
        f"| external cortexutils job overhead (median) | {o.jobs} "
        f"| {o.overhead_ms:.0f} ms | {detail} | {o.load} "
        f"| ≤ {OVERHEAD_TARGET_MS:.0f} ms | {o.verdict()} |"
    )


def write_results(
    setup: core.Setup,
    rounds: Sequence[Throughput],
    overhead: Overhead | None,
    args: argparse.Namespace,
) -> Path:
    payload = {
        "backend": setup.backend,
        "database_url": make_url(setup.database_url).render_as_string(
            hide_password=True
        ),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "workers": args.workers,
        "worker_process": args.worker_process,
        "throughput": [
            {
                **asdict(r),
                "submit_rate": round(r.submit_rate, 1),
                "complete_rate": round(r.complete_rate, 1),
                "result": r.verdict(),
            }
            for r in rounds
        ],
        "overhead": overhead_json(overhead) if overhead else None,
        "baselines": [
            {"system": system, "measure": what, "figure": figure}
            for system, what, figure in BASELINES
        ],
        "machine": core.machine_description(setup),
    }
    core.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = core.RESULTS_DIR / f"analysis-{setup.backend}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def overhead_json(o: Overhead) -> dict[str, Any]:
    figures: dict[str, Any] = {"jobs": o.jobs, "failed": o.failed, "load": o.load}
    for name in ("bare_ms", "run_ms", "total_ms", "seen_ms"):
        p50, p95 = ms_percentiles(getattr(o, name))
        figures[name] = {"p50": round(p50, 1), "p95": round(p95, 1)}
    figures["overhead_ms"] = round(o.overhead_ms, 1)
    figures["run_overhead_ms"] = round(o.run_overhead_ms, 1)
    figures["result"] = o.verdict()
    return figures


def print_report(
    setup: core.Setup,
    rounds: Sequence[Throughput],
    overhead: Overhead | None,
    path: Path,
    args: argparse.Namespace,
) -> None:
    workers = setup.environment["CERANA_WORKERS"]
    where = "in the server process"
    if workers == "0":
        workers, where = str(args.workers), "in a separate `cerana worker` process"
    print(f"\n## Cerana analysis engine benchmark ({setup.backend})\n")
    print(f"Queue workers: {workers} ({where}); CPUs: {os.cpu_count()}\n")
    print(markdown_table(rounds, overhead))
    print()
    for number, r in enumerate(rounds, 1):
        if r.errors or r.failed:
            print(
                f"- round {number}: {r.errors} submission error(s), {r.failed} job(s) "
                f"not Success; first error: {r.first_error or '-'}"
            )
    print("Baselines (given figures, not measured by this benchmark):")
    for system, what, figure in BASELINES:
        print(f"- {system}: {what}: {figure}")
    print(f"\nresults written to {path}")


# -- command line -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analysis",
        description="Benchmark the embedded analysis engine on a real server.",
    )
    core.add_server_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="queue workers")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="run the queue workers in a `cerana worker` process of their own",
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="no-op jobs a round")
    parser.add_argument("--rounds", type=int, default=2, help="no-op rounds")
    parser.add_argument(
        "--external-jobs", type=int, default=200, help="external jobs (0: skip)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="untimed jobs first")
    return parser


def run_benchmark(
    setup: core.Setup, base_url: str, key: str, args: argparse.Namespace
) -> tuple[list[Throughput], Overhead | None]:
    program = setup.data_dir / "analyzers" / "BenchEcho" / "program.py"
    run = f"r{int(time.time())}"
    drain_timeout = 120.0 + args.jobs / 20
    db = Database(setup.database_url)
    try:
        with core.new_client(base_url, key) as client:
            bench = core.Bench(base_url, key, client, args.jobs, args.warmup)
            measure_throughput(bench, db, args.warmup, f"{run}-warm", drain_timeout)
            rounds = []
            for number in range(1, args.rounds + 1):
                print(f"round {number}: {args.jobs} no-op jobs", flush=True)
                prefix = f"{run}-{number}"
                rounds.append(
                    measure_throughput(bench, db, args.jobs, prefix, drain_timeout)
                )
            overhead = None
            if args.external_jobs:
                print(f"{args.external_jobs} external jobs, one at a time", flush=True)
                overhead = measure_overhead(
                    client, db, program, args.external_jobs, f"{run}-ext"
                )
    finally:
        db.dispose()
    return rounds, overhead


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup = setup_from(args)
    setup.data_dir.mkdir(parents=True, exist_ok=True)
    reset(setup)
    write_analyzer(setup.data_dir / "analyzers")
    key = core.issue_admin_key(setup)
    try:
        with core.running_server(setup) as base_url, ExitStack() as stack:
            if args.worker_process:
                stack.enter_context(worker_process(setup, args.workers))
            rounds, overhead = run_benchmark(setup, base_url, key, args)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}; see {setup.data_dir / 'server.log'}", file=sys.stderr)
        return 1
    path = write_results(setup, rounds, overhead, args)
    print_report(setup, rounds, overhead, path, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
