"""Alert routes: `/api/alert...` (TheHive 3 paths), plus bulk ingestion
(`POST /api/alert/_bulk`) and merging many alerts into one case
(`POST /api/alert/merge/_bulk`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from cerana.api import render
from cerana.api.body import id_list, read_fields
from cerana.api.deps import guard, platform, read, write
from cerana.api.responses import empty, json_response, multi_response, search_response
from cerana.api.searching import stats_endpoint
from cerana.domain import attributes as attrs
from cerana.domain.alerts import UnreadableItem
from cerana.domain.errors import InvalidInput, InvalidQuery
from cerana.services import alert_cases
from cerana.services import alert_similarity as similarity
from cerana.services import alerts as alert_service
from cerana.services.alerts import AlertRecord, IngestOptions, ItemOutcome
from cerana.services.attachments import attachment_rows
from cerana.store import models, query
from cerana.store.rows import Row

router = APIRouter()

_TRUE = ("1", "true", "True")
_FALSE = ("0", "false", "False")


# -- search and stats ----------------------------------------------------------


@router.get("/api/alert")
async def list_alerts(request: Request) -> Response:
    return await _search(request)


@router.post("/api/alert/_search")
async def search_alerts(request: Request) -> Response:
    return await _search(request)


@router.post("/api/alert/_stats")
async def alert_stats(request: Request) -> Response:
    return await stats_endpoint(request, models.ALERT)


async def _search(request: Request) -> Response:
    # Limitation: X-Total of a query on anything but the status is an exact
    # COUNT, tens of milliseconds over 500,000 alerts; only status lists
    # read the per-status counters (query.counted_total, #4).
    actor = await guard(request, "read")
    fields = await read_fields(request, platform(request).settings.max_body_size)
    values = fields.values
    range_ = query.parse_range(values.get("range"))
    sort = query.parse_sort(values.get("sort"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = query.search(
            conn,
            models.ALERT,
            organisation=actor.organisation,
            query=values.get("query"),
            range_=range_,
            sort=sort,
        )
        return _render_records(conn, alert_service.with_artifacts(conn, rows)), total

    items, total = await read(request, run)
    return search_response(items, total)


# -- creation ------------------------------------------------------------------


@router.post("/api/alert/_bulk")
async def ingest_alerts(request: Request) -> Response:
    actor = await guard(request, "alert")
    options = _options(request)
    bodies = _parse_feed(request, await _read_raw(request))
    outcomes = await write(request, alert_service.ingest_alerts, actor, bodies, options)
    return _bulk_response(outcomes)


@router.patch("/api/alert/_bulk")
async def bulk_update_alerts(request: Request) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    ids = id_list(fields.pop("ids"))

    def run(conn: Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        done, failed = alert_service.bulk_update_alerts(
            conn, actor, ids, fields.values, _options(request)
        )
        return _render_records(conn, done), failed

    done, failed = await write(request, run)
    return multi_response(done, failed, 200)


@router.post("/api/alert/merge/_bulk")
async def merge_alerts(request: Request) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    alert_ids = id_list(fields.pop("alertIds"), limit=alert_cases.MAX_ALERTS_PER_MERGE)
    case_id = _optional_text(fields.pop("caseId"), "caseId")
    template = _optional_text(fields.pop("caseTemplate"), "caseTemplate")
    case = await write(
        request,
        alert_cases.merge_alerts_into_case,
        actor,
        case_id,
        alert_ids,
        template,
    )
    return json_response(render.render_case(case), 201)


@router.post("/api/alert")
async def create_alert(request: Request) -> Response:
    # Limitation: about 170 alerts/s with 8 clients (190 on PostgreSQL),
    # below the 400/s target, because each request pays the HTTP stack,
    # routing, an authentication read and a commit, 2.5 to 4 ms of one core
    # in all, on a machine whose two cores the clients share (#4).
    actor = await guard(request, "alert")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )

    def run(conn: Connection) -> tuple[dict[str, Any], bool]:
        record, created = alert_service.create_alert(
            conn, actor, fields.values, _options(request)
        )
        return _render_records(conn, [record])[0], created

    body, created = await write(request, run)
    return json_response(body, 201 if created else 200)


# -- one alert -----------------------------------------------------------------


@router.get("/api/alert/{alert_id}")
async def get_alert(request: Request, alert_id: str) -> Response:
    actor = await guard(request, "read")
    with_similarity = request.query_params.get("similarity") in _TRUE
    limit = platform(request).settings.max_similar_cases

    def run(conn: Connection) -> dict[str, Any]:
        record = alert_service.get_alert_record(conn, actor.organisation, alert_id)
        stored = _attachments(conn, record.artifacts)
        body = render_alert(record, stored)
        if with_similarity:
            _add_similarity(conn, actor.organisation, record, stored, body, limit)
        return body

    return json_response(await read(request, run))


@router.patch("/api/alert/{alert_id}")
async def update_alert(request: Request, alert_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )

    def run(conn: Connection) -> dict[str, Any]:
        record = alert_service.update_alert(
            conn, actor, alert_id, fields.values, _options(request)
        )
        return _render_records(conn, [record])[0]

    return json_response(await write(request, run))


@router.delete("/api/alert/{alert_id}")
async def delete_alert(request: Request, alert_id: str) -> Response:
    force = request.query_params.get("force") in _TRUE
    actor = await guard(request, "admin" if force else "write")
    await write(request, alert_service.delete_alert, actor, alert_id, force=force)
    return empty()


@router.post("/api/alert/{alert_id}/markAsRead")
async def mark_alert_read(request: Request, alert_id: str) -> Response:
    return await _triage(request, alert_service.mark_alert_read, alert_id)


@router.post("/api/alert/{alert_id}/markAsUnread")
async def mark_alert_unread(request: Request, alert_id: str) -> Response:
    return await _triage(request, alert_service.mark_alert_unread, alert_id)


@router.post("/api/alert/{alert_id}/follow")
async def follow_alert(request: Request, alert_id: str) -> Response:
    return await _triage(request, alert_service.follow_alert, alert_id, True)


@router.post("/api/alert/{alert_id}/unfollow")
async def unfollow_alert(request: Request, alert_id: str) -> Response:
    return await _triage(request, alert_service.follow_alert, alert_id, False)


@router.post("/api/alert/{alert_id}/ignore")
async def ignore_alert(request: Request, alert_id: str) -> Response:
    return await _triage(request, alert_service.ignore_alert, alert_id)


async def _triage(request: Request, action: Any, alert_id: str, *args: Any) -> Response:
    actor = await guard(request, "write")

    def run(conn: Connection) -> dict[str, Any]:
        record = action(conn, actor, alert_id, *args)
        return _render_records(conn, [record])[0]

    return json_response(await write(request, run))


@router.post("/api/alert/{alert_id}/createCase")
async def create_case_from_alert(request: Request, alert_id: str) -> Response:
    actor = await guard(request, "write")
    fields = await read_fields(
        request, platform(request).settings.max_body_size, with_query=False
    )
    template = _optional_text(fields.pop("caseTemplate"), "caseTemplate")
    case = await write(
        request, alert_cases.open_case_from_alert, actor, alert_id, template
    )
    return json_response(render.render_case(case), 201)


@router.post("/api/alert/{alert_id}/merge/{case_id}")
async def merge_alert(request: Request, alert_id: str, case_id: str) -> Response:
    actor = await guard(request, "write")
    case = await write(
        request, alert_cases.merge_alert_into_case, actor, alert_id, case_id
    )
    return json_response(render.render_case(case), 201)


# -- rendering -----------------------------------------------------------------


def render_alert(
    record: AlertRecord, attachments: render.Attachments
) -> dict[str, Any]:
    """Returns TheHive's alert JSON with its artifacts."""
    body = render.render_entity(attrs.ALERT, record.row)
    body.setdefault("tags", [])
    body["artifacts"] = [render_artifact(a, attachments) for a in record.artifacts]
    return body


