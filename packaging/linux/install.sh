#!/bin/sh
# Per-user install of Impasto from this tarball: no root needed.
#   ./install.sh            install into ~/.local
#   PREFIX=/some/dir ./install.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)  # absolute: the links and entries must not depend on the cwd
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
libdir="$PREFIX/lib/impasto"
bindir="$PREFIX/bin"

# fill TEMPLATE COMMAND TARGET: TEMPLATE with @IMPASTO@ replaced by COMMAND (already quoted
# for the target's format), line by line, so that no character of a path is special here.
fill() {
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        *@IMPASTO@*) printf '%s%s%s\n' "${line%%@IMPASTO@*}" "$2" "${line#*@IMPASTO@}" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$1" >"$3"
}

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
# The program's path quoted for each file, so that a PREFIX or HOME with spaces works.
program="$bindir/impasto"
# Desktop Entry spec: in double quotes with \ " ` $ escaped, % doubled, then \ doubled again.
desktop=$(printf '%s' "$program" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g' -e 's/%/%%/g')
fill "$here/impasto.desktop" "\"$desktop\"" "$DATA_HOME/applications/impasto.desktop"
# systemd: % (specifiers) doubled. It refuses \ " ' in the name of the executable, so such a
# path runs as env's argument: in double quotes with \ and " escaped, $ (variables) doubled.
case $program in
*[\\\"\']*)
    unit="/usr/bin/env \"$(printf '%s' "$program" | sed -e 's/[\\"]/\\&/g' -e 's/%/%%/g' -e 's/\$/$$/g')\"" ;;
*) unit="\"$(printf '%s' "$program" | sed -e 's/%/%%/g')\"" ;;
esac
fill "$here/impasto.service" "$unit" "$CONFIG_HOME/systemd/user/impasto.service"
install -m 0755 "$here/uninstall.sh" "$libdir/uninstall.sh"
if command -v systemctl >/dev/null 2>&1; then
    # A running user manager keeps an older unit until it reloads.
    systemctl --user daemon-reload >/dev/null 2>&1 || true
fi

echo "Installed Impasto into $libdir (command: $bindir/impasto)."
echo "Start the tray from your applications menu, or run: impasto tray"
echo "Run the daemon as a service instead: systemctl --user enable --now impasto"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "Add $bindir to your PATH to use the impasto command." ;; esac
