"""Takes screenshots of the main web pages into docs/screenshots/.

Starts a throwaway Cerana server on SQLite in a temporary folder, fills it
with a few demo cases through the REST API, and photographs the pages with
Debian's chromium through Playwright:

    python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright

from cerana.app import create_app
from cerana.config import Settings
from cerana.platform import Platform

ADMIN_PASSWORD = "screenshots-admin-1"
ANALYST_PASSWORD = "analyst-pass-1"
ROOT = Path(__file__).resolve().parent.parent

DEMO_CASES = [
    {
        "title": "Credential phishing against the finance team",
        "severity": 3,
        "tlp": 2,
        "tags": ["phishing", "finance", "o365"],
        "flag": True,
        "description": "Twelve users of **finance** received a fake invoice "
        "linking to a credential harvesting page.\n\n"
        "- first report: 08:42 UTC by the service desk\n"
        "- lure: `Invoice_2291.html`\n\n"
        "> Block the sender domain and reset the passwords of the users who clicked.",
    },
    {
        "title": "Beaconing from WS-0412 to a rare domain",
        "severity": 2,
        "tlp": 2,
        "tags": ["c2", "edr"],
        "description": "EDR flagged periodic HTTPS connections every 60 s.",
    },
    {
        "title": "Ransomware note found on file server FS-02",
        "severity": 3,
        "tlp": 3,
        "tags": ["ransomware", "incident"],
        "flag": True,
        "description": "Encrypted shares found at 03:10; note names the group.",
    },
    {
        "title": "Impossible travel sign-in for j.doe",
        "severity": 1,
        "tlp": 1,
        "tags": ["identity"],
        "description": "Two sign-ins 9,000 km apart within 20 minutes.",
    },
    {
        "title": "Suspicious PowerShell download cradle",
        "severity": 2,
        "tlp": 2,
        "tags": ["powershell", "edr"],
        "description": "Encoded command fetching a script from a paste site.",
    },
    {
        "title": "Vulnerability scan from an unknown address",
        "severity": 1,
        "tlp": 0,
        "tags": ["scan", "perimeter"],
        "description": "Nothing got through; documenting for the weekly report.",
    },
]
SHARED_IP = "203.0.113.66"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    settings = Settings(
        data_dir=data_dir,
        secret_key="screenshots-only-secret",
        admin_password=ADMIN_PASSWORD,
        analyzers={
            "FireHOLBlocklists": {"blocklistpath": str(_write_blocklist(data_dir))}
        },
    )
    platform = Platform.open(settings)
    platform.prepare()
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, prepared=platform),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the screenshot server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def _write_blocklist(data_dir: Path) -> Path:
    """A one-list FireHOL folder naming the demo's shared IP, so the job
    page shows a real report of a shipped analyzer (#6)."""
    folder = data_dir / "firehol"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo_c2.ipset").write_text(
        "# demo_c2\n#\n# Command and control hosts seen by the demo SOC\n"
        f"# Source File Date: Tue Jan 23 08:55:02 UTC 2024\n#\n{SHARED_IP}\n"
        "198.51.100.0/24\n",
        encoding="utf-8",
    )
    return folder


