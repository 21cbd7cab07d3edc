"""ZIP archives protected with the traditional PKWARE ("ZipCrypto") cipher.

TheHive hands out suspicious files as a ZIP whose single member is encrypted
with the password ``malware``, so that a browser, mail filter or antivirus
does not open or quarantine the sample on the way. Analysts open these with
any unzip tool, Python's ``zipfile`` included, and the old cipher is the one
they all read. It is weak by design: it protects against accidents, not
against an attacker.

The cipher and the record layouts follow PKWARE's APPNOTE.TXT (sections
4.3.7, 4.3.12, 4.3.16 and 6.1). No data descriptor is written (bit 3 stays
clear), so the last byte of the encryption header checks the member's CRC.
"""

from __future__ import annotations

import secrets
import struct
import time
import zlib

from cerana.domain.errors import InvalidInput

__all__ = ["write_encrypted_zip"]

FALLBACK_MEMBER_NAME = "attachment"

# Without ZIP64 records every size and offset must fit in 32 bits, and
# 0xFFFFFFFF itself means "look in the ZIP64 extra field".
# Limitation: archives over 4 GiB are refused, because ZIP64 is not written.
_MAX_ZIP32 = 0xFFFFFFFE

_VERSION_NEEDED = 20  # 2.0: deflate and traditional encryption
_VERSION_MADE_BY = (3 << 8) | _VERSION_NEEDED  # 3: UNIX, so attributes apply
_FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8_NAME = 0x0800
_METHOD_DEFLATE = 8
# Regular file, rw-r--r--: an extracted sample must not come out executable.
_UNIX_FILE_ATTRIBUTES = 0o100644 << 16

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<IHHHHIIH")

_ENCRYPTION_HEADER_SIZE = 12


def write_encrypted_zip(member_name: str, content: bytes, password: str) -> bytes:
    """Returns a ZIP archive holding ``content`` as one encrypted member.

    The member is deflated, then encrypted with ZipCrypto under ``password``
    (UTF-8 encoded). Its name is ``member_name`` reduced to a bare file name
    (see `sanitise_member_name`). Raises `ValueError` for an empty password
    and `InvalidInput` when the archive would exceed 4 GiB.
    """
    if not password:
        raise ValueError("a ZipCrypto archive needs a non-empty password")
    name = sanitise_member_name(member_name).encode()
    crc = zlib.crc32(content)

    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    deflated = compressor.compress(content) + compressor.flush()
    header = secrets.token_bytes(_ENCRYPTION_HEADER_SIZE - 1) + bytes([crc >> 24])
    cipher = _ZipCryptoCipher(password.encode())
    payload = cipher.encrypt(header) + cipher.encrypt(deflated)

    member = _Member(name, crc, len(payload), len(content), _dos_timestamp())
    local_header = member.local_header()
    central_offset = len(local_header) + len(payload)
    if max(len(content), central_offset) > _MAX_ZIP32:
        raise InvalidInput("a protected download is limited to 4 GiB")
    central_header = member.central_header()
    end_record = _END_OF_CENTRAL_DIRECTORY.pack(
        0x06054B50, 0, 0, 1, 1, len(central_header), central_offset, 0
    )
    return b"".join([local_header, payload, central_header, end_record])


def sanitise_member_name(member_name: str) -> str:
    """Returns the last component of ``member_name``, safe to extract.

    Both ``/`` and ``\\`` count as separators, since names come from browsers
    on any system; control characters are dropped, as a NUL cuts the name
    short in C tools. An empty result, ``.`` or ``..`` becomes
    `FALLBACK_MEMBER_NAME`, as does a name too long for the ZIP field.
    """
    base = member_name.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(char for char in base if char.isprintable()).strip()
    if printable in {"", ".", ".."} or len(printable.encode()) > 0xFFFF:
        return FALLBACK_MEMBER_NAME
    return printable


