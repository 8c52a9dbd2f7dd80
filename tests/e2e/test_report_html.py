"""report.html in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium): it loads
with no console error and no network request, shows the table and the plots, and its table sorts."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from tests import onnx_models
from tests.conftest import skip_or_fail
from tests.e2e.test_bench_cli import edgebench

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real bench of five files with accuracy on real data, whose names collide in the plots."""
    folder = tmp_path_factory.mktemp("html")
    big = onnx_models.mlp(folder / "fp32.onnx", hidden=512)
    small = onnx_models.mlp(folder / "prune-ch:0.5.onnx", hidden=64, seed=1)
    shutil.copyfile(big, folder / "prune-l1:0.9.onnx")  # same speed and accuracy as fp32: labels collide
    shutil.copyfile(small, folder / "prune-ch:0.5@iter=3.onnx")
    odd = onnx_models.mlp(folder / "a<b>&'c.onnx", hidden=128, seed=2)  # a name HTML must escape
    data = onnx_models.digits_npz(folder / "digits.npz")
    models = [big, small, folder / "prune-l1:0.9.onnx", folder / "prune-ch:0.5@iter=3.onnx", odd]
    out = folder / "out"
    proc = edgebench("bench", *models, "--data", data, "--processes", "3", "--min-time", "0.1", "--out", out, "-q",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr
    proc = edgebench("report", out)
    assert proc.returncode == 0, proc.stderr
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        skip_or_fail("chromium and chromium-driver are not installed (scripts/install_test_host.sh installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_report_is_one_file_with_everything_inside(report):
    text = report.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert text.count("data:image/png;base64,") >= 3
    assert "a&lt;b&gt;&amp;&#x27;c" in text and "a<b>&'c" not in text  # the odd name, escaped everywhere


def test_it_loads_without_errors_or_network_and_shows_table_and_plots(report, browser, tmp_path):
    browser.get(report.as_uri())
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    urls = [json.loads(e["message"])["message"]["params"].get("request", {}).get("url", "")
            for e in browser.get_log("performance")
            if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    images = browser.find_elements("css selector", "img")
    assert len(images) >= 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
               for i in images)
    assert browser.find_elements("css selector", "table.sortable")
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(height, 6000))
    shot = tmp_path / "report.png"
    shot.write_bytes(base64.b64decode(browser.get_screenshot_as_base64()))
    assert shot.stat().st_size > 50_000
    keep = os.environ.get("EDGEBENCH_SCREENSHOT")
    if keep:  # to look at it: EDGEBENCH_SCREENSHOT=/tmp/report.png pytest tests/e2e/test_report_html.py
        shutil.copyfile(shot, keep)


def test_a_click_on_a_column_header_sorts_the_rows_numerically_and_a_second_reverses(report, browser):
    browser.get(report.as_uri())
    table = browser.find_elements("css selector", "table.sortable")[0]
    headers = [h.text for h in table.find_elements("css selector", "thead th")]
    column = headers.index("items/s")

    def values() -> list[float | None]:
        cells = [r.find_elements("css selector", "td")[column].text for r in table.find_elements("css selector",
                                                                                                "tbody tr")]
        return [float(c.replace(",", "")) if c not in ("", "–", "-") else None for c in cells]

    header = table.find_elements("css selector", "thead th")[column]
    header.click()
    up = values()
    assert len(up) == 5 and up == sorted(up) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert values() == sorted(up, reverse=True)
