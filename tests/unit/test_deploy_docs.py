"""docs/deploy.md shows the files under deploy/ as they are, and the systemd unit is one systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHOWN = ("tether-relay.service", "Caddyfile", "nginx.conf", "Dockerfile", "compose.yaml")


@pytest.mark.parametrize("name", SHOWN)
def test_the_doc_shows_each_deploy_file_whole(name: str) -> None:
    """Each file under deploy/ appears verbatim in docs/deploy.md, so the two cannot drift apart."""
    assert (DEPLOY / name).read_text() in (ROOT / "docs" / "deploy.md").read_text()


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` knows every directive of the unit (the binary path swapped for one that exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "tether-relay.service"
    unit.write_text((DEPLOY / "tether-relay.service").read_text().replace("/opt/tether/bin/tether", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in result.stderr.splitlines() if str(unit) in line or "tether-relay" in line]
    assert [] == complaints