def _run_analyzers(api: httpx.Client, case_id: str) -> str:
    """Runs the shipped analyzers on the main case's IPs; returns the id of
    the FireHOL job on the shared IP once it has ended."""
    found = api.post(
        f"/api/case/{case_id}/artifact/_search", json={"query": {"dataType": "ip"}}
    ).json()
    jobs = api.post(
        "/api/connector/cortex/job",
        json={
            "analyzerIds": ["FireHOLBlocklists_2_0", "NoOp_1_0"],
            "artifactIds": [o["id"] for o in found],
        },
    ).json()
    shared = next(o["id"] for o in found if o["data"] == SHARED_IP)
    job_id = next(
        j["id"]
        for j in jobs
        if j["artifactId"] == shared and j["analyzerName"] == "FireHOLBlocklists"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.get(f"/api/connector/cortex/job/{job_id}").json()["status"] in (
            "Success",
            "Failure",
        ):
            return str(job_id)
        time.sleep(0.2)
    raise RuntimeError("the demo analyzer job did not end")


def fill_demo_data(url: str) -> dict[str, str]:
    """Creates users, cases, tasks, logs and observables; returns ids."""
    auth = ("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=url, auth=auth, timeout=30) as api:
        for login, name, roles in (
            ("alice", "Alice Martin", ["read", "write"]),
            ("bruno", "Bruno Keller", ["read", "write"]),
            ("auditor", "Audit Team", ["read"]),
        ):
            user = {"login": login, "name": name, "roles": roles}
            api.post("/api/user", json={**user, "password": ANALYST_PASSWORD})
        ids = [
            _create_case(api, number, body) for number, body in enumerate(DEMO_CASES)
        ]
        main = ids[0]
        task_ids = _add_tasks(api, main)
        _add_logs(api, task_ids[0])
        _add_observables(api, ids)
        job = _run_analyzers(api, main)
        api.patch(
            f"/api/case/{ids[5]}",
            json={
                "status": "Resolved",
                "resolutionStatus": "FalsePositive",
                "impactStatus": "NoImpact",
                "summary": "Authorised scan by the red team.",
            },
        )
        alert = _add_alerts(api)
        template = _add_template(api)
        return {
            "case": main,
            "task": task_ids[0],
            "alert": alert,
            "template": template,
            "job": job,
        }


def _create_case(api: httpx.Client, number: int, body: dict[str, object]) -> str:
    owner = ("alice", "bruno", "admin")[number % 3]
    response = api.post("/api/case", json={**body, "owner": owner})
    response.raise_for_status()
    case_id: str = response.json()["id"]
    return case_id


def _add_tasks(api: httpx.Client, case_id: str) -> list[str]:
    tasks = [
        ("Identify recipients", "triage", "alice", "Completed"),
        ("Collect mail headers", "triage", "alice", "InProgress"),
        ("Block sender domain", "containment", "bruno", "InProgress"),
        ("Reset passwords of users who clicked", "containment", None, "Waiting"),
        ("Write the incident report", "closure", None, "Waiting"),
    ]
    ids = []
    for order, (title, group, owner, status) in enumerate(tasks):
        body = {"title": title, "group": group, "order": order, "owner": owner}
        task = api.post(f"/api/case/{case_id}/task", json=body).json()
        if status != "Waiting":
            api.patch(f"/api/case/task/{task['id']}", json={"status": status})
        ids.append(task["id"])
    return ids


def _add_logs(api: httpx.Client, task_id: str) -> None:
    messages = [
        "Pulled the message trace: **12 recipients**, 4 clicked.",
        "Headers show the mail came from `mail.invoices-portal.example` "
        "through a compromised partner relay.\n\n"
        "```\nReceived: from relay.partner.example (198.51.100.20)\n```",
    ]
    for message in messages:
        api.post(f"/api/case/task/{task_id}/log", json={"message": message})


def _add_template(api: httpx.Client) -> str:
    """Defines two custom fields and a metric, then a phishing template that
    uses them; returns the template's id (#5)."""
    fields = [
        ("businessImpact", "Business impact", "string", ["Low", "Medium", "High"]),
        ("affectedHosts", "Affected hosts", "integer", []),
    ]
    for reference, name, kind, options in fields:
        item = {
            "reference": reference,
            "name": name,
            "description": "",
            "type": kind,
            "options": options,
            "mandatory": reference == "businessImpact",
        }
        api.post("/api/list/custom_fields", json={"value": item})
    metric = {"name": "timeToDetect", "title": "Time to detect (h)", "description": ""}
    api.post("/api/list/case_metrics", json={"value": metric})
    tasks = [
        ("Identify recipients", "triage", "alice"),
        ("Collect mail headers", "triage", "alice"),
        ("Block sender domain", "containment", "bruno"),
        ("Reset passwords of users who clicked", "containment", None),
    ]
    body = {
        "name": "Phishing",
        "titlePrefix": "[PHISH]",
        "description": "A user reported a **phishing** mail.",
        "severity": 2,
        "tlp": 2,
        "tags": ["phishing"],
        "tasks": [
            {"title": title, "group": group, "owner": owner, "order": order}
            for order, (title, group, owner) in enumerate(tasks)
        ],
        "customFields": {
            "businessImpact": {"string": "Medium", "order": 0},
            "affectedHosts": {"integer": None, "order": 1},
        },
        "metrics": {"timeToDetect": None},
    }
    response = api.post("/api/case/template", json=body)
    response.raise_for_status()
    template_id: str = response.json()["id"]
    return template_id


def _add_alerts(api: httpx.Client) -> str:
    """Creates a few alerts, one sharing an IP with the demo cases; returns
    the id of that one, which the preview screenshot shows."""
    alerts = [
        (
            "siem",
            "splunk",
            "SPL-88121",
            "Outbound beacon to a known C2",
            3,
            [
                ("ip", SHARED_IP, True),
                ("domain", "cdn-updates.example", True),
                ("fqdn", "ws-0418.corp.example", False),
            ],
        ),
        (
            "ids",
            "suricata",
            "ET-2027865",
            "ET TROJAN suspicious TLS certificate",
            2,
            [("ip", "198.51.100.77", False)],
        ),
        (
            "mail",
            "proofpoint",
            "PP-5512",
            "Reported phishing: invoice lure",
            2,
            [("mail", "billing@invoices-portal.example", True)],
        ),
        ("edr", "crowdstrike", "CS-90314", "Encoded PowerShell on WS-0233", 1, []),
    ]
    ids = []
    for kind, source, ref, title, severity, artifacts in alerts:
        body = {
            "type": kind,
            "source": source,
            "sourceRef": ref,
            "title": title,
            "severity": severity,
            "tags": [kind],
            "description": f"Raised by **{source}**; see the rule `{ref}`.",
            "artifacts": [
                {"dataType": t, "data": v, "ioc": ioc, "tags": [source]}
                for t, v, ioc in artifacts
            ],
        }
        response = api.post("/api/alert", json=body)
        response.raise_for_status()
        ids.append(response.json()["id"])
    api.post(f"/api/alert/{ids[3]}/markAsRead")
    return str(ids[0])


def _add_observables(api: httpx.Client, case_ids: list[str]) -> None:
    main, beacon, ransom = case_ids[0], case_ids[1], case_ids[2]
    batches = [
        (main, "domain", ["invoices-portal.example", "login-micros0ft.example"], True),
        (main, "mail", ["billing@invoices-portal.example"], True),
        (main, "ip", [SHARED_IP, "198.51.100.20"], False),
        (main, "url", ["https://login-micros0ft.example/owa/"], True),
        (main, "hash", ["44d88612fea8a8f36de82e1278abb02f"], False),
        (beacon, "ip", [SHARED_IP], True),
        (beacon, "domain", ["cdn-updates.example"], True),
        (ransom, "ip", [SHARED_IP], False),
    ]
    for case_id, data_type, values, ioc in batches:
        body = {"dataType": data_type, "data": values, "ioc": ioc, "tags": ["demo"]}
        api.post(f"/api/case/{case_id}/artifact", json=body)
    found = api.post(
        f"/api/case/{main}/artifact/_search", json={"query": {"data": SHARED_IP}}
    ).json()
    for observable in found:
        api.patch(f"/api/case/artifact/{observable['id']}", json={"sighted": True})


def take_screenshots(
    url: str, ids: dict[str, str], out: Path, chromium: str
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("case-list", "/cases?status=any"),
        ("new-case", "/cases/new"),
        ("case-details", f"/cases/{ids['case']}"),
        ("case-tasks", f"/cases/{ids['case']}?tab=tasks"),
        ("case-observables", f"/cases/{ids['case']}?tab=observables"),
        ("case-history", f"/cases/{ids['case']}?tab=history"),
        ("task", f"/tasks/{ids['task']}"),
        ("admin-users", "/admin/users"),
        ("admin-templates", "/admin/templates"),
        ("admin-custom-fields", "/admin/custom-fields"),
        ("template-editor", f"/admin/templates/{ids['template']}"),
        ("about", "/about"),
        ("jobs", "/jobs"),
        ("job", f"/jobs/{ids['job']}"),
        ("admin-analyzers", "/admin/analyzers"),
        ("alert-list", "/alerts"),
        ("alert-preview", f"/alerts/{ids['alert']}"),
    ]
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/login")
        written.append(_shoot(page, out / "login.png"))
        page.get_by_label("Login").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/cases")
        for name, path in shots:
            page.goto(f"{url}{path}")
            written.append(_shoot(page, out / f"{name}.png"))
        browser.close()
    return written


def _shoot(page: Page, path: Path) -> Path:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cerana-screenshots-") as folder:
        url, server, thread = start_server(Path(folder))
        try:
            ids = fill_demo_data(url)
            take_screenshots(url, ids, args.out.resolve(), args.chromium)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
