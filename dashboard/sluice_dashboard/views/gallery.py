"""A job's gallery: the annotated images and videos its processing stage saved.

The processing stage's output batch holds `images/<image>.<output>.jpg`, `results/...` and
`videos/<video>.<output>.mp4`. Each kind is listed by its name prefix, paged on the server, so a
page of the gallery reads a dozen names and previews, never the batch whole. A video's bytes are
fetched only when its Play button is pressed, and only one is kept in the session.
"""

from __future__ import annotations

import streamlit as st

from sluice.cli.output import human_bytes
from sluice.v1 import scheduler_pb2, staging_pb2
from sluice_dashboard import export_zip, job_figures, session, ui
from sluice_dashboard.client import STAGING, ServiceError, Services
from sluice_dashboard.previews import previews

PAGE_SIZE = 12
COLUMNS = 4
SIDE = 320
IMAGES, VIDEOS = "images/", "videos/"
_PLAYING = "_job_video"


def gallery_entry(name: str) -> tuple[str, str] | None:
    """('photo-000.jpg', 'annotated') for 'images/photo-000.jpg.annotated.jpg' (and the same for
    'videos/clip.mp4.annotated.mp4'); None for an object that is not an annotated image or video."""
    for prefix, suffix in ((IMAGES, ".jpg"), (VIDEOS, ".mp4")):
        if name.startswith(prefix) and name.endswith(suffix):
            stem = name[len(prefix) : -len(suffix)]
            source, _, output = stem.rpartition(".")
            return (source, output) if source else (stem, "")
    return None


def _page(svc: Services, batch_id: str, prefix: str, token: str) -> tuple[list[staging_pb2.BatchObject], str]:
    request = staging_pb2.ListBatchContentRequest(
        batch_id=batch_id, page_size=PAGE_SIZE, page_token=token, all_parts=True, name_prefix=prefix
    )
    found = svc.call(STAGING, "ListBatchContent", request)
    return list(found.objects), found.next_page_token


def _captions(objects: list[staging_pb2.BatchObject]) -> list[str]:
    """The source image's name, and the output's when the job saved several."""
    entries = [gallery_entry(o.name) or (o.name, "") for o in objects]
    several = len({output for _, output in entries}) > 1
    return [f"{source} ({output})" if several else source for source, output in entries]


def render(svc: Services, job: scheduler_pb2.Job) -> None:
    stage = job_figures.processing_stage(job)
    if not job.save_image_outputs:
        st.caption("This job did not save image outputs; start one with “Save image outputs” for a gallery.")
        return
    if stage is None or stage.state in (scheduler_pb2.STAGE_STATE_PENDING, scheduler_pb2.STAGE_STATE_RUNNING):
        st.caption("The gallery appears when the processing stage has ended.")
        return
    batch_id = stage.output_batch_id
    images, videos = ui.Pager(f"job_gallery_{job.job_id}"), ui.Pager(f"job_videos_{job.job_id}")
    try:
        shown, following = _page(svc, batch_id, IMAGES, images.token)
        clips, clips_following = _page(svc, batch_id, VIDEOS, videos.token)
        workspace = str(st.session_state.get(session.WORKSPACE, ""))
        names = tuple(o.name for o in shown)
        found = previews(svc, workspace, batch_id, names, SIDE) if names else []
    except ServiceError as error:
        if error.code.name == "NOT_FOUND":  # an output batch is registered when its stage ends
            st.caption("The processing stage has no output batch.")
        else:
            ui.show_error(error)
        return
    if not shown and not clips and images.index == 0 and videos.index == 0:
        st.caption("No annotated images or videos in this job's output.")
        return
    if shown or images.index:
        _images(shown, found)
        images.controls(following)
    if clips or videos.index:
        st.subheader("Videos")
        for obj, caption in zip(clips, _captions(clips), strict=True):
            st.text(caption)
            _video(svc, batch_id, obj)
        videos.controls(clips_following)


def _images(shown: list[staging_pb2.BatchObject], found: list[tuple[str, bytes, str]]) -> None:
    by_name = {name: (jpeg, why) for name, jpeg, why in found}
    columns = st.columns(COLUMNS)
    for index, (obj, caption) in enumerate(zip(shown, _captions(shown), strict=True)):
        jpeg, why = by_name.get(obj.name, (b"", "no preview"))
        with columns[index % COLUMNS]:
            if jpeg:
                st.image(jpeg, caption=caption)
            else:
                st.text(f"{caption}: {why or 'no preview'}")


def _video(svc: Services, batch_id: str, obj: staging_pb2.BatchObject) -> None:
    """A 'Play' button; the video's bytes are fetched only when it is pressed (one video kept)."""
    if st.button(f"Play ({human_bytes(obj.size_bytes)})", key=f"job_video_{obj.name}"):
        try:
            data = export_zip.object_bytes(svc, batch_id, obj.name, obj.size_bytes)
            st.session_state[_PLAYING] = (batch_id, obj.name, data)
        except export_zip.TooLarge as refusal:
            st.error(ui.plain(str(refusal)))
        except ServiceError as error:
            ui.show_error(error)
    held = st.session_state.get(_PLAYING)
    if isinstance(held, tuple) and held[:2] == (batch_id, obj.name):
        st.video(held[2], format="video/mp4")
