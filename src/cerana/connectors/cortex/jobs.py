"""The platform's Cortex connector: analyzers across instances, jobs on
observables, reports copied to observables, artifacts imported.

A platform job (TheHive's ``case_artifact_job``) runs on one instance:
``local`` is the embedded engine, reached in-process, whose finished jobs
update the platform job in the same transaction; a remote instance is
called over HTTP and its job polled by queued work until it ends.

On Success the report's summary goes into the observable's ``reports``
under the analyzer's definition id, replacing the earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, func, select, update

from cerana.analysis import jobs as engine_jobs
from cerana.analysis.engine import engine_for
from cerana.analysis.errors import AnalyzerNotFound, CortexUnavailable
from cerana.analyzers.base import definition_id
from cerana.connectors.cortex.client import CortexClient, RemoteCortex, remote_instances
from cerana.connectors.cortex.health import LOCAL
from cerana.domain.dates import now_ms
from cerana.domain.errors import CeranaError, InvalidInput, NotFound
from cerana.domain.identifiers import new_id
from cerana.platform import Platform
from cerana.queue import register
from cerana.services import observables
from cerana.services.attachments import Upload
from cerana.services.context import Actor
from cerana.store import tables
from cerana.store.rows import Row

logger = logging.getLogger(__name__)

POLL_TASK = "cortex.poll_job"
POLL_SECONDS = 1.0
MAX_POLL_SECONDS = 30.0


def _remotes(platform: Platform) -> dict[str, RemoteCortex]:
    return {r.name: r for r in remote_instances(platform.settings.cortex)}


def list_analyzers(
    platform: Platform, data_type: str | None = None
) -> list[dict[str, Any]]:
    """Returns the analyzers of every reachable instance, merged by name
    with the instances offering each in ``cortexIds``."""
    return _merge_by_name(_analyzers_by_instance(platform, data_type))


def survey_analyzers(
    platform: Platform, *, timeout: float | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Returns the merged analyzers of every instance, as `list_analyzers`,
    and a message naming each instance that could not be asked."""
    problems: list[str] = []
    found = _analyzers_by_instance(platform, None, problems, timeout)
    return _merge_by_name(found), problems


