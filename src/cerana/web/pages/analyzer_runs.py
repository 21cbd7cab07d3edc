"""Running analyzers from the case's observables tab and the observable
page: one analyzer on one observable, or many on many at once.

The analyzers offered are those of every instance (the embedded engine
and the remote ones); an instance that does not answer is named on the
page instead of silently missing from the choices.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from cerana.api.deps import platform
from cerana.connectors.cortex import jobs as connector_jobs
from cerana.domain.errors import CeranaError
from cerana.platform import Platform
from cerana.services.context import Actor
from cerana.web import forms
from cerana.web.routing import page_router
from cerana.web.session import posted_form_as
from cerana.web.templating import redirect, safe_next

logger = logging.getLogger(__name__)

router = page_router()

# A page lists analyzers while it renders: an instance slower than this is
# reported as unreachable rather than holding the page.
LIST_TIMEOUT_SECONDS = 2.0
MAX_RUNS = 200


async def analyzer_choices(
    request: Request, data_types: Iterable[str]
) -> dict[str, Any]:
    """Returns the template context of the run buttons: the analyzers for
    each of ``data_types``, all of them for the multi-run form, and a
    message naming each instance that could not be asked."""
    wanted = set(data_types)
    if not wanted:
        return {
            "analyzers_by_type": {},
            "offered_analyzers": [],
            "analysis_problems": [],
        }
    # Limitation: remote instances are asked at each page, because a cached
    # list would keep offering an instance that went down (#6); a slow one
    # costs the page up to LIST_TIMEOUT_SECONDS.
    found, problems = await run_in_threadpool(
        connector_jobs.survey_analyzers,
        platform(request),
        timeout=LIST_TIMEOUT_SECONDS,
    )
    by_type: dict[str, list[dict[str, Any]]] = {d: [] for d in wanted}
    for analyzer in sorted(found, key=lambda a: str(a["name"]).lower()):
        for data_type in analyzer["dataTypeList"]:
            if data_type in by_type:
                by_type[data_type].append(analyzer)
    offered = [a for a in found if wanted.intersection(a["dataTypeList"])]
    return {
        "analyzers_by_type": by_type,
        "offered_analyzers": sorted(offered, key=lambda a: str(a["name"]).lower()),
        "analysis_problems": problems,
    }


@router.post("/observables/{observable_id}/analyze")
async def run_on_observable(request: Request, observable_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    back = safe_next(forms.text(form, "next"), f"/observables/{observable_id}")
    analyzer_id = forms.text(form, "run")
    if not analyzer_id:
        return redirect(back, "Choose the analyzer to run.")
    message = await _run_all(
        platform(request), viewer.actor, [analyzer_id], [observable_id]
    )
    return redirect(back, message)


@router.post("/cases/{case_id}/observables/analyze")
async def run_on_many(request: Request, case_id: str) -> Response:
    viewer, form = await posted_form_as(request, "write")
    back = safe_next(forms.text(form, "next"), f"/cases/{case_id}?tab=observables")
    observable_ids = forms.ids(form, "observable")
    analyzer_ids = list(dict.fromkeys(forms.ids(form, "analyzer")))
    if not observable_ids or not analyzer_ids:
        return redirect(back, "Tick at least one observable and one analyzer to run.")
    if len(observable_ids) * len(analyzer_ids) > MAX_RUNS:
        return redirect(
            back, f"At most {MAX_RUNS} jobs start at once: tick fewer observables."
        )
    message = await _run_all(
        platform(request), viewer.actor, analyzer_ids, observable_ids
    )
    return redirect(back, message)


async def _run_all(
    p: Platform,
    actor: Actor,
    analyzer_ids: Sequence[str],
    observable_ids: Sequence[str],
) -> str:
    # One pair at a time, so that one unreachable instance or one refused
    # TLP does not stop the other runs; the message says what failed.
    started = 0
    failures: list[str] = []
    for observable_id in observable_ids:
        for analyzer_id in analyzer_ids:
            try:
                created = await run_in_threadpool(
                    connector_jobs.run_analyzers,
                    p,
                    actor,
                    [analyzer_id],
                    [observable_id],
                )
            except CeranaError as exc:
                if exc.status in (401, 403):
                    raise
                logger.info("analyzer %s not started: %s", analyzer_id, exc.message)
                failures.append(exc.message)
                continue
            started += len(created)
    return _run_summary(started, failures)


def _run_summary(started: int, failures: Sequence[str]) -> str:
    message = f"{started} job{'' if started == 1 else 's'} started; see Jobs."
    if failures:
        distinct = list(dict.fromkeys(failures))
        message = f"{message} {len(failures)} not started: {distinct[0]}"
        if len(distinct) > 1:
            message += f" (and {len(distinct) - 1} other reason(s))"
    return message
