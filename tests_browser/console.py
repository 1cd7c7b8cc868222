"""The staff console as a person sees it: a headless Chromium driven through Selenium, one step at a time.

Every step of a journey is a `with console.step("…"):` block. When it ends — passed or failed — the
page is saved as `.browser-screenshots/<journey>/<nn>-<step>.png` and the step fails on anything a
person would have seen go wrong: a server error (an HTTP 5xx, or any 4xx, logged by Django while the
step ran; an error page), or an error in Chromium's JavaScript console (script errors, resources that
failed to load, Content-Security-Policy violations). Waits are explicit (`WebDriverWait`), never sleeps.

The helpers name things the way the admin's HTML does (field names, button labels, message lists), so a
changed page is adapted in one place.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parent.parent / ".browser-screenshots"
WAIT_SECONDS = 15
# Text of the error pages a person could land on: the console's own (templates/500.html, 400, 403, 403_csrf,
# 404), Django's defaults (should a handler be missing) and the browser's.
ERROR_PAGE_TEXT = (
    "Something went wrong on our side",
    "Go back, correct the value and try again.",
    "You may not open this page",
    "This form could not be accepted",
    "There is no such page",
    "Server Error (500)",
    "Internal Server Error",
    "Bad Request (400)",
    "This site can\u2019t be reached",
)


class ServerLog(logging.Handler):
    """Collects what Django logs about failed requests (`django.request`: 4xx warnings, 5xx errors)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append(f"{record.levelname}: {text}")

    def drain(self) -> list[str]:
        records, self.records = self.records, []
        return records


