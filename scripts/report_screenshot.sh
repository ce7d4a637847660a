#!/usr/bin/env bash
# The first screen of a reproduction's report, as a headless Chromium shows it (network blocked):
#   bash scripts/report_screenshot.sh runs/demo docs/report.png
# Needs Chromium (Debian: apt-get install chromium).
set -euo pipefail
dir=${1:?usage: report_screenshot.sh RUN_DIR OUT.png}
out=${2:?usage: report_screenshot.sh RUN_DIR OUT.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no Chromium found (Debian: apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1000 \
    "--host-resolver-rules=MAP * ~NOTFOUND" --proxy-server=127.0.0.1:9 --virtual-time-budget=10000 \
    --user-data-dir="$profile" --screenshot="$(realpath "$out")" "file://$(realpath "$dir")/report.html" 2>/dev/null
echo "wrote $out"
