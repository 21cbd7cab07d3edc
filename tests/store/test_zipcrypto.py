import io
import secrets
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cerana.domain.errors import InvalidInput
from cerana.store import zipcrypto
from cerana.store.zipcrypto import write_encrypted_zip

PASSWORD = "malware"
SAMPLE = b"MZ\x90\x00 pretend this is a malware sample\n" * 50


def read_member(archive: bytes, name: str, password: bytes = b"malware") -> bytes:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.read(name, pwd=password)


def test_stdlib_zipfile_decrypts_the_member_with_the_password() -> None:
    archive = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    content = read_member(archive, "sample.exe")

    assert content == SAMPLE


def test_the_member_is_flagged_encrypted_and_deflated() -> None:
    archive = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        (info,) = opened.infolist()

    assert info.flag_bits & 0x1
    assert info.compress_type == zipfile.ZIP_DEFLATED


def test_a_wrong_password_is_refused() -> None:
    archive = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    # ZipCrypto checks one byte of the password, so 1 archive in 256 gets
    # past that check with a wrong password and fails later, on inflate or
    # on the CRC: whichever way, the content never comes out.
    with pytest.raises((RuntimeError, zlib.error, zipfile.BadZipFile)):
        read_member(archive, "sample.exe", password=b"infected")


def test_the_member_cannot_be_read_without_a_password() -> None:
    archive = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    with pytest.raises(RuntimeError, match="password required"):
        read_member(archive, "sample.exe", password=b"")


def test_testzip_with_the_password_reports_no_corrupt_member() -> None:
    archive = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        opened.setpassword(PASSWORD.encode())
        first_bad_member = opened.testzip()

    assert first_bad_member is None


def test_empty_content_round_trips() -> None:
    archive = write_encrypted_zip("empty.txt", b"", PASSWORD)

    content = read_member(archive, "empty.txt")

    assert content == b""


@pytest.mark.slow
def test_three_megabytes_of_random_content_round_trip() -> None:
    sample = secrets.token_bytes(3 * 1024 * 1024)

    archive = write_encrypted_zip("random.bin", sample, PASSWORD)

    assert read_member(archive, "random.bin") == sample


@pytest.mark.parametrize(
    ("member_name", "expected"),
    [
        pytest.param("cases/42/sample.exe", "sample.exe", id="posix-folders"),
        pytest.param("../../etc/passwd", "passwd", id="traversal"),
        pytest.param("/etc/passwd", "passwd", id="absolute"),
        pytest.param("C:\\Users\\bob\\invoice.pdf", "invoice.pdf", id="windows"),
        pytest.param("evil\x00.exe", "evil.exe", id="nul-byte"),
        pytest.param("rapport-é.docx", "rapport-é.docx", id="non-ascii"),
        pytest.param("", "attachment", id="empty"),
        pytest.param("uploads/", "attachment", id="trailing-slash"),
        pytest.param("..", "attachment", id="dot-dot"),
    ],
)
def test_the_member_name_is_reduced_to_a_safe_file_name(
    member_name: str, expected: str
) -> None:
    archive = write_encrypted_zip(member_name, SAMPLE, PASSWORD)

    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = opened.namelist()

    assert names == [expected]
    assert read_member(archive, expected) == SAMPLE


def test_an_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty password"):
        write_encrypted_zip("sample.exe", SAMPLE, "")


def test_two_archives_of_the_same_content_differ_by_their_random_header() -> None:
    first = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    second = write_encrypted_zip("sample.exe", SAMPLE, PASSWORD)

    assert first != second
    assert read_member(first, "sample.exe") == read_member(second, "sample.exe")


def test_an_archive_beyond_the_zip32_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real 4 GiB sample is too slow for a unit test, so the limit shrinks.
    monkeypatch.setattr(zipcrypto, "_MAX_ZIP32", 100)

    with pytest.raises(InvalidInput, match="limited to 4 GiB"):
        write_encrypted_zip("random.bin", secrets.token_bytes(200), PASSWORD)


@pytest.mark.skipif(shutil.which("unzip") is None, reason="the unzip tool is missing")
def test_info_zip_unzip_extracts_the_member_with_the_password(tmp_path: Path) -> None:
    archive_path = tmp_path / "sample.zip"
    archive_path.write_bytes(write_encrypted_zip("sample.exe", SAMPLE, PASSWORD))

    completed = subprocess.run(
        ["unzip", "-P", PASSWORD, "-p", str(archive_path), "sample.exe"],
        capture_output=True,
        check=True,
    )

    assert completed.stdout == SAMPLE


@settings(deadline=None)
@given(content=st.binary(max_size=20_000))
def test_any_bytes_round_trip_through_the_stdlib_decrypter(content: bytes) -> None:
    archive = write_encrypted_zip("sample.bin", content, PASSWORD)

    assert read_member(archive, "sample.bin") == content
