#!/bin/sh
# Remove a per-user Impasto install. Models and outputs stay unless --purge is given.
set -eu
PREFIX=${PREFIX:-$HOME/.local}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
purge=no
[ "${1:-}" = "--purge" ] && purge=yes

if command -v systemctl >/dev/null 2>&1; then
    systemctl --user disable --now impasto.service >/dev/null 2>&1 || true
fi
rm -f "$PREFIX/bin/impasto" "$DATA_HOME/applications/impasto.desktop" \
    "$DATA_HOME/icons/hicolor/256x256/apps/impasto.png" \
    "$CONFIG_HOME/systemd/user/impasto.service" "$CONFIG_HOME/autostart/impasto-tray.desktop"
rm -rf "$PREFIX/lib/impasto"
if [ "$purge" = yes ]; then
    rm -rf "$DATA_HOME/impasto" "$CONFIG_HOME/impasto"
    echo "Removed Impasto, its settings, models and outputs."
else
    echo "Removed Impasto. Your models and outputs are still in $DATA_HOME/impasto (--purge removes them)."
fi
