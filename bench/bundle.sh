# Sourced by the benchmarks: the real-world bundle (~2,500 files from Debian's libjs-mathjax,
# libjs-jquery and libjs-bootstrap4 under {id}/www/) zipped as $WORK/bundle.zip.
make_bundle() {
  local id=$1
  [ -f "$WORK/bundle.zip" ] && return
  (cd "$WORK" && apt-get download libjs-mathjax libjs-jquery libjs-bootstrap4 >/dev/null 2>&1)
  mkdir -p "$WORK/x" "$WORK/$id/www"
  for deb in "$WORK"/*.deb; do dpkg -x "$deb" "$WORK/x"; done
  cp -rL "$WORK/x/usr/share/javascript/." "$WORK/$id/www/"
  # Courier refuses names that URL encoding would change; leave those few files out.
  find "$WORK/$id" -depth -name '*[^A-Za-z0-9._~-]*' -exec rm -rf {} +
  (cd "$WORK" && zip -qr -X bundle.zip "$id")
}
