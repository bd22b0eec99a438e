#!/usr/bin/env bash
# The demo: start the local stack, run the text-reading workflow (detect text, crop, read it,
# draw boxes and labels) over real photographs, then a video job (detect and track shapes through a
# generated clip, into an annotated MP4), export the results to demo-output/, and print summaries.
# Run it again to rerun the jobs.
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
$SLUICE events --job-id "$JOB"
$SLUICE data-staging export-batch --batch-id "$JOB-export" --target-dir "demo-output/$JOB"
.venv/bin/python scripts/demo_summary.py "demo-output/$JOB"

echo
echo "== a video job: track coloured squares through a 20 s clip, cut into 10 s segments"
.venv/bin/python scripts/demo_video.py prepare demo-output/video
$SLUICE models register --model-id demo/shapes --file demo-output/video/shapes.onnx --task object-detection \
  --class-names red,green,blue --input-size 320x320 --resize letterbox --channel-order rgb
$SLUICE workflows create --workflow-id track-shapes --file examples/workflows/track-shapes.json
$SLUICE data-staging create-batch-of-videos --videos-dir demo-output/video/clips --batch-id demo-videos
$SLUICE batch-processing process-videos-with-workflow --workflow-id track-shapes --batch-id demo-videos \
  --job-id "$JOB-video" --max-video-fps 5 --video-segment-seconds 10 --save-image-outputs --wait
$SLUICE data-staging export-batch --batch-id "$JOB-video-export" --target-dir "demo-output/$JOB-video"
.venv/bin/python scripts/demo_video.py summary "demo-output/$JOB-video"
echo
echo "== what the jobs cost (machine time by machine type, credits)"
$SLUICE usage --by job
echo
echo "The stack is still up ('$SLUICE status'); stop it with '$SLUICE down'."
DASHBOARD=$($SLUICE status | awk '$1 == "dashboard" && $2 == "up" {print $3}')
if [ -n "$DASHBOARD" ]; then
  echo "The dashboard shows these jobs at $DASHBOARD (sign in with the api_key in $STATE/credentials.json)."
fi
