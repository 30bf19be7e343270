"""``dlt-report --html`` in a real browser: headless Chromium loads report.html from disk.

The page must load without console errors and show every plot (each ``<img>`` decoded, with a
natural width). Chromium comes from Debian's packages (``make browser``); without it the test
skips with that message. A control page with a broken image and a console error checks that
the probe sees both, so a pass means something.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlt_runner.core.metrics_file import write_metrics
from dlt_runner.sweeps.report import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: after the load event, writes how many images decoded.
_PROBE = (
    "<script>window.addEventListener('load', () => {"
    "const images = [...document.images];"
    "const decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;"
    "const marker = document.createElement('p'); marker.id = 'image-probe';"
    "marker.textContent = `decoded ${decoded} of ${images.length}`;"
    "document.body.appendChild(marker);});</script>"
)


def _browse(page: Path, tmp_path: Path, screenshot: bool = True) -> tuple[str, list[str], Path]:
    """Load ``page`` headless: (DOM after load, console lines, screenshot path)."""
    probed = page.with_name(page.stem + "_probed.html")
    probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1280,2400",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    image = tmp_path / f"{page.stem}.png"
    if screenshot:
        subprocess.run(
            [*flags, f"--screenshot={image}", page.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return dom.stdout, console, image


def _decoded(dom: str) -> tuple[int, int]:
    match = re.search(r'id="image-probe">decoded (\d+) of (\d+)<', dom)
    assert match, "the probe script did not run"
    return int(match[1]), int(match[2])


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _sweep(root: Path) -> Path:
    """A 2 x 2 sweep on disk (integrator x seed, plus a numeric axis) as dlt-run writes it."""
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("{}")
    number = 0
    for integrator, step in (("euler", 0.1), ("midpoint", 0.2)):
        for seed in (0, 1):
            job = root / str(number)
            (job / ".hydra").mkdir(parents=True)
            overrides = [f"model.integrator={integrator}", f"data.step_size={step}", f"seed={seed}"]
            OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
            metrics = {"analysis/err": step * (1 + seed), "val/loss": 0.5 / (1 + number)}
            write_metrics(job, {"status": "ok", "metrics": metrics})
            number += 1
    return root


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not installed: `make browser` (apt-get install chromium) to run this test",
)
def test_report_html_loads_in_chromium_without_errors_and_shows_every_plot(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    sweep = _sweep(tmp_path / "sweep")
    assert main([str(sweep), "--html"]) == 0
    page = sweep / "report.html"
    text = page.read_text()
    plots = sorted((sweep / "plots").glob("*.png"))
    assert len(plots) == 4  # 2 metrics x 2 swept keys
    assert text.count('<img src="data:image/png;base64,') == len(plots)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text), "must load nothing"
    assert "<script" not in text
    assert "mean ± std over seeds" in text and "model.integrator" in text

    dom, console, screenshot = _browse(page, tmp_path)
    assert console == [], console
    assert _decoded(dom) == (len(plots), len(plots))
    assert "analysis/err" in dom
    width, height = _png_size(screenshot)
    assert (width, height) == (1280, 2400) and screenshot.stat().st_size > 20_000

    # Control: the same probe sees a console error and an image that does not decode.
    broken = tmp_path / "broken.html"
    broken.write_text(
        text.replace(
            "</body>",
            '<img src="data:image/png;base64,AAAA"><script>console.error("broken page")</script>'
            "</body>",
        )
    )
    dom, console, _ = _browse(broken, tmp_path, screenshot=False)
    assert any("broken page" in line for line in console)
    assert _decoded(dom) == (len(plots), len(plots) + 1)
