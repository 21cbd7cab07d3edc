"""Analyzer jobs of the embedded engine: submit, run, cancel, recover.

A job is a row first (status Waiting), then a queue message naming it.
A worker admits it (Waiting → InProgress) in one transaction that checks
the analyzer's concurrency and rate limits; a job over a limit is put
back on the queue with a delay, never failed. The run happens outside any
transaction; its result is written in a second one (Success or Failure),
unless the job was cancelled meanwhile.

A worker that dies leaves its jobs InProgress; `recover_jobs` (at start-up
and in the periodic sweep) queues them again, up to ``analyzer_attempts``
times, then fails them with the reason. Waiting jobs whose message got
lost are queued again by the sweep; a duplicate message is harmless since
admission only takes Waiting jobs.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from cerana.analysis import cache, ratelimit, runner
from cerana.analysis.catalog import CatalogEntry
from cerana.analysis.configuration import Limits, check_configuration
from cerana.analysis.engine import Engine, engine_for
from cerana.analysis.errors import ConfigurationRejected, PolicyRefused
from cerana.analysis.secrets import redacted, scrub, secret_values
from cerana.analyzers.base import Observable
from cerana.domain.dates import now_ms
from cerana.domain.errors import InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.platform import Platform
from cerana.queue import register
from cerana.services.attachments import Upload, store_upload
from cerana.services.context import Actor
from cerana.store import tables
from cerana.store.rows import Row

logger = logging.getLogger(__name__)

RUN_TASK = "analysis.run_job"
SWEEP_TASK = "analysis.sweep"
FINISHED = ("Success", "Failure", "Deleted")
TLP_NAMES = ("WHITE", "GREEN", "AMBER", "RED")

# This process, as written on the jobs it runs (crash recovery reads it).
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

# Called with (conn, job row) in the transaction that ends a job; the
# platform's Cortex connector listens to copy reports to observables.
JobListener = Callable[[Connection, Row], None]
_LISTENERS: list[JobListener] = []


def on_job_finished(listener: JobListener) -> JobListener:
    """Registers ``listener`` for every job reaching Success or Failure."""
    _LISTENERS.append(listener)
    return listener


@dataclass(frozen=True)
class JobRequest:
    """What a caller asks to analyse (one of Cortex's run bodies, parsed)."""

    data_type: str
    data: str | None = None
    tlp: int = 2
    pap: int = 2
    message: str = ""
    parameters: Row = field(default_factory=dict)
    label: str | None = None
    force: bool = False


def submit_job(
    conn: Connection,
    engine: Engine,
    actor: Actor,
    analyzer: str,
    request: JobRequest,
    *,
    upload: Upload | None = None,
    store: Any = None,
) -> tuple[dict[str, Any], bool]:
    """Creates a Waiting job, or finds the cached one.

    Returns (job row, from cache); the caller queues a new job with
    `queue_job` once the transaction is committed. Raises AnalyzerNotFound,
    InvalidInput (datatype, missing data) or PolicyRefused (TLP/PAP).
    """
    entry = engine.catalog.get(analyzer)
    _check_request(entry, request, upload)
    config = engine.configuration(conn, entry)
    limits = engine.limits(entry, config)
    check_policy(entry.name, request.tlp, request.pap, limits.max_tlp, limits.max_pap)
    attachment: dict[str, Any] = {}
    if upload is not None:
        attachment = store_upload(
            conn, store, upload, engine.settings.max_attachment_size
        )
    value = attachment.get("attachment_id") or request.data or ""
    tag = cache.cache_tag(
        entry.id, request.data_type, request.tlp, value, request.parameters
    )
    now = now_ms()
    if not request.force:
        cached = cache.find_cached_job(conn, entry.id, tag, limits.cache_minutes, now)
        if cached is not None:
            logger.debug(
                "job cache hit: job %s for analyzer %s", cached["id"], entry.id
            )
            return dict(cached), True
    row = {
        "id": new_id(),
        "organisation": actor.organisation,
        "analyzer_id": entry.id,
        "analyzer_name": entry.name,
        "status": "Waiting",
        "data_type": request.data_type,
        "data": request.data if upload is None else None,
        "tlp": request.tlp,
        "pap": request.pap,
        "message": request.message,
        "parameters": dict(request.parameters),
        "label": request.label,
        "cache_tag": tag,
        "attempts": 0,
        "created_by": actor.login,
        "created_at": now,
        **attachment,
    }
    conn.execute(tables.analysis_job.insert(), row)
    return row, False


def open_job(
    platform: Platform,
    engine: Engine,
    actor: Actor,
    analyzer: str,
    request: JobRequest,
    *,
    upload: Upload | None = None,
) -> tuple[dict[str, Any], bool]:
    """Submits a job in a write transaction of its own, as `submit_job`
    does, then queues it once committed. Returns (job row, from cache).

    One call instead of two keeps an API request to one trip through the
    thread pool, a measurable share of a no-op job's cost (#6).
    """
    with platform.db.write() as conn:
        row, cached = submit_job(
            conn, engine, actor, analyzer, request, upload=upload, store=platform.store
        )
    if not cached:
        queue_job(platform, row["id"])
    return row, cached


def _check_request(
    entry: CatalogEntry, request: JobRequest, upload: Upload | None
) -> None:
    if request.data_type not in entry.data_types:
        raise InvalidInput(
            f"analyzer {entry.name} does not accept the datatype {request.data_type[:64]}"
        )
    if request.data_type == "file" and upload is None:
        raise InvalidInput("a file job needs the file, as a multipart part named data")
    if request.data_type != "file" and not request.data:
        raise InvalidInput("data is missing")
    for name, level in (("tlp", request.tlp), ("pap", request.pap)):
        if level not in (0, 1, 2, 3):
            raise InvalidInput(f"{name} must be 0, 1, 2 or 3")


def check_policy(analyzer: str, tlp: int, pap: int, max_tlp: int, max_pap: int) -> None:
    """Raises PolicyRefused when TLP or PAP exceed the analyzer's maximum."""
    if tlp > max_tlp:
        raise PolicyRefused(
            f"TLP:{TLP_NAMES[tlp]} is higher than allowed: analyzer {analyzer} "
            f"accepts observables up to TLP:{TLP_NAMES[max_tlp]}"
        )
    if pap > max_pap:
        raise PolicyRefused(
            f"PAP:{TLP_NAMES[pap]} is higher than allowed: analyzer {analyzer} "
            f"accepts observables up to PAP:{TLP_NAMES[max_pap]}"
        )


def queue_job(platform: Platform, job_id: str, delay: float | None = None) -> None:
    """Wakes a worker for a Waiting job (after its row is committed)."""
    platform.queue.enqueue(RUN_TASK, job_id, delay=delay)


@register(RUN_TASK)
def run_job_task(platform: Platform, job_id: str) -> None:
    execute_job(platform, job_id)


@dataclass
class _Admitted:
    job: dict[str, Any]
    entry: CatalogEntry
    config: dict[str, Any]
    timeout: float


def execute_job(platform: Platform, job_id: str) -> None:
    """Admits, runs and records one job; a job over a limit is queued again.

    Never raises for an analyzer's failure: the job records it.
    """
    engine = engine_for(platform)
    admitted = _admit(platform, engine, job_id)
    if admitted is None:
        return
    started = time.monotonic()
    try:
        outcome = _run(platform, engine, admitted)
    except Exception:  # the job must end, whatever happened
        logger.exception("job %s crashed the engine", job_id)
        outcome = runner.Outcome.failure("internal error of the analysis engine")
    secrets = secret_values(admitted.config)
    outcome.error = scrub(outcome.error, secrets)
    _finish(platform, engine, admitted, outcome)
    logger.info(
        "job %s (%s) ended %s in %.2f s",
        job_id,
        admitted.entry.id,
        "Success" if outcome.success else "Failure",
        time.monotonic() - started,
    )


def _admit(platform: Platform, engine: Engine, job_id: str) -> _Admitted | None:
    with platform.db.write() as conn:
        job = _load(conn, job_id)
        if job is None or job["status"] != "Waiting":
            return None
        now = now_ms()
        try:
            entry = engine.catalog.get(job["analyzer_id"])
            config = engine.configuration(conn, entry)
            declared = {item["name"] for item in entry.configuration_items}
            check_configuration(
                entry.configuration_items,
                {k: v for k, v in config.items() if k in declared},
                where=entry.name,
            )
            limits = engine.limits(entry, config)
            check_policy(
                entry.name, job["tlp"], job["pap"], limits.max_tlp, limits.max_pap
            )
        except (NotFound, ConfigurationRejected, PolicyRefused) as exc:
            _end(conn, job, "Failure", now, error_message=exc.message)
            return None
        ratelimit.lock_gate(conn, entry.id, now)
        started, delay = _start(conn, job, entry.id, limits, now)
    if delay is not None:
        logger.debug("job %s waits %.2f s for a slot of %s", job_id, delay, entry.id)
        queue_job(platform, job_id, delay=delay)
        return None
    if started is None:
        return None  # cancelled since it was read
    return _Admitted({**job, **started}, entry, config, limits.timeout_seconds)


def _start(
    conn: Connection, job: Row, analyzer_id: str, limits: Limits, now: int
) -> tuple[dict[str, Any] | None, float | None]:
    """Turns ``job`` InProgress if the analyzer's limits allow it.

    Returns (the changed values, None); or (None, seconds to wait) once the
    job is held back; or (None, None) if it is no longer Waiting. Call
    under `ratelimit.lock_gate`.
    """
    started = {
        "status": "InProgress",
        "start_date": now,
        "worker": WORKER_ID,
        "attempts": job["attempts"] + 1,
        "not_before": None,
        "updated_at": now,
    }
    params = {"job_id": job["id"], "only_from": "Waiting", **started}
    if limits.rate is None:
        # Without a rate limit, the concurrency check and the update are
        # one statement: a round trip less per job on PostgreSQL (#6).
        bounded = {**params, "gate": analyzer_id, "concurrency": limits.concurrency}
        if conn.execute(_START_BELOW_CONCURRENCY, bounded).rowcount:
            return started, None
    delay = ratelimit.admission_delay(conn, analyzer_id, limits, now)
    if delay is not None:
        _hold(conn, job["id"], now + int(delay * 1000))
        return None, delay
    if conn.execute(_UPDATE_JOB_FROM, params).rowcount:
        return started, None
    return None, None


def _hold(conn: Connection, job_id: str, until: int) -> None:
    conn.execute(
        update(tables.analysis_job)
        .where(tables.analysis_job.c.id == job_id)
        .values(not_before=until)
    )


def _run(platform: Platform, engine: Engine, admitted: _Admitted) -> runner.Outcome:
    job, entry = admitted.job, admitted.entry
    file = platform.store.path(job["attachment_id"]) if job["attachment_id"] else None
    if entry.native is not None:
        observable = Observable(
            data_type=job["data_type"],
            data=job["data"],
            file=file,
            filename=job["attachment_name"],
            content_type=job["attachment_content_type"],
            tlp=job["tlp"],
            pap=job["pap"],
            message=job["message"],
            parameters=job["parameters"],
        )
        return runner.run_native(entry, observable, admitted.config, admitted.timeout)
    job_dir = engine.jobs_dir / f"job-{job['id']}-{new_id()}"
    try:
        outcome = runner.run_external(
            job["id"],
            entry,
            input_document(job, admitted.config),
            job_dir,
            file=file,
            timeout=admitted.timeout,
            output_limit=engine.settings.analyzer_output_limit,
        )
        _store_files(platform, outcome)
        return outcome
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def input_document(job: Row, config: Row) -> dict[str, Any]:
    """Returns the Cortex 3 input document of ``job`` (secrets in clear:
    it goes to the analyzer only, never to the database or a log)."""
    full_config = dict(config)
    proxy = {k: full_config.get(f"proxy_{k}") for k in ("http", "https")}
    if any(proxy.values()):
        full_config["proxy"] = proxy
    document: dict[str, Any] = {
        "dataType": job["data_type"],
        "tlp": job["tlp"],
        "pap": job["pap"],
        "message": job["message"] or "",
        "parameters": job["parameters"] or {},
        "config": full_config,
    }
    if job["attachment_id"]:
        document["filename"] = job["attachment_name"]
        document["contentType"] = job["attachment_content_type"]
    else:
        document["data"] = job["data"]
    return document


def _store_files(platform: Platform, outcome: runner.Outcome) -> None:
    for artifact in outcome.artifacts:
        name = artifact.get("file")
        if artifact.get("dataType") != "file" or name not in outcome.files:
            continue
        with outcome.files[str(name)].open("rb") as stream:
            upload = Upload(stream, str(artifact.get("filename") or name), "")
            with platform.db.write() as conn:
                stored = store_upload(
                    conn, platform.store, upload, platform.settings.max_attachment_size
                )
        artifact.pop("file", None)
        artifact["attachment"] = {
            "id": stored["attachment_id"],
            "name": stored["attachment_name"],
            "contentType": artifact.pop("contentType", None)
            or stored["attachment_content_type"],
        }


def _finish(
    platform: Platform, engine: Engine, admitted: _Admitted, outcome: runner.Outcome
) -> None:
    job = admitted.job
    if outcome.success:
        status = "Success"
        values: dict[str, Any] = {
            "report": {
                "full": outcome.full,
                "summary": outcome.summary,
                "operations": outcome.operations,
            },
            "artifacts": outcome.artifacts,
        }
    else:
        status = "Failure"
        document = redacted(input_document(job, admitted.config))
        values = {"error_message": outcome.error, "input": document}
    with platform.db.write() as conn:
        # Only a job still InProgress is ended: one cancelled or deleted
        # while it ran keeps that state (and its result is dropped).
        _end(conn, job, status, now_ms(), only_from="InProgress", **values)


def _end(
    conn: Connection,
    job: Row,
    status: str,
    now: int,
    *,
    only_from: str | None = None,
    **values: Any,
) -> bool:
    """Ends ``job`` with ``status`` and tells the listeners; with
    ``only_from``, only if its status is still that one. Returns whether
    the row changed."""
    changes = {"status": status, "end_date": now, "updated_at": now, "worker": None}
    if only_from is None:
        query = _UPDATE_JOB
    else:
        query, changes["only_from"] = _UPDATE_JOB_FROM, only_from
    changed = conn.execute(query, {"job_id": job["id"], **changes, **values}).rowcount
    if not changed:
        return False
    if status in ("Success", "Failure"):
        ended = {**job, "status": status, "end_date": now, **values}
        for listener in _LISTENERS:
            listener(conn, ended)
    return True


# Built once: every job is read and updated several times, and building a
# statement cost three times its run on SQLite. The SET clause of
# _UPDATE_JOB comes from the parameters given with it.
_LOAD_JOB = select(tables.analysis_job).where(
    tables.analysis_job.c.id == bindparam("job_id")
)
_UPDATE_JOB = update(tables.analysis_job).where(
    tables.analysis_job.c.id == bindparam("job_id")
)
_UPDATE_JOB_FROM = _UPDATE_JOB.where(
    tables.analysis_job.c.status == bindparam("only_from")
)
# The running jobs counted inside the job's own update: under an alias, or
# SQLAlchemy would correlate the count to the row being updated.
_IN_PROGRESS = tables.analysis_job.alias("in_progress")
_START_BELOW_CONCURRENCY = _UPDATE_JOB_FROM.where(
    select(func.count())
    .where(_IN_PROGRESS.c.analyzer_id == bindparam("gate"))
    .where(_IN_PROGRESS.c.status == "InProgress")
    .scalar_subquery()
    < bindparam("concurrency")
)


def _load(conn: Connection, job_id: str) -> RowMapping | None:
    return conn.execute(_LOAD_JOB, {"job_id": job_id}).mappings().first()


def get_job(conn: Connection, organisation: str, job_id: str) -> RowMapping:
    """Returns a job that is not Deleted; raises NotFound."""
    row = _load(conn, job_id)
    if row is None or row["organisation"] != organisation or row["status"] == "Deleted":
        raise NotFound(f"job {job_id[:64]} not found")
    return row


def cancel_job(
    conn: Connection, actor: Actor, job_id: str, *, delete: bool = False
) -> None:
    """Stops a Waiting or InProgress job (Failure, "cancelled by ..."), or
    with ``delete`` marks any job Deleted. A running process in this worker
    is killed; one in another worker finishes, and its result is dropped."""
    row = get_job(conn, actor.organisation, job_id)
    now = now_ms()
    if delete:
        conn.execute(
            update(tables.analysis_job)
            .where(tables.analysis_job.c.id == job_id)
            .values(status="Deleted", updated_at=now)
        )
    elif row["status"] in ("Waiting", "InProgress"):
        _end(conn, row, "Failure", now, error_message=f"cancelled by {actor.login}")
    if row["status"] == "InProgress":
        runner.kill_running(job_id)


def recover_jobs(platform: Platform) -> int:
    """Queues again (or fails) jobs whose worker died; returns how many.

    A job InProgress is orphaned when its worker ran on this host and that
    process is gone, or when it outlived its timeout by a minute (the only
    sign left when the worker was on another host).
    """
    engine = engine_for(platform)
    now = now_ms()
    requeue: list[str] = []
    with platform.db.write() as conn:
        for job in _in_progress(conn):
            if not _orphaned(conn, engine, job, now):
                continue
            if job["attempts"] < platform.settings.analyzer_attempts:
                _requeue(conn, job["id"], now)
                requeue.append(job["id"])
            else:
                message = (
                    f"the worker running this job stopped (crash or restart) "
                    f"{job['attempts']} times; not retried"
                )
                _end(conn, job, "Failure", now, error_message=message)
                logger.error(
                    "job %s failed: its worker stopped %d times",
                    job["id"],
                    job["attempts"],
                )
    for job_id in requeue:
        logger.warning(
            "job %s was interrupted by a stopped worker; queued again", job_id
        )
        queue_job(platform, job_id)
    return len(requeue)


def _in_progress(conn: Connection) -> list[RowMapping]:
    job = tables.analysis_job
    return list(
        conn.execute(select(job).where(job.c.status == "InProgress")).mappings()
    )


def _orphaned(conn: Connection, engine: Engine, job: Row, now: int) -> bool:
    host, _, pid = str(job["worker"] or ":").partition(":")
    if job["worker"] == WORKER_ID:
        return False
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    try:
        entry = engine.catalog.get(job["analyzer_id"])
        # The timeout the job really runs under: the configured job_timeout
        # wins over the definition's, as when it was admitted.
        seconds = engine.limits(
            entry, engine.configuration(conn, entry)
        ).timeout_seconds
    except (NotFound, ConfigurationRejected):
        seconds = engine.settings.analyzer_timeout * 60
    # Limitation: a job on another host is recovered only after its timeout
    # plus a minute, because only its host can tell whether it still runs (#6).
    return now - (job["start_date"] or 0) > (seconds + 60) * 1000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _requeue(conn: Connection, job_id: str, now: int) -> None:
    conn.execute(
        update(tables.analysis_job)
        .where(tables.analysis_job.c.id == job_id)
        .values(status="Waiting", worker=None, updated_at=now)
    )


@register(SWEEP_TASK, every_minutes=1)
def sweep(platform: Platform) -> None:
    """Recovers orphaned jobs and re-queues Waiting jobs whose message was
    lost (due more than a minute ago)."""
    recover_jobs(platform)
    job = tables.analysis_job
    late = now_ms() - 60_000
    with platform.db.read() as conn:
        ids = conn.execute(
            select(job.c.id).where(
                job.c.status == "Waiting",
                or_(
                    and_(job.c.not_before.is_(None), job.c.created_at < late),
                    job.c.not_before < late,
                ),
            )
        ).scalars()
        stale = list(ids)
    for job_id in stale:
        queue_job(platform, job_id)


def count_jobs(conn: Connection, organisation: str) -> int:
    job = tables.analysis_job
    return conn.execute(
        select(func.count()).select_from(job).where(job.c.organisation == organisation)
    ).scalar_one()


def job_folder_root(engine: Engine) -> Path:
    return engine.jobs_dir
