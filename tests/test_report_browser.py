"""The report in a real browser: headless Chromium renders every section and image, with no console message."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_report import MODELS, PER_MODEL, SECTIONS, report_index  # noqa: F401 - the shared run + report fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium on PATH: `apt-get update && apt-get install -y chromium` "
                             "(Debian/Ubuntu), or any Chromium/Chrome installed as `chromium`")

WIDTH, HEIGHT = 1280, 2000

# Appended to a copy of the report (which itself has no script): after load, record which sections
# have a rendered box, which images failed to decode and whether the page overflows horizontally.
PROBE = """<script>
window.addEventListener("load", () => {
  const ids = %s;
  const missing = ids.filter(id => { const e = document.getElementById(id); return !e || e.offsetHeight === 0; });
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const wide = [...document.querySelectorAll("section")].filter(s => s.scrollWidth > s.clientWidth + 1).map(s => s.id);
  document.body.setAttribute("data-probe", JSON.stringify({
    missing, broken, wide, images: document.images.length,
    overflow: document.documentElement.scrollWidth > window.innerWidth}));
});
</script>"""


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium once, logging console messages to stderr."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", f"--window-size={WIDTH},{HEIGHT}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    """Page console output (``...:CONSOLE...``) and uncaught errors in Chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_screenshot_renders_the_report(report_index, tmp_path):  # noqa: F811
    shot = tmp_path / "report.png"
    proc = chromium([f"--screenshot={shot}", report_index.as_uri()], tmp_path / "profile")
    assert shot.is_file(), proc.stderr[-3000:]
    assert console_messages(proc.stderr) == []
    with Image.open(shot) as img:
        assert img.size == (WIDTH, HEIGHT)
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.std() > 20  # not a blank page
    colours = len(np.unique(rgb.reshape(-1, 3)[::7], axis=0))
    assert colours > 200, colours  # the plots rendered (a text-only page has a few dozen colours)


def test_every_section_and_image_renders_without_console_messages(report_index, tmp_path):  # noqa: F811
    ids = SECTIONS + [f"{part}-{m}" for m in MODELS for part in PER_MODEL]
    page = report_index.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE % json.dumps(ids) + "</body>"), encoding="utf-8")
    proc = chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "profile")
    match = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert match, f"the page did not finish loading:\n{proc.stderr[-3000:]}"
    result = json.loads(html.unescape(match.group(1)))
    assert result["missing"] == []
    assert result["broken"] == []
    assert result["images"] == page.count("<img ")
    assert result["wide"] == [] and result["overflow"] is False
    assert console_messages(proc.stderr) == []