class Console:
    def __init__(self, driver: WebDriver, base_url: str, journey: str, server_log: ServerLog, server_errors: list):
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.journey = journey
        self.server_log = server_log
        self.server_errors = server_errors  # tracebacks the server thread printed outside Django's handler
        self.steps = 0
        self.folder = SCREENSHOTS / journey
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    # --- steps ---------------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str):
        """One step of the journey: its screenshot, then the checks every step passes."""
        self.steps += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.steps:02d}-{slug}.png"
        try:
            yield self
        except BaseException:
            self._screenshot(path.with_name(path.stem + "-FAILED.png"))
            raise
        self._screenshot(path)
        self.check(name)

    def check(self, name: str = "") -> None:
        """Fail on server errors, error pages and JavaScript console errors since the last check."""
        problems = [f"server: {line}" for line in self.server_log.drain()]
        problems += [f"server thread: {trace}" for trace in self.server_errors]
        self.server_errors.clear()
        problems += [f"console: {entry['message']}" for entry in self.console_errors()]
        body = self._body_text()
        problems += [f"error page: {text!r} on {self.driver.current_url}" for text in ERROR_PAGE_TEXT if text in body]
        assert not problems, f"step {name!r} of journey {self.journey!r}:\n  " + "\n  ".join(problems)

    def console_errors(self) -> list[dict]:
        """Chromium's console entries of level SEVERE (script errors, failed loads, CSP violations)."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def _screenshot(self, path: Path) -> None:
        # A failed screenshot must not hide the step's own failure.
        with suppress(Exception):
            self.driver.save_screenshot(str(path))

    # --- navigation ----------------------------------------------------------------------------

    def wait(self, condition, timeout: float = WAIT_SECONDS, message: str = "", ignored=()):
        return WebDriverWait(self.driver, timeout, ignored_exceptions=ignored).until(condition, message)

    def _ready(self) -> None:
        # While a page is being replaced, chromedriver may answer a script with an error
        # ("Cannot find context with specified id"); that is "not ready yet", not a failure.
        self.wait(
            lambda d: d.execute_script("return document.readyState") == "complete",
            message="page load",
            ignored=(WebDriverException,),
        )

    def _navigating(self, action) -> None:
        """Do `action` (a click, a submit) and wait until the next page has replaced this one and loaded.

        The old page is recognised by a mark set on its window, not by a stale element: asking
        chromedriver about an element of a page being torn down can fail with an inspector error.
        """
        mark = secrets.token_hex(8)
        self.driver.execute_script("window.__flowsPage = arguments[0]", mark)
        action()
        self.wait(
            lambda d: d.execute_script("return window.__flowsPage || null") != mark,
            message="the next page",
            ignored=(WebDriverException,),
        )
        self._ready()

    def open(self, path: str) -> None:
        self.driver.get(path if path.startswith("http") else self.base_url + path)
        self._ready()

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def expect_path(self, pattern: str) -> re.Match:
        """The current path matches `pattern` (a regular expression, anchored at both ends)."""
        try:
            self.wait(lambda d: re.fullmatch(pattern, urlsplit(d.current_url).path), timeout=5)
        except TimeoutException:
            raise AssertionError(f"expected a page at {pattern}, got {self.driver.current_url}") from None
        return re.fullmatch(pattern, self.path)

    def click_link(self, text: str, *, within: str = "body") -> None:
        """The first visible link whose text (as written, whatever CSS does to its case) contains `text`."""
        xpath = f".//a[contains(normalize-space(.), {_xpath_literal(text)})]"
        link = self.wait(
            lambda d: next(
                (a for a in d.find_element(By.CSS_SELECTOR, within).find_elements(By.XPATH, xpath) if a.is_displayed()),
                None,
            ),
            message=f"link {text!r}",
        )
        self._navigating(link.click)

    def open_model(self, model: str) -> None:
        """From the console's index: the model's row (`clients.client` → the Clients list)."""
        app_label, model_name = model.split(".")
        self.open("/admin/")
        row = self.driver.find_element(By.CSS_SELECTOR, f".app-{app_label} .model-{model_name} th a")
        self._navigating(row.click)

    def click_button(self, label: str) -> None:
        """A submit button (`<input type=submit value=…>` or `<button>`) by its label; waits for the next page."""
        button = self.wait(
            lambda d: next((b for b in self._buttons(d) if self._label(b) == label and b.is_displayed()), None),
            message=f"button {label!r}",
        )
        self._navigating(button.click)

    @staticmethod
    def _buttons(driver) -> list[WebElement]:
        return driver.find_elements(By.CSS_SELECTOR, "input[type=submit], button")

    @staticmethod
    def _label(button: WebElement) -> str:
        # textContent, not the rendered text: CSS may upper-case a label ("LOG OUT").
        return (
            button.get_attribute("value") if button.tag_name == "input" else button.get_attribute("textContent")
        ).strip()

    def press(self, label: str) -> WebElement:
        """A button that acts on the page itself (a *Copy* button): clicked where it is, no navigation."""
        button = self.wait(
            lambda d: next((b for b in self._buttons(d) if self._label(b) == label and b.is_displayed()), None),
            message=f"button {label!r}",
        )
        button.click()
        return button

    def show(self, css: str) -> WebElement:
        """Scroll the element into view, so that the step's screenshot shows it; returns it."""
        element = self.driver.find_element(By.CSS_SELECTOR, css)
        self.driver.execute_script("arguments[0].scrollIntoView()", element)
        return element

    def open_client(self, code: str) -> None:
        """The client's page (the hub), from the clients list."""
        self.open("/admin/clients/client/")
        self.click_link(code, within="#result_list")
        self.expect_path("/admin/clients/client/[0-9a-f-]{36}/change/")

    def save(self) -> None:
        """The admin change form's main "Save" button."""
        self._navigating(self.driver.find_element(By.CSS_SELECTOR, "input[name=_save]").click)

    # --- forms ---------------------------------------------------------------------------------

    def field(self, name: str) -> WebElement:
        return self.wait(ec.visibility_of_element_located((By.NAME, name)), message=f"field {name!r}")

    def fill(self, name: str, value: str) -> None:
        element = self.field(name)
        element.clear()
        element.send_keys(value)

    def value(self, name: str) -> str:
        return self.field(name).get_attribute("value")

    def choose(self, name: str, label: str) -> None:
        Select(self.field(name)).select_by_visible_text(label)

    def choose_autocomplete(self, name: str, search: str, label: str) -> None:
        """The admin's autocomplete (select2) widget: open it, type, pick the option the server returns."""
        field_row = self.driver.find_element(By.CSS_SELECTOR, f".field-{name}")
        field_row.find_element(By.CSS_SELECTOR, ".select2-selection").click()
        box = self.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field")))
        box.send_keys(search)
        option = self.wait(
            lambda d: next(
                (o for o in d.find_elements(By.CSS_SELECTOR, ".select2-results__option") if o.text == label), None
            ),
            message=f"autocomplete option {label!r}",
        )
        option.click()
        self.wait(lambda d: Select(d.find_element(By.NAME, name)).first_selected_option.text == label)

    def filter_by_autocomplete(self, title: str, search: str, choice: str) -> None:
        """A search-as-you-type filter of a change list's sidebar (the audit list's client and actor): type
        `search`, pick the option starting with `choice`; the list reloads filtered by it."""
        filter_box = self.wait(
            ec.presence_of_element_located((By.CSS_SELECTOR, f'details[data-filter-title="{title}"]')),
            message=f"filter {title!r}",
        )
        filter_box.find_element(By.CSS_SELECTOR, ".select2-selection").click()
        box = self.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field")))
        box.send_keys(search)
        option = self.wait(
            lambda d: next(
                (o for o in d.find_elements(By.CSS_SELECTOR, ".select2-results__option") if o.text.startswith(choice)),
                None,
            ),
            message=f"autocomplete option {choice!r}",
        )
        self._navigating(option.click)

    def filter_by(self, name: str, value: str) -> None:
        """A text filter of a change list's sidebar (typed, then Enter)."""
        element = self.field(name)
        element.clear()
        element.send_keys(value)
        self._navigating(lambda: element.send_keys(Keys.ENTER))

    def run_action(self, action_label: str, rows: list[str]) -> None:
        """On a change list: tick the rows whose text contains each of `rows`, choose the action, Go."""
        for text in rows:
            row = self.row(text)
            box = row.find_element(By.CSS_SELECTOR, "input.action-select")
            if not box.is_selected():
                box.click()
        self.choose("action", action_label)
        self._navigating(self.driver.find_element(By.CSS_SELECTOR, "button[name=index]").click)

    def filter_by_dates(self, title: str, start: str, end: str) -> None:
        """A from/to date filter of a change list's sidebar (the audit list's), as the browser's own date
        fields fill it (YYYY-MM-DD, whatever the locale shows), then Apply."""
        filter_box = self.wait(
            ec.presence_of_element_located((By.CSS_SELECTOR, f'details[data-filter-title="{title}"]')),
            message=f"filter {title!r}",
        )
        start_field, end_field = filter_box.find_elements(By.CSS_SELECTOR, "input[type=date]")
        self.driver.execute_script("arguments[0].value = arguments[2]; arguments[1].value = arguments[3]",
                                   start_field, end_field, start, end)  # fmt: skip
        self._navigating(filter_box.find_element(By.CSS_SELECTOR, "input[type=submit]").click)

    def download_by_action(self, action_label: str, folder: Path, name: str) -> Path:
        """On a change list: tick every row of the page, choose the action, Go, and wait for the file `name`
        the answer downloads into `folder` (the page stays where it is)."""
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
        toggle = self.driver.find_element(By.ID, "action-toggle")
        if not toggle.is_selected():
            toggle.click()
        self.choose("action", action_label)
        self.driver.find_element(By.CSS_SELECTOR, "button[name=index]").click()
        path = folder / name
        # Chromium writes `<name>.crdownload` and renames it when the download is complete.
        self.wait(lambda d: path.is_file() and not list(folder.glob("*.crdownload")), message=f"download {name}")
        return path

    # --- the clipboard -----------------------------------------------------------------------

    def allow_clipboard(self) -> None:
        """What a person grants once: the console may read and write the clipboard (headless has no prompt)."""
        self.driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": self.base_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )

    def clipboard(self) -> str:
        """The clipboard's text, as the page reads it (`navigator.clipboard.readText`)."""
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (error) => done('clipboard refused: ' + error));"
        )

    # --- reading -------------------------------------------------------------------------------

    def _body_text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # no page (about:blank, a download)
            return ""

    @property
    def text(self) -> str:
        return self._body_text()

    @property
    def title(self) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, "#content h1, #content h2").text

    def expect_text(self, *fragments: str) -> None:
        body = self.text
        missing = [fragment for fragment in fragments if fragment not in body]
        assert not missing, f"not on the page ({self.driver.current_url}): {missing}"

    def messages(self) -> list[str]:
        return [m.text for m in self.driver.find_elements(By.CSS_SELECTOR, "ul.messagelist li")]

    def expect_message(self, fragment: str) -> None:
        found = self.messages()
        assert any(fragment in message for message in found), f"no message with {fragment!r}; messages: {found}"

    def field_errors(self, name: str) -> str:
        """The errors shown against a field of an admin change form (`.field-<name>`) or a custom form."""
        rows = self.driver.find_elements(By.CSS_SELECTOR, f".field-{name} .errorlist")
        if not rows:
            element = self.driver.find_element(By.NAME, name)
            row = "ancestor::div[contains(@class, 'form-row')][1]"
            rows = element.find_elements(By.XPATH, f"{row}//ul[@class='errorlist']")
        return " ".join(row.text for row in rows)

    def expect_field_error(self, name: str, fragment: str) -> None:
        errors = self.field_errors(name)
        assert fragment in errors, f"field {name!r}: expected an error with {fragment!r}, got {errors!r}"

    def row(self, text: str) -> WebElement:
        """The change list's row that contains `text`."""
        rows = [r for r in self.driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr") if text in r.text]
        assert len(rows) == 1, f"expected one row with {text!r}, found {len(rows)}"
        return rows[0]

    def readonly(self, name: str) -> str:
        """A read-only field's value on an admin change page."""
        return self.driver.find_element(By.CSS_SELECTOR, f".field-{name} .readonly").text


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"