def _merge_by_name(
    found: list[tuple[str, list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for name, analyzers in found:
        for analyzer in analyzers:
            entry = merged.setdefault(
                analyzer["name"],
                {
                    "id": analyzer["id"],
                    "name": analyzer["name"],
                    "version": analyzer.get("version", ""),
                    "description": analyzer.get("description", ""),
                    "dataTypeList": analyzer.get("dataTypeList", []),
                    "cortexIds": [],
                },
            )
            entry["cortexIds"].append(name)
    return list(merged.values())


def _analyzers_by_instance(
    platform: Platform,
    data_type: str | None,
    problems: list[str] | None = None,
    timeout: float | None = None,
) -> list[tuple[str, list[dict[str, Any]]]]:
    found: list[tuple[str, list[dict[str, Any]]]] = []
    if platform.settings.cortex_embedded:
        catalog = engine_for(platform).catalog
        entries = catalog.for_data_type(data_type) if data_type else catalog.all()
        found.append((LOCAL, [e.to_json() for e in entries]))
    for remote in _remotes(platform).values():
        try:
            with CortexClient(remote, timeout=timeout) as client:
                found.append((remote.name, client.analyzers(data_type)))
        except CortexUnavailable as exc:
            if problems is not None:
                problems.append(exc.message)
            logger.warning(
                "Cortex instance %s skipped in analyzer list: %s",
                remote.name,
                exc.message,
            )
    return found


def run_analyzers(
    platform: Platform,
    actor: Actor,
    analyzer_ids: Sequence[str],
    observable_ids: Sequence[str],
    cortex_id: str | None = None,
) -> list[dict[str, Any]]:
    """Starts every analyzer on every observable; returns the platform jobs.

    Raises NotFound (observable, analyzer), CortexUnavailable naming the
    instance, PolicyRefused (TLP/PAP) or InvalidInput.
    """
    if not analyzer_ids or not observable_ids:
        raise InvalidInput("give at least one analyzer and one observable")
    created = []
    for observable_id in observable_ids:
        with platform.db.read() as conn:
            observable = observables.get_observable(
                conn, actor.organisation, observable_id
            )
        for analyzer_id in analyzer_ids:
            created.append(
                _run_one(platform, actor, analyzer_id, observable, cortex_id)
            )
    return created


def _run_one(
    platform: Platform,
    actor: Actor,
    analyzer_id: str,
    observable: RowMapping,
    cortex_id: str | None,
) -> dict[str, Any]:
    instance = cortex_id or _instance_for(platform, analyzer_id)
    if instance == LOCAL and platform.settings.cortex_embedded:
        return _run_local(platform, actor, analyzer_id, observable)
    remote = _remotes(platform).get(instance)
    if remote is None:
        raise NotFound(f"Cortex instance {instance[:64]} is not configured")
    return _run_remote(platform, actor, remote, analyzer_id, observable)


def _instance_for(platform: Platform, analyzer_id: str) -> str:
    if platform.settings.cortex_embedded:
        try:
            engine_for(platform).catalog.get(analyzer_id)
            return LOCAL
        except AnalyzerNotFound:
            pass
    problems = []
    for remote in _remotes(platform).values():
        try:
            with CortexClient(remote) as client:
                if any(
                    analyzer_id in (a.get("id"), a.get("name"))
                    for a in client.analyzers()
                ):
                    return remote.name
        except CortexUnavailable as exc:
            problems.append(exc.message)
    if problems:
        raise CortexUnavailable("; ".join(problems))
    raise AnalyzerNotFound(
        f"analyzer {analyzer_id[:128]} not found on any Cortex instance"
    )


def _job_request(observable: RowMapping) -> engine_jobs.JobRequest:
    return engine_jobs.JobRequest(
        data_type=observable["data_type"],
        data=observable["data"],
        tlp=observable["tlp"],
        message=observable["case_id"],
    )


def _run_local(
    platform: Platform, actor: Actor, analyzer_id: str, observable: RowMapping
) -> dict[str, Any]:
    engine = engine_for(platform)
    upload_stream = None
    if observable["attachment_id"]:
        upload_stream = platform.store.open(observable["attachment_id"])
    try:
        upload = (
            Upload(
                upload_stream,
                observable["attachment_name"],
                observable["attachment_content_type"] or "",
            )
            if upload_stream
            else None
        )
        with platform.db.write() as conn:
            engine_job, cached = engine_jobs.submit_job(
                conn,
                engine,
                actor,
                analyzer_id,
                _job_request(observable),
                upload=upload,
                store=platform.store,
            )
            entry = engine.catalog.get(analyzer_id)
            row = _insert_job(
                conn,
                actor,
                observable,
                entry.id,
                entry.name,
                entry.id,
                LOCAL,
                engine_job,
            )
            if cached and engine_job["status"] in ("Success", "Failure"):
                copy_engine_result(conn, engine_job)
                row = dict(_load(conn, row["id"]) or row)
    finally:
        if upload_stream is not None:
            upload_stream.close()
    if not cached:
        engine_jobs.queue_job(platform, engine_job["id"])
    return row


def _run_remote(
    platform: Platform,
    actor: Actor,
    remote: RemoteCortex,
    analyzer_id: str,
    observable: RowMapping,
) -> dict[str, Any]:
    attributes = {
        "dataType": observable["data_type"],
        "tlp": observable["tlp"],
        "message": observable["case_id"],
    }
    with CortexClient(remote) as client:
        analyzer = next(
            (
                a
                for a in client.analyzers()
                if analyzer_id in (a.get("id"), a.get("name"))
            ),
            None,
        )
        if analyzer is None:
            raise AnalyzerNotFound(
                f"analyzer {analyzer_id[:128]} not found on Cortex instance {remote.name}"
            )
        if observable["attachment_id"]:
            with platform.store.open(observable["attachment_id"]) as stream:
                remote_job = client.run_file(
                    analyzer["id"],
                    attributes,
                    observable["attachment_name"],
                    stream.read(),
                )
        else:
            remote_job = client.run(
                analyzer["id"], {"data": observable["data"], **attributes}
            )
    definition = definition_id(analyzer["name"], str(analyzer.get("version", "")))
    with platform.db.write() as conn:
        row = _insert_job(
            conn,
            actor,
            observable,
            analyzer["id"],
            analyzer["name"],
            definition,
            remote.name,
            {"id": remote_job["id"], "status": remote_job.get("status", "Waiting")},
        )
    platform.queue.enqueue(POLL_TASK, row["id"], 0, delay=POLL_SECONDS)
    return row


def _insert_job(
    conn: Connection,
    actor: Actor,
    observable: RowMapping,
    analyzer_id: str,
    analyzer_name: str,
    definition: str,
    cortex_id: str,
    remote_job: Row,
) -> dict[str, Any]:
    now = now_ms()
    row = {
        "id": new_id(),
        "observable_id": observable["id"],
        "case_id": observable["case_id"],
        "analyzer_id": analyzer_id,
        "analyzer_name": analyzer_name,
        "analyzer_definition": definition,
        "cortex_id": cortex_id,
        "cortex_job_id": remote_job["id"],
        "status": remote_job["status"],
        "report": None,
        "start_date": now,
        "organisation": actor.organisation,
        "created_by": actor.login,
        "created_at": now,
        "version": 1,
    }
    conn.execute(tables.cortex_job.insert().values(row))
    return row


@engine_jobs.on_job_finished
def copy_engine_result(conn: Connection, engine_job: Row) -> None:
    """Copies an ended embedded-engine job to the platform jobs running it."""
    from cerana.analysis.cortex_api import render_report

    waiting = conn.execute(_RUNNING_ENGINE_JOB, {"engine_job_id": engine_job["id"]})
    for row in list(waiting.mappings()):
        _complete(conn, row, engine_job["status"], render_report(engine_job))


# Built once: it runs at the end of every engine job, most of which no
# platform job waits for.
_RUNNING_ENGINE_JOB = select(tables.cortex_job).where(
    tables.cortex_job.c.cortex_id == LOCAL,
    tables.cortex_job.c.cortex_job_id == bindparam("engine_job_id"),
    tables.cortex_job.c.status != "Success",
    tables.cortex_job.c.status != "Failure",
)


def _complete(conn: Connection, row: Row, status: str, report: Any) -> None:
    now = now_ms()
    conn.execute(
        update(tables.cortex_job)
        .where(tables.cortex_job.c.id == row["id"])
        .values(status=status, report=report, end_date=now, updated_at=now)
    )
    if status == "Success" and isinstance(report, dict):
        _update_reports(
            conn,
            row["observable_id"],
            row["analyzer_definition"],
            report.get("summary") or {},
        )


def _update_reports(
    conn: Connection, observable_id: str, definition: str, summary: Any
) -> None:
    table = tables.observable
    statement = select(table.c.reports).where(table.c.id == observable_id)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    current = conn.execute(statement).scalar_one_or_none()
    if current is None:
        return
    reports = {**(current or {}), definition: summary}
    conn.execute(
        update(table).where(table.c.id == observable_id).values(reports=reports)
    )


@register(POLL_TASK)
def poll_remote_job(platform: Platform, job_id: str, attempt: int = 0) -> None:
    """Asks a remote instance how job ``job_id`` is doing; queues itself
    again (backing off to 30 s) until the job ends."""
    with platform.db.read() as conn:
        row = _load(conn, job_id)
    if row is None or row["status"] in ("Success", "Failure"):
        return
    remote = _remotes(platform).get(row["cortex_id"])
    if remote is None:
        with platform.db.write() as conn:
            message = f"Cortex instance {row['cortex_id']} is no longer configured"
            _complete(conn, row, "Failure", {"errorMessage": message, "success": False})
        return
    try:
        with CortexClient(remote) as client:
            remote_job = client.report(row["cortex_job_id"])
    except CortexUnavailable as exc:
        logger.warning("job %s: %s; will ask again", job_id, exc.message)
        remote_job = {"status": row["status"]}
    status = remote_job.get("status")
    if status in ("Success", "Failure", "Deleted"):
        with platform.db.write() as conn:
            _complete(
                conn,
                row,
                "Failure" if status == "Deleted" else status,
                remote_job.get("report"),
            )
        return
    delay = min(POLL_SECONDS * 2 ** min(attempt, 5), MAX_POLL_SECONDS)
    platform.queue.enqueue(POLL_TASK, job_id, attempt + 1, delay=delay)


def _load(conn: Connection, job_id: str) -> RowMapping | None:
    table = tables.cortex_job
    return conn.execute(select(table).where(table.c.id == job_id)).mappings().first()


def get_job(conn: Connection, organisation: str, job_id: str) -> RowMapping:
    """Returns a platform job; raises NotFound."""
    row = _load(conn, job_id)
    if row is None or row["organisation"] != organisation:
        raise NotFound(f"job {job_id[:64]} not found")
    return row


JOB_SORT_FIELDS = {
    "startDate": "start_date",
    "endDate": "end_date",
    "createdAt": "created_at",
    "status": "status",
    "analyzerId": "analyzer_id",
    "analyzerName": "analyzer_name",
}


def count_jobs(
    conn: Connection,
    organisation: str,
    *,
    observable_id: str | None = None,
    status: str | None = None,
) -> int:
    """Counts the platform jobs `find_jobs` pages through."""
    table = tables.cortex_job
    statement = (
        select(func.count())
        .select_from(table)
        .where(table.c.organisation == organisation)
    )
    if observable_id:
        statement = statement.where(table.c.observable_id == observable_id)
    if status:
        statement = statement.where(table.c.status == status)
    return int(conn.execute(statement).scalar_one())


def find_jobs(
    conn: Connection,
    organisation: str,
    *,
    observable_id: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int | None = 100,
    sort: Sequence[tuple[str, bool]] = (),
) -> list[RowMapping]:
    """Returns platform jobs, optionally of one observable, in ``sort``
    order (TheHive's field names, see `JOB_SORT_FIELDS`), newest first by
    default. Raises InvalidInput for a field jobs cannot be sorted on."""
    table = tables.cortex_job
    statement = select(table).where(table.c.organisation == organisation)
    if observable_id:
        statement = statement.where(table.c.observable_id == observable_id)
    if status:
        statement = statement.where(table.c.status == status)
    order = []
    for name, descending in sort:
        column_name = JOB_SORT_FIELDS.get(name)
        if column_name is None:
            known = ", ".join(sorted(JOB_SORT_FIELDS))
            raise InvalidInput(f"Jobs cannot be sorted on {name!r:.80}: use {known}")
        column = table.c[column_name]
        order.append(column.desc() if descending else column.asc())
    order.append(table.c.created_at.desc())
    statement = statement.order_by(*order).offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    return list(conn.execute(statement).mappings())


def import_artifacts(
    platform: Platform, actor: Actor, job_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Adds a Success job's artifacts to its case as observables; returns
    (created rows, errors) as TheHive's multi-result does."""
    created: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with platform.db.write() as conn:
        job = get_job(conn, actor.organisation, job_id)
        report = job["report"] if isinstance(job["report"], dict) else {}
        if job["status"] != "Success":
            raise InvalidInput(f"job {job_id[:64]} has no report to import from")
        for artifact in report.get("artifacts") or []:
            try:
                with conn.begin_nested():
                    created.extend(_import_one(platform, conn, actor, job, artifact))
            except CeranaError as exc:
                failed.append({**exc.to_json(), "object": artifact})
    return created, failed


def _import_one(
    platform: Platform,
    conn: Connection,
    actor: Actor,
    job: RowMapping,
    artifact: Row,
) -> list[dict[str, Any]]:
    body = {
        "dataType": artifact.get("dataType"),
        "message": artifact.get("message")
        or f"imported from {job['analyzer_name']} report",
        "tags": list(artifact.get("tags") or []),
        "tlp": artifact.get("tlp", 2),
    }
    attachment = artifact.get("attachment")
    if body["dataType"] == "file":
        if job["cortex_id"] != LOCAL or not isinstance(attachment, dict):
            # Limitation: file artifacts of remote instances are not
            # downloaded yet, because /api/datastore needs a second client
            # flow (#6); the import reports them as failures.
            raise InvalidInput(
                "file artifacts of remote Cortex instances cannot be imported"
            )
        with platform.store.open(str(attachment["id"])) as stream:
            upload = Upload(
                stream,
                str(attachment.get("name") or "file"),
                str(attachment.get("contentType") or ""),
            )
            done, errors = observables.create_observables(
                conn,
                actor,
                job["case_id"],
                body,
                upload=upload,
                store=platform.store,
                max_size=platform.settings.max_attachment_size,
            )
    else:
        done, errors = observables.create_observables(
            conn, actor, job["case_id"], {**body, "data": artifact.get("data")}
        )
    if errors:
        raise InvalidInput(str(errors[0].get("message")))
    return done