def render_artifact(row: Row, attachments: render.Attachments) -> dict[str, Any]:
    """Returns one alert artifact: ``data``, or ``attachment`` for a file."""
    body: dict[str, Any] = {
        "dataType": row["data_type"],
        "tags": row["tags"],
        "tlp": row["tlp"],
        "ioc": row["ioc"],
        "startDate": row["start_date"],
    }
    if row["message"] is not None:
        body["message"] = row["message"]
    if row["attachment_id"]:
        stored = attachments.get(row["attachment_id"])
        body["attachment"] = render.render_attachment(row, stored)
    else:
        body["data"] = row["data"]
    return body


def _render_records(
    conn: Connection, records: Sequence[AlertRecord]
) -> list[dict[str, Any]]:
    artifacts = [a for record in records for a in record.artifacts]
    stored = _attachments(conn, artifacts)
    return [render_alert(record, stored) for record in records]


def _attachments(
    conn: Connection, artifacts: Sequence[Row]
) -> dict[str, dict[str, Any]]:
    return attachment_rows(
        conn, {a["attachment_id"] for a in artifacts if a["attachment_id"]}
    )


def _add_similarity(
    conn: Connection,
    organisation: str,
    record: AlertRecord,
    stored: render.Attachments,
    body: dict[str, Any],
    limit: int,
) -> None:
    probes = similarity.probes_of(record.artifacts, stored)
    known, cases = similarity.find_similarity(
        conn, organisation, record.id, probes, limit
    )
    for item, artifact in zip(body["artifacts"], record.artifacts, strict=True):
        found = known[artifact["id"]]
        item["seen"] = found.seen
        item["known"] = found.to_json()
    body["similarCases"] = [_render_similar(s) for s in cases]


