"""Tier 5: every paper's CPU-scale claim holds (`pytest -m claim`; `make test` runs it too).

Each test runs `dlt-claims <paper>` exactly as a user would: the claim grid through Hydra
multirun, then the paper's verdict. W&B is disabled here to save time; tier 4 covers it.
"""

from __future__ import annotations

import pytest
from conftest import cli

from dlt_runner.sweeps.claims import available_claims


@pytest.mark.claim
@pytest.mark.parametrize("paper", available_claims())
def test_claim_holds(tmp_path, paper):
    result = cli("dlt-claims", paper, cwd=tmp_path, env={"WANDB_MODE": "disabled"}, timeout=1200)
    (table,) = (tmp_path / "outputs" / "claims").rglob("claims.md")
    text = table.read_text()
    assert result.returncode == 0, f"{paper} claim fails:\n{text}\n{result.stderr[-3000:]}"
    assert "**fails**" not in text and "holds" in text
