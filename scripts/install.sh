#!/usr/bin/env bash
# Set-up on a fresh Debian machine, idempotent: espeak-ng from Debian's packages, then a
# virtual environment at .venv with the exact versions of requirements.lock (torch/torchaudio
# 2.11.0 and everything they and the harness pull in) and the harness itself, editable and
# with --no-deps, so every install gets the same versions.
#   scripts/install.sh                  runtime dependencies (requirements.lock)
#   scripts/install.sh --dev            also the test/lint/build tools (requirements-dev.lock)
#   scripts/install.sh --refresh-lock   resolve pyproject.toml afresh (newest versions its
#                                       bounds allow), install that, rewrite both lock files
# A second call with unchanged pyproject.toml and lock files does nothing (a --dev install
# also satisfies a plain one).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
refresh=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --refresh-lock) refresh=1 ;;
    *) echo "usage: scripts/install.sh [--dev] [--refresh-lock]" >&2; exit 2 ;;
  esac
done

if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "installing espeak-ng (Debian package)" >&2
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  fi
fi

# --dev: Debian's chromium and chromedriver for the leaderboard's browser test (selenium
# drives the system browser; nothing downloads a browser of its own)
if [ "$dev" = "1" ] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  echo "installing chromium and chromium-driver (Debian packages)" >&2
  sudo_=""
  if [ "$(id -u)" != "0" ]; then sudo_="sudo"; fi
  $sudo_ apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)" >&2
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip)

if [ "$refresh" = "1" ]; then
  echo "resolving pyproject.toml afresh and rewriting requirements.lock / requirements-dev.lock" >&2
  "${pip[@]}" install -q --upgrade pip
  "${pip[@]}" install -q --upgrade --upgrade-strategy eager -e ".[dev]"
  .venv/bin/python -m benchmark.lockfile
  dev=1
fi

for lock in requirements.lock requirements-dev.lock; do
  if [ ! -f "$lock" ]; then
    echo "$lock is missing; restore it from git or write it with scripts/install.sh --refresh-lock" >&2
    exit 1
  fi
done

stamp=".venv/.install-stamp"
plain="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
with_dev="$(cat pyproject.toml requirements.lock requirements-dev.lock | sha256sum | cut -d' ' -f1)[dev]"
if [ "$dev" = "1" ]; then want="$with_dev"; else want="$plain"; fi
have=""
if [ -f "$stamp" ]; then have="$(cat "$stamp")"; fi
# a --dev install also satisfies a plain one
if [ "$have" != "$want" ] && [ "$have" != "$with_dev" ]; then
  # a fresh .venv takes about 6 GB (the CUDA build of torch) and pip unpacks wheels in TMPDIR:
  # say so at once instead of failing half-way with pip's "No space left on device"
  need_gib=8
  if .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" 2>/dev/null; then
    need_gib=2
  fi
  for dir in .venv "${TMPDIR:-/tmp}"; do
    read -r free_kib mount < <(df -Pk "$dir" | awk 'NR == 2 {print $4, $6}')
    if [ "$free_kib" -lt $((need_gib * 1024 * 1024)) ]; then
      echo "scripts/install.sh: only $((free_kib / 1024 / 1024)) GiB free for $dir ($mount); installing the locked dependencies needs about $need_gib GiB: free some space (old clones' .venv folders, ~/.cache/pip) and rerun" >&2
      exit 1
    fi
  done
  echo "installing the locked Python dependencies into .venv (first time: a few minutes)" >&2
  "${pip[@]}" install -q --upgrade pip
  locks=(-r requirements.lock)
  extras=""
  if [ "$dev" = "1" ]; then locks+=(-r requirements-dev.lock); extras="[dev]"; fi
  "${pip[@]}" install -q "${locks[@]}"
  "${pip[@]}" install -q --no-deps -e ".${extras}"
  echo "$want" > "$stamp"
fi
