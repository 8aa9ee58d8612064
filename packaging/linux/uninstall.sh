#!/bin/sh
# Remove a per-user Impasto install. Models, outputs and settings stay unless --purge is given.
# Installed as <PREFIX>/lib/impasto/uninstall.sh, it removes that PREFIX's install.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case $here in
*/lib/impasto) PREFIX=${PREFIX:-$(dirname "$(dirname "$here")")} ;;
*) PREFIX=${PREFIX:-$HOME/.local} ;;
esac
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
STATE_HOME=${XDG_STATE_HOME:-$HOME/.local/state}
CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
purge=no
[ "${1:-}" = "--purge" ] && purge=yes

if command -v systemctl >/dev/null 2>&1; then
    systemctl --user disable --now impasto.service >/dev/null 2>&1 || true
fi
# The command only if it is this install's link: not an `impasto` that pip put there.
ours=$(readlink -f "$PREFIX/lib/impasto/impasto" 2>/dev/null || true)
if [ -n "$ours" ] && [ "$(readlink -f "$PREFIX/bin/impasto" 2>/dev/null || true)" = "$ours" ]; then
    rm -f "$PREFIX/bin/impasto"
fi
rm -f "$DATA_HOME/applications/impasto.desktop" \
    "$DATA_HOME/icons/hicolor/256x256/apps/impasto.png" \
    "$CONFIG_HOME/systemd/user/impasto.service" "$CONFIG_HOME/autostart/impasto-tray.desktop"
rm -rf "$PREFIX/lib/impasto"
if command -v systemctl >/dev/null 2>&1; then
    systemctl --user daemon-reload >/dev/null 2>&1 || true
fi
if [ "$purge" = yes ]; then
    rm -rf "$DATA_HOME/impasto" "$CONFIG_HOME/impasto" "$STATE_HOME/impasto" "$CACHE_HOME/impasto"
    echo "Removed Impasto, its settings, models, outputs, logs and cache."
else
    echo "Removed Impasto. Your models and outputs are still in $DATA_HOME/impasto (--purge removes them)."
fi
