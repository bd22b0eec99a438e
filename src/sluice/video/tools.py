"""Where the ffmpeg executable is, and whether it can decode on a CUDA device."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

_CUDA_CHECK_TIMEOUT_S = 20.0


def ffmpeg_exe() -> str:
    """The ffmpeg executable: `SLUICE_FFMPEG` if set, else imageio-ffmpeg's, else `ffmpeg` on PATH.

    Raises RuntimeError when none is found.
    """
    configured = os.environ.get("SLUICE_FFMPEG")
    if configured:
        return configured
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # the package is missing or has no binary for this platform
        pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise RuntimeError(
        "no ffmpeg executable found: set SLUICE_FFMPEG to its path, install the imageio-ffmpeg "
        "package, or put ffmpeg on PATH"
    )


@functools.cache
def cuda_decoding_available() -> bool:
    """Whether ffmpeg can open a CUDA device (checked once per process, at most 20 s)."""
    try:
        exe = ffmpeg_exe()
    except RuntimeError:
        return False
    command = [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-init_hw_device",
        "cuda=gpu",
        "-f",
        "lavfi",
        "-i",
        "nullsrc=s=64x64",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_CUDA_CHECK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0
