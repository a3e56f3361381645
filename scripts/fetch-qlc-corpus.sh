#!/usr/bin/env bash
# Fetches the QLC+ fixture corpus (Debian's `qlcplus-data`: ~1,358 .qxf definitions and the
# Sample.qxw workspace) into a cache folder inside the target dir, without installing QLC+.
#
#   scripts/fetch-qlc-corpus.sh            # into target/qlc-corpus (or $ROCKONTROL_QLC_CORPUS)
#
# Idempotent: does nothing when the corpus is already there. Tests of rockontrol-show find it
# through ROCKONTROL_QLC_CORPUS or the default path, and fail (not skip) without it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROCKONTROL_QLC_CORPUS:-$ROOT/target/qlc-corpus}"
MARKER="$DEST/.complete"

if [ -f "$MARKER" ]; then
  exit 0
fi

command -v apt-get >/dev/null || { echo "fetch-qlc-corpus: needs apt-get (Debian/Ubuntu)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "fetch-qlc-corpus: needs dpkg" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# apt-get download drops privileges to _apt; a world-writable folder keeps it from warning.
chmod 0777 "$WORK"

download() { (cd "$WORK" && apt-get download -q qlcplus-data >&2); }
if ! download; then
  echo "fetch-qlc-corpus: download failed; refreshing the package lists once" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  $SUDO apt-get update -q >&2
  download
fi

DEB="$(ls "$WORK"/qlcplus-data_*.deb)"
rm -rf "$DEST"
mkdir -p "$DEST"
dpkg -x "$DEB" "$DEST"
basename "$DEB" > "$DEST/PACKAGE"
touch "$MARKER"
count="$(find "$DEST" -name '*.qxf' | wc -l)"
echo "fetch-qlc-corpus: $count fixture definitions in $DEST" >&2
