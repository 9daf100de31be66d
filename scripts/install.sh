#!/usr/bin/env bash
# Set-up on a fresh Debian machine, idempotent: espeak-ng from Debian's packages, then a
# virtual environment at .venv with the pinned dependencies (torch/torchaudio 2.11) and the
# harness installed in editable mode. `--dev` adds the test and lint tools.
# A second call with unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
if [ "${1:-}" = "--dev" ]; then extras="[dev]"; fi

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
if [ -n "$extras" ] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
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

stamp=".venv/.install-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)${extras}"
have=""
if [ -f "$stamp" ]; then have="$(cat "$stamp")"; fi
# a --dev install also satisfies a plain one
if [ "$have" != "$want" ] && [ "$have" != "${want}[dev]" ]; then
  echo "installing Python dependencies into .venv (first time: a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  echo "$want" > "$stamp"
fi
