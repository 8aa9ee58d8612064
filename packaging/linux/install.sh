#!/bin/sh
# Per-user install of Impasto from this tarball: no root needed.
#   ./install.sh            install into ~/.local
#   PREFIX=/some/dir ./install.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
libdir="$PREFIX/lib/impasto"
bindir="$PREFIX/bin"

mkdir -p "$libdir" "$bindir" "$DATA_HOME/applications" "$DATA_HOME/icons/hicolor/256x256/apps" \
    "$CONFIG_HOME/systemd/user"
rm -rf "$libdir/impasto" "$libdir/impasto.dist"  # an earlier install of either kind
if [ -d "$here/impasto.dist" ]; then
    # Nuitka's standalone folder: the executable beside its libraries, nothing to unpack.
    cp -R "$here/impasto.dist" "$libdir/impasto.dist"
    # Its executable is impasto.bin: the folder's impasto/ holds the package's data.
    ln -sfn "$libdir/impasto.dist/impasto.bin" "$libdir/impasto"
else
    install -m 0755 "$here/impasto" "$libdir/impasto"
fi
ln -sf "$libdir/impasto" "$bindir/impasto"
install -m 0644 "$here/impasto.png" "$DATA_HOME/icons/hicolor/256x256/apps/impasto.png"
sed "s|@BINDIR@|$bindir|g" "$here/impasto.desktop" > "$DATA_HOME/applications/impasto.desktop"
sed "s|@BINDIR@|$bindir|g" "$here/impasto.service" > "$CONFIG_HOME/systemd/user/impasto.service"
install -m 0755 "$here/uninstall.sh" "$libdir/uninstall.sh"

echo "Installed Impasto into $libdir (command: $bindir/impasto)."
echo "Start the tray from your applications menu, or run: impasto tray"
echo "Run the daemon as a service instead: systemctl --user enable --now impasto"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "Add $bindir to your PATH to use the impasto command." ;; esac
