#!/usr/bin/env bash
# System packages the tests and the desktop app need beyond Python: Debian's chromium drives the
# real-browser UI tests (Playwright is told to use /usr/bin/chromium; its own browser download is
# never used). Idempotent: does nothing when apt-get is absent or every package is installed.
# One PACKAGES array: append to it, do not add a second install step.
set -euo pipefail

PACKAGES=(
  chromium
  # the desktop app's tests under Xvfb (tests/test_desktop.py): a display, a tray to dock into, the tools
  # that click and take screenshots, a session bus for pystray's GTK backend
  xvfb xdotool x11-utils imagemagick trayer dbus-x11
  # the windows' web engine on Linux: the system's WebKitGTK through pywebview's GTK backend (the default,
  # and a runtime dependency of the Linux bundle), with GTK 3, which the tray needs too
  gir1.2-gtk-3.0 gir1.2-webkit2-4.1 libgirepository1.0-dev libcairo2-dev pkg-config
  # what PyQt6's web engine (pywebview's Qt route, the self-contained opt-in) loads at run time
  libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libnss3 libasound2 libegl1 libgl1
  # a throwaway PostgreSQL cluster for the team deployment's metadata DB test
  postgresql
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
