#!/usr/bin/env bash
# Build mmcv==2.1.0 (full, with ops) from the PyPI sdist against the project's torch, once per machine.
# Why: no mmcv wheel exists for torch 2.14; mmseg/mmdet need mmcv.ops (ENVIRONMENT.md). The build takes
# ~20 min on 2 cores, so the wheel is cached under $WHEEL_CACHE and reused by every later install.
# The build runs in a small side venv that sees .venv's torch through a .pth file, so the pinned
# setuptools<81 it needs never touches .venv itself.
set -euo pipefail
VENV=${1:-.venv}
VENV=$(cd "$VENV" && pwd)
WHEEL_CACHE=${WHEEL_CACHE:-$HOME/.cache/vid2vid-wheels}
MAX_JOBS=${MAX_JOBS:-2}
mkdir -p "$WHEEL_CACHE"
if ls "$WHEEL_CACHE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  echo "mmcv wheel cached: $(ls "$WHEEL_CACHE"/mmcv-2.1.0-*.whl)"; exit 0
fi
WORK=$(mktemp -d "$WHEEL_CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PY=$("$VENV/bin/python" -c 'import sys; print(sys.executable)')
BASE=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)')/bin/python3
"$BASE" -m venv "$WORK/bvenv"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
BSITE=$("$WORK/bvenv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$WORK/bvenv/bin/pip" install --quiet 'setuptools<81' wheel ninja
echo "$SITE" > "$BSITE/project-venv.pth"   # appended after bvenv's own site: its setuptools wins
"$WORK/bvenv/bin/python" -c 'import torch, setuptools; print("torch", torch.__version__, "setuptools", setuptools.__version__)'
cd "$WORK"
"$WORK/bvenv/bin/pip" download --quiet --no-deps --no-binary :all: mmcv==2.1.0 -d .
tar xzf mmcv-2.1.0.tar.gz
sed -i -e 's/-std=c++17/-std=c++20/g' -e 's/-std=c++14/-std=c++20/g' mmcv-2.1.0/setup.py
MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$MAX_JOBS \
  "$WORK/bvenv/bin/pip" wheel --no-build-isolation --no-deps ./mmcv-2.1.0 -w "$WORK/out"
mv "$WORK"/out/mmcv-2.1.0-*.whl "$WHEEL_CACHE/"
ls -la "$WHEEL_CACHE"
