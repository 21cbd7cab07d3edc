"""The pages of the web UI, one module per kind of page, and its static
files. `router` is what the application includes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles

from cerana.web.pages import (
    about,
    admin,
    admin_analyzers,
    alert,
    alert_list,
    analyzer_runs,
    auth,
    case,
    case_actions,
    case_fields,
    case_list,
    case_templates,
    definitions,
    jobs,
    live,
    me,
    observables,
    preview,
    tasks,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)
# case_actions first: its /cases/new must win over case's /cases/{case_id}.
for module in (
    auth,
    case_list,
    case_actions,
    case,
    case_fields,
    tasks,
    observables,
    analyzer_runs,
    jobs,
    live,
    preview,
    alert_list,
    alert,
    me,
    admin,
    admin_analyzers,
    definitions,
    case_templates,
    about,
):
    router.include_router(module.router)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

__all__ = ["router"]
