"""The Sluice worker: pulls tasks for its machine type, runs their workflow, writes results.

Importing this package sets OpenCV's own pixel limit, OPENCV_IO_MAX_IMAGE_PIXELS, to the worker's
image limit. OpenCV reads that variable once, when cv2 is first imported, and every entry point
(`python -m sluice_worker`, the `sluice-worker` script) imports this package before any module that
imports cv2. So a decode whose size the worker could not read from the header still fails before
allocating more pixels than the limit.
"""

import os

MAX_MEGAPIXELS = 50
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_MEGAPIXELS * 1_000_000)
