import hashlib
import io
import logging
from pathlib import Path

import pytest

from cerana.domain.errors import InvalidInput, NotFound
from cerana.store.attachments import CHUNK_SIZE, AttachmentStore, StoredFile

SAMPLE = b"MZ\x90\x00 not really a PE file"


def stored_paths(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_saving_the_same_bytes_twice_stores_one_file(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)

    first = store.save(io.BytesIO(SAMPLE))
    second = store.save(io.BytesIO(SAMPLE))

    assert first == second
    assert stored_paths(tmp_path) == [
        tmp_path / first.sha256[:2] / first.sha256[2:4] / first.sha256
    ]


def test_stored_file_digests_match_hashlib(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)

    stored = store.save_bytes(SAMPLE)

    assert stored == StoredFile(
        sha256=hashlib.sha256(SAMPLE).hexdigest(),
        sha1=hashlib.sha1(SAMPLE).hexdigest(),
        md5=hashlib.md5(SAMPLE).hexdigest(),
        size=len(SAMPLE),
    )
    assert stored.hashes == [stored.sha256, stored.sha1, stored.md5]


def test_content_spanning_several_chunks_reads_back_whole(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    content = bytes(range(256)) * (CHUNK_SIZE // 256 * 2 + 3)

    stored = store.save(io.BytesIO(content))

    with store.open(stored.sha256) as stored_file:
        assert stored_file.read() == content
    assert stored.sha256 == hashlib.sha256(content).hexdigest()


def test_content_over_the_size_limit_is_refused_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    store = AttachmentStore(tmp_path)

    with pytest.raises(InvalidInput, match="size limit of 10 bytes"):
        store.save(io.BytesIO(b"x" * 11), max_size=10)

    assert stored_paths(tmp_path) == []


def test_content_at_the_size_limit_is_accepted(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)

    stored = store.save(io.BytesIO(b"x" * 10), max_size=10)

    assert stored.size == 10
    assert store.exists(stored.sha256)


def test_a_failing_stream_leaves_no_file(tmp_path: Path) -> None:
    class BrokenUpload(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("connection reset")

    store = AttachmentStore(tmp_path)

    with pytest.raises(OSError, match="connection reset"):
        store.save(BrokenUpload())  # type: ignore[arg-type]

    assert stored_paths(tmp_path) == []


def test_the_store_creates_a_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "data" / "attachments"

    stored = AttachmentStore(root).save_bytes(SAMPLE)

    assert (root / stored.sha256[:2] / stored.sha256[2:4] / stored.sha256).is_file()


def test_path_and_open_give_the_stored_bytes(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    stored = store.save_bytes(SAMPLE)

    location = store.path(stored.sha256)
    with store.open(stored.sha256) as stored_file:
        content = stored_file.read()

    assert location.read_bytes() == SAMPLE
    assert content == SAMPLE


@pytest.mark.parametrize(
    "attachment_id",
    [
        pytest.param("../../etc/passwd", id="relative-traversal"),
        pytest.param("/etc/passwd", id="absolute-path"),
        pytest.param("", id="empty"),
        pytest.param("A" * 64, id="uppercase-hex"),
        pytest.param("0" * 63, id="too-short"),
        pytest.param("0" * 64 + "\n", id="trailing-newline"),
        pytest.param("../" + "0" * 61, id="traversal-of-digest-length"),
    ],
)
def test_malformed_ids_are_not_found(tmp_path: Path, attachment_id: str) -> None:
    store = AttachmentStore(tmp_path / "store")

    with pytest.raises(NotFound):
        store.path(attachment_id)
    with pytest.raises(NotFound):
        store.open(attachment_id)
    with pytest.raises(NotFound):
        store.delete(attachment_id)

    assert store.exists(attachment_id) is False


def test_an_unknown_digest_is_not_found(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    unknown = hashlib.sha256(b"never stored").hexdigest()

    with pytest.raises(NotFound) as raised:
        store.open(unknown)

    assert raised.value.message == f"attachment {unknown} not found"
    assert store.exists(unknown) is False


def test_delete_removes_the_file_and_tolerates_a_missing_one(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    stored = store.save_bytes(SAMPLE)

    store.delete(stored.sha256)
    store.delete(stored.sha256)

    assert store.exists(stored.sha256) is False
    assert stored_paths(tmp_path) == []


def test_saving_logs_the_digest_and_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = AttachmentStore(tmp_path)

    with caplog.at_level(logging.DEBUG, logger="cerana.store.attachments"):
        stored = store.save_bytes(SAMPLE)

    assert f"stored attachment {stored.sha256} ({len(SAMPLE)} bytes)" in (
        caplog.messages
    )
