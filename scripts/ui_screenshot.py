"""Screenshots of the Prefect UI pages a user reviews: each latest artifact of a dataset, via headless Chromium.

Proves that tables, plots and frame grids render in a real browser (Debian's `chromium` package).
Run: .venv/bin/python scripts/ui_screenshot.py --dataset street --out shots/
(with PREFECT_API_URL pointing at a server started with PREFECT_SERVER_UI_API_URL set, e.g. `make ui`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from prefect.client.orchestration import get_client

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000", "--hide-scrollbars"]


async def artifact_pages(prefix: str) -> list[tuple[str, str]]:
    async with get_client() as client:
        artifacts = await client.read_latest_artifacts()
    return sorted((a.key, str(a.latest_id)) for a in artifacts if a.key and prefix in a.key)


def screenshot(browser: str, url: str, out: Path, size: str = "1400,1100") -> Path:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                        f"--screenshot={out}", url], check=True, capture_output=True, timeout=120)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="street")
    parser.add_argument("--out", default="shots")
    args = parser.parse_args()
    api = os.environ.get("PREFECT_API_URL")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not api or not browser:
        print("needs PREFECT_API_URL and Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    ui = api.removesuffix("/api")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = asyncio.run(artifact_pages(args.dataset))
    if not pages:
        print(f"no artifacts with {args.dataset!r} in their key at {api}", file=sys.stderr)
        return 1
    for key, artifact_id in pages:
        path = screenshot(browser, f"{ui}/v2/artifacts/artifact/{artifact_id}", out / f"{key}.png")
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
