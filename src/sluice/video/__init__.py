"""The video library: probing, frame indexes, sampling, decoding and encoding with FFmpeg.

Modules (each imported on its own; importing this package loads none of them):

- `tools`: where the ffmpeg executable is, and whether it can decode on a CUDA device.
- `probe`: `probe_video` reads a file's facts (`VideoInfo`) and its frame index, or refuses it
  with a reason (`NotAVideo`).
- `frame_index`: `FrameIndex`, every frame's presentation timestamp, and its JSON sidecar format.
- `sampling`: which frames are processed at a maximum rate, and how a long video is cut into
  segments (with warm-up frames) whose selections add up to the whole video's.
- `decode`: `read_frames` streams BGR frames of a time window from an ffmpeg process.
- `encode`: `Mp4Writer` writes H.264 MP4 files, `concat_mp4` joins them, `mp4_facts` checks them.
- `outputs`, `seams`, `synthetic`: what video jobs write, joining tracker ids across segments, and
  synthetic test clips (see their docstrings).
"""
