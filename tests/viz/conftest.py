"""Headless Chromium for the report's browser tests (tests/viz/test_browser.py, test_report.py).

Chromium is Debian's ``chromium`` package (``apt-get install chromium``), driven through
Playwright's Python package (``pip install playwright``) with ``executable_path``: Playwright's
own browser download (``playwright install``) is never used. Every launch is headless with
:data:`CHROMIUM_ARGS` and a fresh ``--user-data-dir``. Tests that need a browser skip, saying
what to install, only when Chromium or Playwright cannot be found.
"""

import shutil

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--disable-extensions",
                 "--disable-default-apps", "--mute-audio"]
"""Flags of every Chromium the tests start (no sandbox: containers run as root)."""

NO_CHROMIUM = ("no Chromium executable (chromium, chromium-browser, google-chrome) on PATH: "
               "apt-get install chromium")
NO_PLAYWRIGHT = ("the Python package playwright is not installed: pip install playwright (the "
                 "browser itself comes from apt-get install chromium; never `playwright "
                 "install`)")


def chromium_path() -> str | None:
  """The Chromium (or Chrome) executable on PATH, or ``None``."""
  for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
    path = shutil.which(name)
    if path:
      return path
  return None


@pytest.fixture(scope="session")
def chromium() -> str:
  """The Chromium executable; skips the test when there is none."""
  path = chromium_path()
  if path is None:
    pytest.skip(NO_CHROMIUM)
  return path


@pytest.fixture(scope="session")
def chromium_cli(chromium) -> tuple[str, list[str]]:
  """``(executable, flags)`` for driving ``chromium --headless`` directly (no Playwright)."""
  return chromium, list(CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def browser(chromium, tmp_path_factory):
  """One headless Chromium (a Playwright persistent context on a fresh profile) per session."""
  try:
    from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
  except ImportError:
    pytest.skip(NO_PLAYWRIGHT)
  profile = tmp_path_factory.mktemp("chromium-profile")
  with sync_playwright() as p:
    # A persistent context is how Playwright takes --user-data-dir (a fresh, empty one here).
    context = p.chromium.launch_persistent_context(
        str(profile), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900}, timeout=60_000)
    yield context
    context.close()


def open_page(browser, html: str, path):
  """``html`` written to ``path`` and opened from disk, with what the page did recorded.

  ``page.events`` holds the console messages ``(type, text)``, uncaught errors, dialogs
  (``alert``, ``confirm``...; each is dismissed) and every request URL.
  """
  path.write_text(html, encoding="utf-8")
  pg = browser.new_page()
  pg.events = {"console": [], "errors": [], "dialogs": [], "requests": []}
  pg.on("console", lambda m: pg.events["console"].append((m.type, m.text)))
  pg.on("pageerror", lambda e: pg.events["errors"].append(str(e)))
  pg.on("dialog", lambda d: (pg.events["dialogs"].append(d.message), d.dismiss()))
  pg.on("request", lambda r: pg.events["requests"].append(r.url))
  pg.goto(path.as_uri())
  pg.wait_for_load_state("load")
  return pg


def assert_page_clean(pg) -> None:
  """No dialog, no uncaught error, no console error or warning, no request off the disk."""
  assert pg.events["dialogs"] == [], pg.events["dialogs"]
  assert pg.events["errors"] == [], pg.events["errors"]
  assert [m for m in pg.events["console"] if m[0] in ("error", "warning")] == [], \
      pg.events["console"]
  assert all(u.startswith(("file:", "data:")) for u in pg.events["requests"]), \
      pg.events["requests"]
  assert pg.locator("img[src='x']").count() == 0


def heatmap_pixels(png: bytes) -> tuple[int, int]:
  """``(red, blue)``: pixels of a screenshot in the heatmap's red and blue hues."""
  import io  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)
  red = int(((rgb[..., 0] - rgb[..., 2] > 60) & (rgb[..., 0] - rgb[..., 1] > 60)).sum())
  blue = int(((rgb[..., 2] - rgb[..., 0] > 60) & (rgb[..., 2] - rgb[..., 1] > 20)).sum())
  return red, blue


class Web:
  """The helpers above, handed to tests by the :func:`web` fixture."""

  def __init__(self, browser):
    self.browser = browser

  def open(self, html: str, path):
    """:func:`open_page`; the page's ``assert_clean()`` runs :func:`assert_page_clean` on it."""
    pg = open_page(self.browser, html, path)
    pg.assert_clean = lambda: assert_page_clean(pg)
    return pg

  assert_clean = staticmethod(assert_page_clean)
  heatmap_pixels = staticmethod(heatmap_pixels)


@pytest.fixture(scope="session")
def web(browser) -> Web:
  """A started Chromium and the helpers to open a page and check it."""
  return Web(browser)
