"""What a worker remembers of each workflow between tasks: its group size and its batch size.

Group size (images per thread hop) is explained in `processing.next_group_size`. Batch size
(images per workflow run, so per model call) is fixed when the worker is given `--batch-size`;
otherwise, on a cpu worker, it is chosen per workflow from how long its images take:

- one image per run to begin with: `make bench` measured it fastest for real detectors on two
  cores with one ORT thread per slot (the text detector by 4 to 33 %, a 320-pixel one by 16 to
  35 %), since each slot's thread is busy either way and batching adds letterbox padding;
- FAST_BATCH images per run once a task of the workflow took under BATCH_WHEN_UNDER_S an image:
  a run's fixed cost (the executor, a model call, decoding its outputs: about 0.15 ms of Python)
  is then a large part of each image, and at 8 a run a near-free model cost the worker about a
  third less CPU time per image;
- back to one when a task at FAST_BATCH took over UNBATCH_WHEN_OVER_S an image (twice the
  threshold, so a workflow near it does not flip at every task: batching only lowers the
  per-image time, so a workflow batched for being fast stays under the threshold unless its
  images grew).
"""

from __future__ import annotations

from dataclasses import dataclass

FAST_BATCH = 8
BATCH_WHEN_UNDER_S = 0.002
UNBATCH_WHEN_OVER_S = 2 * BATCH_WHEN_UNDER_S
MAX_WORKFLOWS_KEPT = 256
"""Workflows a worker remembers (a few ints each; a worker meeting more starts over)."""


@dataclass(frozen=True)
class Pace:
    batch_size: int
    """Images per workflow run."""
    group_size: int = 0
    """Images per thread hop the last task ended on; 0: one batch."""


class WorkflowPaces:
    """Per workflow digest, the pace its next task starts at."""

    def __init__(self, batch_size: int, adaptive: bool) -> None:
        self.batch_size = batch_size
        self.adaptive = adaptive
        self._paces: dict[str, Pace] = {}

    def get(self, digest: str) -> Pace:
        return self._paces.get(digest) or Pace(self.batch_size)

    def learn(self, digest: str, group_size: int, per_image_s: float | None) -> Pace:
        """Note how a task of the workflow ended: its last group size, and its workflow seconds
        per image (None: no image ran). Returns the pace of the next task."""
        batch = self.get(digest).batch_size
        if self.adaptive and per_image_s is not None:
            if batch == 1 and per_image_s < BATCH_WHEN_UNDER_S:
                batch = FAST_BATCH
            elif batch > 1 and per_image_s > UNBATCH_WHEN_OVER_S:
                batch = 1
        if digest not in self._paces and len(self._paces) >= MAX_WORKFLOWS_KEPT:
            self._paces.clear()
        pace = Pace(batch, group_size)
        self._paces[digest] = pace
        return pace
