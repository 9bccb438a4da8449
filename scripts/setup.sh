#!/usr/bin/env bash
# Set up a fresh Debian machine for dossier: the system libraries WeasyPrint loads, then .venv.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
for library in libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
               libharfbuzz-subset.so.0:libharfbuzz-subset0 libfontconfig.so.1:libfontconfig1; do
    ldconfig -p | grep -q "${library%%:*}" || missing+=("${library##*:}")
done
# the preview's browser test drives Debian's Chromium (with Playwright, not Playwright's browsers)
if [ "${1:-}" = test ] && ! command -v chromium >/dev/null; then missing+=(chromium); fi
# a system font the PDFs must never use, so that the tests can tell (fonts/fonts.conf)
if [ "${1:-}" = test ] && [ ! -d /usr/share/fonts/truetype/dejavu ]; then
    missing+=(fonts-dejavu-core)
fi
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${1:+[$1]}"
