"""A live console on the test database and one headless Chromium for the whole run (`make test-browser`).

The server is Django's live-server thread in this process, on a free port, serving the console with its
static files. It is not pytest-django's `live_server` fixture: that one asks for `transactional_db`,
whose flush would empty the reference data the migrations seed (tiers, role groups) and is refused by the
append-only audit tables. Tests use the suite's own `committed` fixture instead: data is really
committed (the server thread sees it), and everything but reference data is truncated afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, is_broken_pipe_error
from django.test.testcases import LiveServerThread
from django.test.utils import modify_settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# The suite's database fixtures (`django_db_setup` for all three aliases, `committed`), shared with tests/.
from tests.conftest import committed, django_db_setup, make_client, manage  # noqa: F401
from tests_browser.console import Console, ServerLog
from tests_browser.staff import Staff, staff_member

CHROMIUM = os.environ.get("FLOWS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FLOWS_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "Install Debian's Chromium and its driver: apt-get install chromium chromium-driver"
WINDOW = (1366, 900)
PAGE_LOAD_SECONDS = 30


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


class _RecordingServer(ThreadedWSGIServer):
    """Django's threaded server, keeping the tracebacks it would only print (errors outside the handler)."""

    errors: list[str] = []

    def handle_error(self, request, client_address):
        if not is_broken_pipe_error():
            self.errors.append(traceback.format_exc())
        super().handle_error(request, client_address)


class _ServerThread(LiveServerThread):
    server_class = _RecordingServer


@pytest.fixture(scope="session")
def console_server(django_db_setup, django_db_blocker):  # noqa: F811 - the shared fixture, used by name
    thread = _ServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    allowed = modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"})
    allowed.enable()
    yield f"http://127.0.0.1:{thread.port}"
    allowed.disable()
    thread.terminate()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven through Debian's chromedriver, headless. Fails (never skips) when absent."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (Path(path).is_file() and os.access(path, os.X_OK))]
    if missing:
        pytest.fail(f"not found: {', '.join(missing)}. {INSTALL_HINT}", pytrace=False)
    profile = tempfile.mkdtemp(prefix="flows-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
        "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--password-store=basic",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager is never asked to find or download anything.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
    driver.set_script_timeout(PAGE_LOAD_SECONDS)
    driver.set_window_size(*WINDOW)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def console(request, committed, console_server, chromium, settings):  # noqa: F811 - the shared fixture
    """The console in the browser for one journey, as production runs it: second factor required."""
    settings.FLOWS_STAFF_REQUIRE_MFA = True
    settings.FLOWS_CONSOLE_URL = console_server  # links the console prints (a new user's password link)
    # Plain HTTP on 127.0.0.1: cookies marked Secure would still be sent there, but say so plainly.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    server_log = ServerLog()
    logger = logging.getLogger("django.request")
    logger.addHandler(server_log)
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.get_log("browser")  # drop what an earlier journey left
    journey = request.node.name.removeprefix("test_")
    page = Console(chromium, console_server, journey, server_log, _RecordingServer.errors)
    try:
        yield page
        page.check("end of the journey")
    finally:
        # Leave no request in flight before the data is truncated.
        chromium.get("about:blank")
        chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
        logger.removeHandler(server_log)


@pytest.fixture
def platform_admin(console) -> Staff:
    """An enrolled Platform admin (every permission, every client): the journeys' staff member."""
    return staff_member("alex", "Platform admin")
