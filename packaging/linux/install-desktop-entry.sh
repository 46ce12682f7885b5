#!/usr/bin/env bash
# Install the CloudOps menu entry and icons for the current user (XDG paths), optionally at login too.
# Usage: packaging/linux/install-desktop-entry.sh [--autostart] [--exec /path/to/dist/cloudops/cloudops]
# Idempotent: running it again overwrites the same files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
icons="$here/../icons"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
autostart=0
exec_path="cloudops"
while [ $# -gt 0 ]; do
  case "$1" in
    --autostart) autostart=1 ;;
    --exec) exec_path="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for size in 16 24 32 48 64 128 256 512; do
  install -Dm644 "$icons/cloudops-$size.png" "$data/icons/hicolor/${size}x${size}/apps/cloudops.png"
done
entry="$data/applications/cloudops.desktop"
install -Dm644 "$here/cloudops.desktop" "$entry"
sed -i "s|^Exec=.*|Exec=$exec_path app|; s|^TryExec=.*|TryExec=$exec_path|" "$entry"
if [ "$autostart" -eq 1 ]; then
  install -Dm644 "$entry" "${XDG_CONFIG_HOME:-$HOME/.config}/autostart/cloudops.desktop"
fi
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "installed $entry"
