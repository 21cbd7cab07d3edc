"""Observable datatypes: which values each accepts and the form in which to store them.

Observables are looked up by ``(data_type, value)`` to find where an indicator
was seen before, so two spellings of one indicator must be stored alike:
``2001:DB8:0:0::1`` and ``2001:db8::1``, ``Evil[.]COM.`` and ``evil.com``.
`normalise_observable` gives that one stored form, or raises
`InvalidObservableValue` with a reason an analyst can act on.

Every datatype, including the ones an administrator adds, gets the generic
rules: surrounding whitespace is stripped, and the value must then be non-empty,
free of NUL characters and at most `MAX_VALUE_LENGTH` characters long. The
default datatypes add their own rules on top; ``file`` observables carry an
attachment and never a value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

DEFAULT_DATATYPES: tuple[str, ...] = (
    "filename",
    "fqdn",
    "url",
    "user-agent",
    "domain",
    "ip",
    "mail_subject",
    "hash",
    "mail",
    "registry",
    "uri_path",
    "regexp",
    "other",
    "file",
    "autonomous-system",
)

MAX_VALUE_LENGTH = 8192
MAX_REGEXP_LENGTH = 1024
MAX_DOMAIN_LENGTH = 253

HASH_KINDS: dict[int, str] = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}

REGISTRY_HIVES: frozenset[str] = frozenset(
    {
        "HKEY_LOCAL_MACHINE",
        "HKLM",
        "HKEY_CURRENT_USER",
        "HKCU",
        "HKEY_CLASSES_ROOT",
        "HKCR",
        "HKEY_USERS",
        "HKU",
        "HKEY_CURRENT_CONFIG",
        "HKCC",
    }
)

_DATATYPE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DOMAIN_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_HEX = re.compile(r"[0-9a-fA-F]+")
# Unicode's category Cc is exactly these two ranges.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A dotted-quad IPv4 address already in its normal form (no leading zeros):
# the common case of a feed, checked without building an ipaddress object.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_AS_NUMBER = re.compile(r"(?:AS)?\s*([0-9]+)", re.IGNORECASE | re.ASCII)
_URL_PARTS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)",
    re.DOTALL,
)
_DEFANGED_SCHEME = re.compile(r"\Ahxxp(s?)(?=:)", re.IGNORECASE)

# Defanged spellings analysts paste from reports and threat feeds.
_HOST_REFANGS = (("[.]", "."), ("(.)", "."), ("[@]", "@"))
_URL_REFANGS = (("[.]", "."), ("(.)", "."), ("[:]", ":"))


class InvalidObservableValue(ValueError):
    """A value breaks the rules of its observable datatype.

    ``data_type`` and ``value`` are as the caller gave them (``value`` is not
    stripped); ``reason`` says what is wrong in words fit for the analyst who
    typed the value. ``str()`` joins the three, shortening a long value.
    """

    def __init__(self, data_type: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {data_type} value {_shorten(value)!r}: {reason}")
        self.data_type = data_type
        self.value = value
        self.reason = reason


class _Rejected(Exception):
    """Raised by the per-datatype normalisers, which know the reason only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_observable(data_type: str, value: str) -> str:
    """Returns the form of ``value`` to store for an observable of ``data_type``.

    Accepts any datatype name: names Cerana does not know (an administrator's
    own types) get the generic rules only. The result is a fixed point:
    normalising it again returns it unchanged.

    Raises `InvalidObservableValue` when the value breaks a rule.
    """
    try:
        text = _check_generic(value)
        normaliser = _NORMALISERS.get(data_type)
        normalised = text if normaliser is None else normaliser(text)
        # Lower-casing or IDNA-encoding may lengthen a value past the limit.
        return _check_generic(normalised)
    except _Rejected as problem:
        raise InvalidObservableValue(data_type, value, problem.reason) from None


def hash_kind(value: str) -> str | None:
    """Returns ``"md5"``, ``"sha1"``, ``"sha256"`` or ``"sha512"`` by the
    length of a hexadecimal ``value``, or None when it is no such hash."""
    digest = value.strip()
    if _HEX.fullmatch(digest) is None:
        return None
    return HASH_KINDS.get(len(digest))


def is_valid_datatype_name(name: str) -> bool:
    """Tells whether ``name`` may name a datatype an administrator adds: 1 to 64
    characters of ``a-z``, ``0-9``, ``_`` and ``-``, starting with a letter or
    digit."""
    return _DATATYPE_NAME.fullmatch(name) is not None