class _Member:
    """The fields shared by a member's local header and central header."""

    def __init__(
        self, name: bytes, crc: int, stored_size: int, size: int, stamp: tuple[int, int]
    ) -> None:
        self.name = name
        self.crc = crc
        self.stored_size = stored_size
        self.size = size
        self.dos_time, self.dos_date = stamp
        self.flags = _FLAG_ENCRYPTED
        if not name.isascii():
            # Readers decode names as CP437 unless told the name is UTF-8.
            self.flags |= _FLAG_UTF8_NAME

    def local_header(self) -> bytes:
        fields = _LOCAL_HEADER.pack(
            0x04034B50,
            _VERSION_NEEDED,
            self.flags,
            _METHOD_DEFLATE,
            self.dos_time,
            self.dos_date,
            self.crc,
            self.stored_size,
            self.size,
            len(self.name),
            0,
        )
        return fields + self.name

    def central_header(self) -> bytes:
        fields = _CENTRAL_HEADER.pack(
            0x02014B50,
            _VERSION_MADE_BY,
            _VERSION_NEEDED,
            self.flags,
            _METHOD_DEFLATE,
            self.dos_time,
            self.dos_date,
            self.crc,
            self.stored_size,
            self.size,
            len(self.name),
            0,  # extra field length
            0,  # comment length
            0,  # disk number
            0,  # internal attributes
            _UNIX_FILE_ATTRIBUTES,
            0,  # offset of the local header: the member comes first
        )
        return fields + self.name


class _ZipCryptoCipher:
    """The ZipCrypto stream cipher in its encrypting direction.

    Three 32-bit keys evolve with every plaintext byte; the keystream byte
    depends on the third key only.
    """

    def __init__(self, password: bytes) -> None:
        self._keys = (0x12345678, 0x23456789, 0x34567890)
        self.encrypt(password)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Returns ``plaintext`` encrypted, advancing the keys past it."""
        # This loop runs once per byte of every protected download, so the
        # keys live in locals and the CRC step and keystream come from tables.
        k0, k1, k2 = self._keys
        crc_table = _CRC_TABLE
        keystream = _KEYSTREAM_TABLE
        ciphertext = bytearray(len(plaintext))
        for index, byte in enumerate(plaintext):
            ciphertext[index] = byte ^ keystream[k2 & 0xFFFF]
            k0 = crc_table[(k0 ^ byte) & 0xFF] ^ (k0 >> 8)
            k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k2 = crc_table[(k2 ^ (k1 >> 24)) & 0xFF] ^ (k2 >> 8)
        self._keys = (k0, k1, k2)
        return bytes(ciphertext)


def _build_crc_table() -> tuple[int, ...]:
    """Returns the reflected CRC-32 table (polynomial 0xEDB88320).

    `zlib.crc32` cannot stand in: the cipher needs the bare one-byte step,
    without the complement zlib applies before and after.
    """
    table = []
    for value in range(256):
        for _ in range(8):
            value = (value >> 1) ^ 0xEDB88320 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


def _build_keystream_table() -> bytes:
    """Returns the keystream byte for each value of the low 16 bits of key 2."""
    stream = bytearray(0x10000)
    for low in range(0x10000):
        temp = low | 2
        stream[low] = ((temp * (temp ^ 1)) >> 8) & 0xFF
    return bytes(stream)


_CRC_TABLE = _build_crc_table()
_KEYSTREAM_TABLE = _build_keystream_table()


def _dos_timestamp() -> tuple[int, int]:
    """Returns the local time now as MS-DOS (time, date) fields."""
    now = time.localtime()
    # MS-DOS dates start in 1980; a clock set earlier would wrap around.
    year = max(now.tm_year, 1980)
    dos_time = (now.tm_hour << 11) | (now.tm_min << 5) | (now.tm_sec // 2)
    dos_date = ((year - 1980) << 9) | (now.tm_mon << 5) | now.tm_mday
    return dos_time, dos_date
