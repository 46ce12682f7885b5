#!/usr/bin/env bash
# System packages the tests and the desktop app need beyond Python: Debian's chromium drives the
# real-browser UI tests (Playwright is told to use /usr/bin/chromium; its own browser download is
# never used). Idempotent: does nothing when apt-get is absent or every package is installed.
# One PACKAGES array: append to it, do not add a second install step.
set -euo pipefail

PACKAGES=(
  chromium
)

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get here; install these yourself if needed: ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "system-deps: installing ${missing[*]}" >&2
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
