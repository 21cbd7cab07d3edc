"""Web UI fixtures: the API tests' live server, signed-in HTTP clients,
and Debian's chromium driven by Playwright (one browser per session)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.api import conftest as api_conftest
from tests.api.conftest import ADMIN_PASSWORD, LiveServer

# The live server fixture of the API tests, one per backend.
server = api_conftest.server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "password-123"  # LiveServer.add_user's default


@dataclass
class WebSession:
    """An HTTP client signed in through the login form, with its CSRF token."""

    client: httpx.Client
    csrf: str

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})})


def login_fields(client: httpx.Client, login: str, password: str) -> dict[str, str]:
    """Fetches the sign-in form and returns its fields, filled in."""
    form = client.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token is not None
    return {"login": login, "password": password, "login_token": token.group(1)}


@pytest.fixture
def sign_in_http(server: LiveServer) -> Iterator[Callable[..., WebSession]]:
    """Signs a login in through ``POST /login``; clients close after the test."""
    opened: list[httpx.Client] = []

    def sign_in(login: str = "admin", password: str = ADMIN_PASSWORD) -> WebSession:
        client = httpx.Client(base_url=server.url, timeout=30)
        opened.append(client)
        response = client.post("/login", data=login_fields(client, login, password))
        assert response.status_code == 303, response.text
        return WebSession(client, client.cookies["THE-HIVE-XSRF-TOKEN"])

    yield sign_in
    for client in opened:
        client.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Opens browser contexts (separate cookie jars); all close after the test."""
    contexts: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def sign_in(
    server: LiveServer, new_context: Callable[[], BrowserContext]
) -> Callable[..., Page]:
    """Returns a page of a new browser context signed in as ``login``."""

    def open_page(login: str = "admin", password: str = ADMIN_PASSWORD) -> Page:
        page = new_context().new_page()
        page.goto(f"{server.url}/login")
        page.get_by_label("Login").fill(login)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/cases"))
        return page

    return open_page


def create_case(server: LiveServer, **fields: object) -> dict[str, object]:
    """Opens a case through the API as the administrator; returns its JSON."""
    body = {"title": "Suspicious login", "description": "Seen by the SIEM.", **fields}
    response = server.client().post("/api/case", json=body)
    assert response.status_code == 201, response.text
    case: dict[str, object] = response.json()
    return case
