#!/usr/bin/env bash
# The demo: start the local stack, run the text-reading workflow (detect text, crop, read it,
# draw boxes and labels) over real photographs,
# export the results to demo-output/, and print a summary. Run it again to rerun the job.
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=.venv/bin/sluice
STATE=${SLUICE_HOME:-$PWD/.sluice}
if [ "$(id -u)" = 0 ] && [ -z "${SLUICE_HOME:-}" ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$PWD"; then
  # Postgres runs as an unprivileged user and must reach its data folder.
  STATE=/tmp/sluice-demo-state
fi
export SLUICE_HOME=$STATE
echo "== local stack in $STATE"
$SLUICE up
.venv/bin/python scripts/demo_images.py demo-output/photographs
$SLUICE workflows create --workflow-id text-reading --file examples/workflows/text-reading.json
$SLUICE data-staging create-batch-of-images --images-dir demo-output/photographs --batch-id demo-photographs
JOB=demo-$(date +%Y%m%d-%H%M%S)
$SLUICE batch-processing process-images-with-workflow --workflow-id text-reading \
  --batch-id demo-photographs --job-id "$JOB" --save-image-outputs --wait
$SLUICE batch-processing show-job-details --job-id "$JOB"
$SLUICE data-staging export-batch --batch-id "$JOB-export" --target-dir "demo-output/$JOB"
.venv/bin/python scripts/demo_summary.py "demo-output/$JOB"
echo
echo "The stack is still up ('$SLUICE status'); stop it with '$SLUICE down'."
