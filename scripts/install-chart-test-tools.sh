#!/usr/bin/env bash
# Installs what tests/chart/ calls, idempotently (returns at once when all is there):
#   - helm 4 and kubectl 1.35 into .tools/bin (scripts/install-test-tools.sh)
#   - promtool (Debian package `prometheus`) for the alert rules and their unit tests
#   - kubernetes-validate (PyPI) in a virtualenv under .tools/venv, linked as
#     .tools/bin/kubernetes-validate; it ships the Kubernetes JSON schemas, so validation for
#     1.35 (`kubernetes-validate --strict -k 1.35.0 FILE`) runs offline.
# FORCE=1 reinstalls kubernetes-validate.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.tools/bin"
venv="$repo/.tools/venv"
validator_version="1.37.0"   # knows Kubernetes schemas up to 1.37; the tests use 1.35

"$repo/scripts/install-test-tools.sh" >/dev/null

apt_updated=0
apt_install() {
  if ((apt_updated == 0)); then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

command -v promtool >/dev/null || apt_install prometheus

validator="$bin/kubernetes-validate"
if [[ "${FORCE:-0}" != "1" && -x "$validator" ]] \
  && [[ "$("$validator" --version 2>/dev/null)" == "$validator_version" ]]; then
  echo "kubernetes-validate $validator_version already in $bin (FORCE=1 to reinstall)"
  exit 0
fi

command -v python3 >/dev/null || apt_install python3
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "kubernetes-validate==$validator_version"
mkdir -p "$bin"
ln -sf "$venv/bin/kubernetes-validate" "$validator"
"$validator" --version
