#!/usr/bin/env bash
# Installs what the status page's browser test drives: Debian's Chromium and the npm package
# playwright-core (its own browser download cannot work offline; the test points it at
# /usr/bin/chromium). Idempotent: returns at once when both are present.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo/.tools/browser"
version="1.65.1"

if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if [[ -f "$prefix/node_modules/playwright-core/package.json" ]] &&
  grep -q "\"version\": \"$version\"" "$prefix/node_modules/playwright-core/package.json"; then
  echo "playwright-core $version already in $prefix"
else
  mkdir -p "$prefix"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix "$prefix" "playwright-core@$version"
fi
chromium --version
