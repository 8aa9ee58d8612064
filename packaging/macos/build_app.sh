#!/bin/sh
# Wrap the Nuitka binary into Impasto.app, then a .pkg (pkgbuild) and a .dmg (hdiutil).
# macOS only (pkgbuild and hdiutil do not exist elsewhere); run by release.yml on macos-latest:
#   packaging/macos/build_app.sh packaging/out/impasto 0.1.0 packaging/out
set -eu
binary=$1
version=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
app="$out/Impasto.app"

rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp "$binary" "$app/Contents/MacOS/impasto"
chmod 0755 "$app/Contents/MacOS/impasto"
# The launcher the Finder runs: the tray (which starts or attaches to the daemon).
cat > "$app/Contents/MacOS/Impasto" <<'LAUNCHER'
#!/bin/sh
exec "$(dirname "$0")/impasto" tray
LAUNCHER
chmod 0755 "$app/Contents/MacOS/Impasto"
sed "s/@VERSION@/$version/g" "$here/Info.plist" > "$app/Contents/Info.plist"
cp "$here/org.impasto.daemon.plist" "$app/Contents/Resources/"

pkgbuild --root "$app" --install-location "/Applications/Impasto.app" \
    --identifier org.impasto.app --version "$version" "$out/impasto-$version-macos.pkg"
staging="$out/dmg"
rm -rf "$staging"
mkdir -p "$staging"
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
hdiutil create -volname Impasto -srcfolder "$staging" -ov -format UDZO \
    "$out/impasto-$version-macos.dmg"
rm -rf "$staging"
