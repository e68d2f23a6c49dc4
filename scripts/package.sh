#!/usr/bin/env bash
# Builds the release packages into dist/ (or $DIST):
#   dist/netsentinel_<version>_<arch>.deb, .rpm and .tar.gz
# each holding /usr/bin/netsentinel, /etc/netsentinel/netsentinel.yaml (a
# conffile: internal/config/example.yaml), the hardened systemd unit
# deploy/systemd/netsentinel.service and, when the CLI provides them, shell
# completions and the man page. nfpm is the pinned version below, run with
# `go run` (nothing to install).
# Environment: VERSION (default: the binary's built-in version), GOARCH
# (default: the Go toolchain's), DIST (output directory).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

arch=${GOARCH:-$(go env GOARCH)}
dist=${DIST:-$root/dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

ldflags="-s -w"
if [[ -n ${VERSION:-} ]]; then ldflags+=" -X main.version=$VERSION"; fi
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$stage/netsentinel" ./cmd/netsentinel
if [[ -z ${VERSION:-} ]]; then
  VERSION=$("$stage/netsentinel" version | awk '{print $2}')
fi
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || { echo "package.sh: VERSION $VERSION must start with a digit" >&2; exit 2; }

cp internal/config/example.yaml "$stage/netsentinel.yaml"
cp deploy/systemd/netsentinel.service "$stage/"
cp deploy/packaging/scripts/*.sh "$stage/"
sed -e "s|\${STAGE}|$stage|g" -e "s|\${NFPM_ARCH}|$arch|g" -e "s|\${NFPM_VERSION}|$VERSION|g" \
  deploy/packaging/nfpm.yaml >"$stage/nfpm.yaml"

# Completions and the man page come from the CLI itself (cobra), when it has them.
extras=()
add() { extras+=("$1|$2"); printf '  - src: %s\n    dst: %s\n    file_info: {mode: 0644}\n' "$stage/$1" "$2" >>"$stage/nfpm.yaml"; }
host_bin="$stage/netsentinel"
if [[ $arch != "$(go env GOHOSTARCH)" ]]; then
  host_bin="$stage/netsentinel-host"
  CGO_ENABLED=0 go build -trimpath -o "$host_bin" ./cmd/netsentinel
fi
if "$host_bin" completion bash >"$stage/netsentinel.bash" 2>/dev/null; then
  "$host_bin" completion zsh >"$stage/_netsentinel"
  "$host_bin" completion fish >"$stage/netsentinel.fish"
  add netsentinel.bash /usr/share/bash-completion/completions/netsentinel
  add _netsentinel /usr/share/zsh/vendor-completions/_netsentinel
  add netsentinel.fish /usr/share/fish/vendor_completions.d/netsentinel.fish
fi
if "$host_bin" man "$stage/man" >/dev/null 2>&1; then
  for page in "$stage"/man/*.1; do
    gzip -9n "$page"
    add "man/$(basename "$page").gz" "/usr/share/man/man1/$(basename "$page").gz"
  done
fi

base="netsentinel_${VERSION}_${arch}"
for fmt in deb rpm; do
  go run "$NFPM" package --config "$stage/nfpm.yaml" --packager "$fmt" --target "$dist/$base.$fmt" >&2
done

# The tarball: the same files under one directory, for hosts without dpkg/rpm.
tdir="$stage/tar/$base"
mkdir -p "$tdir"
cp "$stage/netsentinel" "$stage/netsentinel.yaml" "$stage/netsentinel.service" README.md "$tdir/"
for e in "${extras[@]}"; do cp "$stage/${e%%|*}" "$tdir/"; done # completions, man pages
tar -C "$stage/tar" --owner=0 --group=0 --numeric-owner -czf "$dist/$base.tar.gz" "$base"

ls -1 "$dist/$base".{deb,rpm,tar.gz}