def _check_generic(value: str) -> str:
    """Returns ``value`` stripped, if it passes the rules every datatype shares."""
    text = value.strip()
    if not text:
        raise _Rejected("empty value")
    if "\x00" in text:
        raise _Rejected("contains a NUL character")
    if len(text) > MAX_VALUE_LENGTH:
        raise _Rejected(
            f"longer than {MAX_VALUE_LENGTH} characters ({len(text)} characters)"
        )
    return text


def _shorten(value: str, limit: int = 80) -> str:
    """Cuts ``value`` for an error message; the full value stays on the error."""
    if len(value) <= limit:
        return value
    return value[: limit - 3] + "..."


def _has_control_characters(text: str, allowed: str = "") -> bool:
    if not allowed:
        return _CONTROL.search(text) is not None
    return any(char not in allowed for char in _CONTROL.findall(text))


def _refang(text: str, refangs: tuple[tuple[str, str], ...]) -> str:
    """Undoes defanging such as ``evil[.]com`` until no defanged form remains.

    One pass is not enough for idempotence: it turns ``[[.].]`` into a fresh
    ``[.]``, which the next normalisation would change again.
    """
    # Every defanged form has a bracket; most values have none.
    if "[" not in text and "(" not in text:
        return text
    previous = None
    while previous != text:
        previous = text
        for defanged, plain in refangs:
            text = text.replace(defanged, plain)
    return text


def _normalise_ip(text: str) -> str:
    address = _refang(text, _HOST_REFANGS)
    if _PLAIN_IPV4.fullmatch(address):
        return address
    if "%" in address:
        raise _Rejected("an IPv6 zone index ('%...') only means something on one host")
    if _has_ambiguous_octet(address):
        raise _Rejected(
            "an IPv4 octet with a leading zero is ambiguous (octal or decimal)"
        )
    if "/" in address:
        return _normalise_network(address)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise _Rejected("not an IPv4 or IPv6 address") from None


def _has_ambiguous_octet(address: str) -> bool:
    """Tells whether the dotted IPv4 part of ``address`` has an octet like ``01``,
    which some tools read as octal and others as decimal."""
    dotted = address.partition("/")[0].rpartition(":")[2]
    octets = dotted.split(".") if "." in dotted else []
    return any(len(octet) > 1 and octet.startswith("0") for octet in octets)


def _normalise_network(text: str) -> str:
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise _Rejected("not an IPv4 or IPv6 network in CIDR notation") from None
    network = interface.network
    if interface.ip != network.network_address:
        raise _Rejected(f"host bits are set; the network is {network}")
    return str(network)


def _normalise_domain(text: str) -> str:
    name = _refang(text, _HOST_REFANGS).lower().removesuffix(".")
    if _is_ip_address(name):
        raise _Rejected("an IP address, not a domain name; use the ip datatype")
    name = _encode_idna(name)
    _check_domain_labels(name)
    return name


