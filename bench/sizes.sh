#!/usr/bin/env bash
# The size figures README quotes, measured from a fresh release build: the
# binary as built (Cargo.toml's release profile strips it) and stripped again
# with strip(1) to be sure; the .deb and what it installs (with cargo-deb;
# without it, the sum of the package's assets); the static musl build when
# that target is installed. Prints bytes, MiB and MB, the date and the
# toolchain, so a figure can be quoted with how it was measured.
# Changes nothing outside target/. Usage: bench/sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

line() { # LABEL BYTES
    printf '  %-34s %9d bytes  %5.2f MiB  %5.2f MB\n' "$1" "$2" \
        "$(echo "$2 / 1048576" | bc -l)" "$(echo "$2 / 1000000" | bc -l)"
}
size() { stat -c %s "$1"; }
stripped() { # FILE: size after strip(1), the file itself untouched
    cp "$1" "$WORK/s" && strip "$WORK/s" && size "$WORK/s"
}

host=$(rustc -vV | sed -n 's/^host: //p')
echo "dscproute $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d), $(rustc --version), $host"
cargo build --release --locked --quiet
BIN=target/release/dscproute
echo "release build ($host):"
line "as built" "$(size "$BIN")"
line "after strip(1)" "$(stripped "$BIN")"

if cargo deb --version >/dev/null 2>&1; then
    deb=$(cargo deb --no-build --quiet 2>/dev/null | tail -n1)
    line ".deb ($(basename "$deb"))" "$(size "$deb")"
    # dpkg's own figure, in KiB.
    line ".deb Installed-Size" "$(($(dpkg-deb -f "$deb" Installed-Size) * 1024))"
else
    # Without cargo-deb: the assets of [package.metadata.deb] in Cargo.toml,
    # the binary stripped as cargo-deb ships it (dpkg's Installed-Size
    # rounds each file up to 1 KiB, so it reads a little higher).
    installed=$(python3 - "$(stripped "$BIN")" <<'PY'
import glob, os, sys, tomllib
assets = tomllib.load(open("Cargo.toml", "rb"))["package"]["metadata"]["deb"]["assets"]
total = 0
for src, _dest, _mode in assets:
    for f in glob.glob(src):
        total += int(sys.argv[1]) if f == "target/release/dscproute" else os.path.getsize(f)
print(total)
PY
)
    line ".deb contents (sum of the assets)" "$installed"
    echo "  .deb: skipped (cargo install cargo-deb)"
fi

musl=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
    cargo build --release --locked --quiet --target "$musl"
    line "static musl build, stripped" "$(stripped "target/$musl/release/dscproute")"
else
    echo "  musl: skipped (rustup target add $musl)"
fi