def _render_similar(similar: similarity.SimilarCase) -> dict[str, Any]:
    case = render.render_case(similar.case)
    keep = (
        "id",
        "_id",
        "caseId",
        "title",
        "tags",
        "status",
        "severity",
        "resolutionStatus",
        "tlp",
        "startDate",
        "endDate",
    )
    body = {key: case[key] for key in keep if key in case}
    body.update(
        similarArtifactCount=similar.similar_artifacts,
        similarIocCount=similar.similar_iocs,
        artifactCount=similar.artifact_count,
        iocCount=similar.ioc_count,
    )
    return body


# -- input ---------------------------------------------------------------------


def _options(request: Request) -> IngestOptions:
    p = platform(request)
    raw = request.query_params.get("upsert")
    if raw is None:
        upsert = p.settings.alert_upsert
    elif raw in _TRUE or raw in _FALSE:
        upsert = raw in _TRUE
    else:
        raise InvalidInput(f"upsert must be true or false, not {raw[:20]!r}")
    return IngestOptions(p.store, p.settings.max_attachment_size, upsert)


def _optional_text(raw: Any, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or "\x00" in raw or len(raw) > 256:
        raise InvalidInput(f"{name} must be a string of at most 256 characters")
    return raw


async def _read_raw(request: Request) -> bytes:
    limit = platform(request).settings.max_body_size
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InvalidInput(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_feed(request: Request, raw: bytes) -> list[Any]:
    """Returns the items of a JSON array, or of NDJSON (one alert a line)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type in ("application/x-ndjson", "application/jsonl"):
        lines = [line for line in raw.split(b"\n") if line.strip()]
        return [_parse_line(number, line) for number, line in enumerate(lines, 1)]
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise InvalidQuery("the bulk body must be a JSON array of alerts (or NDJSON)")
    return items


def _parse_line(number: int, line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return UnreadableItem(f"line {number} is not valid JSON: {exc}")


def _bulk_response(outcomes: Sequence[ItemOutcome]) -> Response:
    items = []
    for outcome in outcomes:
        item: dict[str, Any] = {"index": outcome.index, "status": outcome.status}
        if outcome.alert_id is not None:
            item["id"] = outcome.alert_id
        if outcome.error is not None:
            item["error"] = outcome.error
        items.append(item)
    created = sum(1 for o in outcomes if o.status == 201)
    updated = sum(1 for o in outcomes if o.status == 200)
    failed = len(outcomes) - created - updated
    if failed == 0:
        status = 201 if created else 200
    else:
        status = 400 if failed == len(outcomes) else 207
    body = {"created": created, "updated": updated, "failed": failed, "items": items}
    return json_response(body, status)
