"""benchmarks/model.py --official-code: a folder that is not a checkout of NVIDIA/vid2vid is refused by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model.py"), "--official-code", str(folder)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_missing_or_foreign_official_code_folder_is_one_error_line(tmp_path: Path) -> None:
    missing = _run(tmp_path / "nowhere")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: --official-code")
    assert "no such folder" in missing.stderr
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "networks.py").write_text("class SomethingElse: pass\n")
    foreign = _run(tmp_path)
    assert foreign.returncode == 2
    assert "not a checkout of NVIDIA/vid2vid" in foreign.stderr and "models/networks.py" in foreign.stderr