def _is_ip_address(text: str) -> bool:
    # An IPv6 address has a colon and an IPv4 one only digits and dots: most
    # names are neither, and need no parse.
    if ":" not in text and not text.replace(".", "").isdigit():
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _encode_idna(name: str) -> str:
    """Returns the ASCII (punycode) form of an internationalised domain name."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        raise _Rejected("not a valid internationalised domain name") from None


def _check_domain_labels(name: str) -> None:
    if len(name) > MAX_DOMAIN_LENGTH:
        raise _Rejected(f"a domain name has at most {MAX_DOMAIN_LENGTH} characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise _Rejected("a domain name needs at least one dot (example.com)")
    for label in labels:
        if _DOMAIN_LABEL.fullmatch(label) is None:
            raise _Rejected(
                f"label {label!r} is not 1 to 63 characters of a-z, 0-9, '_' "
                "and '-' with no '-' at either end"
            )
    # Catches dotted numbers that are not IP addresses, such as 01.2.3.4.
    if labels[-1].isdigit():
        raise _Rejected("the top-level label is all digits")


def _normalise_url(text: str) -> str:
    url = _DEFANGED_SCHEME.sub(r"http\1", _refang(text, _URL_REFANGS), count=1)
    # urllib silently drops tabs and newlines, so what it checked would not be
    # what we store.
    if _has_control_characters(url):
        raise _Rejected("contains control characters")
    parts = _URL_PARTS.fullmatch(url)
    if parts is None:
        raise _Rejected("not an absolute URL of the form scheme://host/...")
    _check_url_parses(url)
    netloc = _lower_case_host(parts["netloc"])
    return f"{parts['scheme'].lower()}://{netloc}{parts['rest']}"


def _check_url_parses(url: str) -> None:
    try:
        split = urlsplit(url)
        # urllib checks the port only when it is read.
        _ = split.port
    except ValueError as error:
        raise _Rejected(f"does not parse as a URL: {error}") from None
    if not split.hostname:
        raise _Rejected("the URL has no host")


def _lower_case_host(netloc: str) -> str:
    """Lower-cases the host and port of ``netloc`` but not its user info, whose
    case may matter."""
    user_info, at, host_and_port = netloc.rpartition("@")
    return f"{user_info}{at}{host_and_port.lower()}"


def _normalise_mail(text: str) -> str:
    address = _refang(text, _HOST_REFANGS)
    if address.count("@") != 1:
        raise _Rejected("an e-mail address has exactly one '@'")
    local_part, _, domain = address.partition("@")
    if not local_part:
        raise _Rejected("the part before '@' is empty")
    if any(char.isspace() for char in local_part):
        raise _Rejected("the part before '@' contains whitespace")
    if not domain:
        raise _Rejected("the part after '@' is empty")
    try:
        return f"{local_part}@{_normalise_domain(domain)}"
    except _Rejected as problem:
        raise _Rejected(f"the part after '@': {problem.reason}") from None


def _normalise_hash(text: str) -> str:
    if _HEX.fullmatch(text) is None:
        raise _Rejected("a hash is hexadecimal digits only")
    if len(text) not in HASH_KINDS:
        raise _Rejected(
            f"{len(text)} hex digits match no known hash "
            "(32 md5, 40 sha1, 64 sha256, 128 sha512)"
        )
    return text.lower()


def _normalise_autonomous_system(text: str) -> str:
    matched = _AS_NUMBER.fullmatch(text)
    if matched is None:
        raise _Rejected("not an AS number such as AS1234 or 1234")
    # Leading zeros are dropped before int() so a long run of them cannot hit
    # Python's limit on digits converted.
    digits = matched[1].lstrip("0")
    if not digits or len(digits) > 10 or int(digits) >= 2**32:
        raise _Rejected("an AS number is between 1 and 4294967295")
    return f"AS{int(digits)}"


def _normalise_filename(text: str) -> str:
    if "/" in text or "\\" in text:
        raise _Rejected("a file name has no path separator ('/' or '\\')")
    if _has_control_characters(text):
        raise _Rejected("contains control characters")
    return text


def _normalise_registry(text: str) -> str:
    hive = text.partition("\\")[0]
    if hive.upper() not in REGISTRY_HIVES:
        raise _Rejected(
            "a registry key starts with a hive such as HKEY_LOCAL_MACHINE or HKLM, "
            "followed by '\\'"
        )
    return text


def _normalise_user_agent(text: str) -> str:
    if _has_control_characters(text, allowed="\t"):
        raise _Rejected("contains control characters other than tab")
    return text


def _normalise_uri_path(text: str) -> str:
    if not text.startswith("/"):
        raise _Rejected("a URI path starts with '/'")
    if any(char.isspace() for char in text) or _has_control_characters(text):
        raise _Rejected("contains whitespace or control characters")
    return text


def _normalise_regexp(text: str) -> str:
    if len(text) > MAX_REGEXP_LENGTH:
        raise _Rejected(
            f"a regular expression has at most {MAX_REGEXP_LENGTH} characters"
        )
    try:
        re.compile(text)
    except (re.error, OverflowError) as error:
        raise _Rejected(f"not a valid regular expression: {error}") from None
    except RecursionError:
        raise _Rejected("groups nest too deeply to compile") from None
    return text


def _reject_file_value(text: str) -> str:
    raise _Rejected("file observables carry an attachment, not a value")


# mail_subject, other and administrators' own datatypes have the generic rules only.
_NORMALISERS: dict[str, Callable[[str], str]] = {
    "filename": _normalise_filename,
    "fqdn": _normalise_domain,
    "url": _normalise_url,
    "user-agent": _normalise_user_agent,
    "domain": _normalise_domain,
    "ip": _normalise_ip,
    "hash": _normalise_hash,
    "mail": _normalise_mail,
    "registry": _normalise_registry,
    "uri_path": _normalise_uri_path,
    "regexp": _normalise_regexp,
    "file": _reject_file_value,
    "autonomous-system": _normalise_autonomous_system,
}
