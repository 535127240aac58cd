"""A live server on a free loopback port and a headless Chromium driven through Selenium.

Screenshots go to `test-artifacts/screens/` (git-ignored) so a person can look at every screen.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from yishi.core.config import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--window-size=1280,1000", "--lang=zh-CN",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """The running app: its base URL and settings."""

    url: str
    settings: Settings


@pytest.fixture
def live(yishi_env: Settings) -> Iterator[Live]:
    """The real app served by uvicorn on 127.0.0.1 in a thread, for one test."""
    import uvicorn

    from yishi.api import create_app

    port = _free_port()
    app = create_app(yishi_env, run_worker=True, warm_knowledge=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):  # wait for start-up (not an assertion about speed)
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield Live(url=f"http://127.0.0.1:{port}", settings=yishi_env)
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


# Words in Latin letters a person may see: file formats, opinion-group letters (A 组) and the
# citation marks the summary explains (s12 = 观点 12, m3 = 留言 3).
ALLOWED_LATIN = {"PDF", "Word", "Markdown", "CSV", "UTF", "A", "B", "C", "D", "E", "s", "m"}
CITE = re.compile(r"^[sm]\d+$")
RAW_ID = re.compile(r"\b(?:web|wechat_mp|wecom|wecom_bot|cli|user|roster|admin):[\w-]+")
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def problems_on_screen(text: str) -> list[str]:
    """Raw ids, raw keys and untranslated English words in the visible text of a page."""
    found = [f"raw id {m}" for m in RAW_ID.findall(text)]
    for word in LATIN.findall(text):
        if word in ALLOWED_LATIN or CITE.match(word):
            continue
        found.append(f"raw key {word}" if "_" in word else f"English word {word}")
    return found
