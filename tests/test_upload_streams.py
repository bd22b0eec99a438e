"""How the CLI and the dashboard cut files into UploadFiles streams and chunks."""

from __future__ import annotations

from sluice.upload_streams import (
    BYTES_PER_STREAM,
    CHUNK_BYTES,
    FILES_PER_STREAM,
    MIN_FILES_PER_STREAM,
    byte_pieces,
    file_chunks,
    files_per_stream,
    stream_groups,
)


def test_streams_hold_at_most_so_many_files_and_bytes() -> None:
    many = [("f", 1)] * (FILES_PER_STREAM + 1)
    assert [len(g) for g in stream_groups(many, lambda f: f[1])] == [FILES_PER_STREAM, 1]
    big = [("a", BYTES_PER_STREAM - 10), ("b", 20), ("c", 5)]
    assert [[n for n, _ in g] for g in stream_groups(big, lambda f: f[1])] == [["a"], ["b", "c"]]
    assert list(stream_groups([], lambda f: 0)) == []


def test_a_file_is_chunked_with_last_on_its_final_chunk_only() -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 256) + b"tail"
    chunks = list(file_chunks("b", "x.jpg", byte_pieces(data)))
    assert [len(c.data) for c in chunks] == [CHUNK_BYTES, 4]
    assert [c.last for c in chunks] == [False, True]
    assert b"".join(c.data for c in chunks) == data
    assert {(c.batch_id, c.file_name) for c in chunks} == {("b", "x.jpg")}
    exact = list(file_chunks("b", "y.jpg", byte_pieces(b"z" * CHUNK_BYTES)))
    assert [(len(c.data), c.last) for c in exact] == [(CHUNK_BYTES, True)]
    empty = list(file_chunks("b", "empty.jpg", byte_pieces(b"")))
    assert [(c.data, c.last) for c in empty] == [(b"", True)]


def test_a_folder_is_spread_over_the_parallel_streams() -> None:
    assert files_per_stream(1, 4) == MIN_FILES_PER_STREAM  # a few files: one stream
    assert files_per_stream(1000, 4) == 250
    assert files_per_stream(50_000, 4) == FILES_PER_STREAM
    files = [("f", 1)] * 1000
    groups = list(stream_groups(files, lambda f: f[1], files_per_stream(len(files), 4)))
    assert [len(g) for g in groups] == [250] * 4
    assert [len(g) for g in stream_groups(files, lambda f: f[1], 10 * FILES_PER_STREAM)] == [500, 500]
