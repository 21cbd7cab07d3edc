"""Observable values: which each datatype accepts, and the form stored."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import domains

from cerana.domain.datatypes import (
    DEFAULT_DATATYPES,
    InvalidObservableValue,
    hash_kind,
    is_valid_datatype_name,
    normalise_observable,
)

# hypothesis.provisional.domains() goes up to 255 characters, past the 253 that
# fit in DNS, which the domain rules enforce.
dns_names = domains(max_length=253)

# CPython warns about regexp syntax whose meaning may change ("[[:alpha:]]").
# Such patterns compile, so the regexp datatype accepts them; the warnings are
# CPython's, not ours.
ignore_re_syntax_warnings = pytest.mark.filterwarnings(
    "ignore:Possible:FutureWarning",
    "ignore:bad character in group name:DeprecationWarning",
)

# Rows are (what the case shows, value given, value stored), by datatype.
ACCEPTED_ROWS: dict[str, list[tuple[str, str, str]]] = {
    "ip": [
        ("ipv4 is kept", "192.0.2.1", "192.0.2.1"),
        ("ipv6 is compressed", "2001:DB8:0:0::1", "2001:db8::1"),
        ("surrounding whitespace is stripped", "  10.1.2.3\n", "10.1.2.3"),
        ("ipv4 network", "10.0.0.0/8", "10.0.0.0/8"),
        ("ipv6 network is compressed", "2001:DB8::/32", "2001:db8::/32"),
        ("netmask becomes a prefix length", "10.0.0.0/255.0.0.0", "10.0.0.0/8"),
        ("defanged ipv4 is refanged", "192[.]0(.)2[.]1", "192.0.2.1"),
    ],
    "domain": [
        ("domain is lower-cased", "Example.COM", "example.com"),
        ("root dot is dropped", "example.com.", "example.com"),
        ("defanged domain is refanged", "evil[.]example(.)org", "evil.example.org"),
        ("unicode name becomes punycode", "Bücher.example", "xn--bcher-kva.example"),
        ("underscore label", "_dmarc.example.com", "_dmarc.example.com"),
    ],
    "fqdn": [
        ("fqdn is lower-cased", "WWW.Example.com.", "www.example.com"),
        ("inner hyphens and digits", "a-b.c0.example", "a-b.c0.example"),
    ],
    "url": [
        ("scheme and host are lowered", "HTTP://Ex.COM/A?B#C", "http://ex.com/A?B#C"),
        ("hxxps is refanged", "hxxps://evil[.]com/x", "https://evil.com/x"),
        ("hxxp and [:] are refanged", "hXXp[:]//evil(.)com", "http://evil.com"),
        (
            "user info keeps its case",
            "ftp://Bob:PW@Ex.COM:21",
            "ftp://Bob:PW@ex.com:21",
        ),
        ("ipv6 host is lowered", "http://[2001:DB8::1]/", "http://[2001:db8::1]/"),
        ("empty query is kept", "http://example.com?", "http://example.com?"),
        ("only the scheme is refanged", "http://HXXP:8080/", "http://hxxp:8080/"),
    ],
    "mail": [
        ("local part keeps its case", "Jo.Doe@Example.COM", "Jo.Doe@example.com"),
        ("defanged address is refanged", "jo[@]evil[.]com", "jo@evil.com"),
        (
            "unicode domain becomes punycode",
            "jo@Bücher.example",
            "jo@xn--bcher-kva.example",
        ),
    ],
    "hash": [
        ("md5 is lower-cased", "AB" * 16, "ab" * 16),
        ("sha1", "da39" * 10, "da39" * 10),
        ("sha256 is lower-cased", "A" * 64, "a" * 64),
        ("sha512", "0" * 128, "0" * 128),
    ],
    "autonomous-system": [
        ("AS prefix", "AS1234", "AS1234"),
        ("lower-case prefix", "as1234", "AS1234"),
        ("bare number", "1234", "AS1234"),
        ("space after the prefix", "AS 1234", "AS1234"),
        ("largest 32-bit number", "AS4294967295", "AS4294967295"),
        ("leading zeros are dropped", "AS00064500", "AS64500"),
    ],
    "filename": [
        ("file name is kept", "Invoice 2024.pdf.exe", "Invoice 2024.pdf.exe"),
    ],
    "registry": [
        ("short hive", r"HKLM\Software\Run", r"HKLM\Software\Run"),
        ("hive in any case", r"hkey_users\S-1-5-18", r"hkey_users\S-1-5-18"),
        ("hive alone", "HKU", "HKU"),
    ],
    "user-agent": [
        ("tab is allowed", "Mozilla/5.0\t(X11)", "Mozilla/5.0\t(X11)"),
    ],
    "mail_subject": [
        ("newline is allowed", "Urgent:\r\nInvoice", "Urgent:\r\nInvoice"),
    ],
    "other": [
        ("any text, stripped", "  anything at all  ", "anything at all"),
    ],
    "uri_path": [
        ("path with query", "/wp-admin/x.php?a=1", "/wp-admin/x.php?a=1"),
    ],
    "regexp": [
        ("pattern that compiles", r"^evil\d+\.com$", r"^evil\d+\.com$"),
    ],
    "btc-address": [
        ("custom datatype is stripped", " 1BoatSLRHtKNngk ", "1BoatSLRHtKNngk"),
    ],
}

# Rows are (what the case shows, value given, words the reason contains).
REJECTED_ROWS: dict[str, list[tuple[str, str, str]]] = {
    "ip": [
        ("three octets", "1.2.3", "not an IPv4 or IPv6 address"),
        ("octet above 255", "256.1.1.1", "not an IPv4 or IPv6 address"),
        ("octal-looking octet", "01.2.3.4", "leading zero is ambiguous"),
        ("octal in mapped ipv6", "::ffff:1.02.3.4", "leading zero is ambiguous"),
        ("host bits set", "10.0.0.1/8", "host bits are set; the network is 10.0.0.0/8"),
        ("prefix too long", "10.0.0.0/33", "not an IPv4 or IPv6 network"),
        ("ipv6 zone index", "fe80::1%eth0", "zone index"),
        ("domain name", "example.com", "not an IPv4 or IPv6 address"),
    ],
    "domain": [
        ("single label", "localhost", "at least one dot"),
        ("ip address", "192.0.2.1", "an IP address, not a domain name"),
        ("defanged ip address", "1[.]2[.]3[.]4", "an IP address, not a domain name"),
        ("all-digit top label", "01.2.3.4", "top-level label is all digits"),
        ("leading hyphen", "-evil.com", "label '-evil'"),
        ("trailing hyphen", "evil-.com", "label 'evil-'"),
        ("empty label", "a..com", "label ''"),
        ("label over 63 characters", "a" * 64 + ".com", "1 to 63 characters"),
        ("name over 253 characters", ".".join(["a" * 63] * 4), "at most 253"),
        ("lone surrogate", "bad\ud800.com", "not a valid internationalised"),
    ],
    "fqdn": [
        ("single label with root dot", "localhost.", "at least one dot"),
        ("space in a label", "ex ample.com", "label 'ex ample'"),
    ],
    "url": [
        ("no scheme", "example.com/x", "not an absolute URL"),
        ("no network location", "mailto:a@example.com", "not an absolute URL"),
        ("scheme starts with a digit", "1http://example.com", "not an absolute URL"),
        ("empty host", "http:///path", "the URL has no host"),
        ("port not a number", "http://example.com:http/", "does not parse as a URL"),
        ("unclosed ipv6 bracket", "http://[::1/", "does not parse as a URL"),
        ("tab in the host", "http://exa\tmple.com/", "control characters"),
    ],
    "mail": [
        ("no @", "jo.example.com", "exactly one '@'"),
        ("two @", "a@b@example.com", "exactly one '@'"),
        ("empty local part", "@example.com", "before '@' is empty"),
        ("empty domain part", "jo@", "after '@' is empty"),
        ("space in local part", "jo doe@example.com", "contains whitespace"),
        ("bad domain part", "jo@localhost", "the part after '@': a domain name"),
    ],
    "hash": [
        ("not hexadecimal", "z" * 32, "hexadecimal digits only"),
        ("unknown length", "a" * 33, "33 hex digits match no known hash"),
        ("0x prefix", "0x" + "a" * 32, "hexadecimal digits only"),
    ],
    "autonomous-system": [
        ("AS0", "AS0", "between 1 and 4294967295"),
        ("beyond 32 bits", "AS4294967296", "between 1 and 4294967295"),
        ("thousands of digits", "AS" + "9" * 5000, "between 1 and 4294967295"),
        ("ASN prefix", "ASN1234", "not an AS number"),
        ("negative number", "AS-1", "not an AS number"),
    ],
    "filename": [
        ("windows path", "C:\\Users\\x.exe", "no path separator"),
        ("posix path", "/tmp/x.sh", "no path separator"),
        ("bell character", "x\x07.exe", "control characters"),
    ],
    "registry": [
        ("unknown hive", r"HKLMX\Software", "starts with a hive"),
        ("no hive", r"Software\Run", "starts with a hive"),
    ],
    "user-agent": [
        ("header injection", "curl/8.0\r\nX-Evil: 1", "other than tab"),
    ],
    "uri_path": [
        ("relative path", "index.php", "starts with '/'"),
        ("space in the path", "/a b", "whitespace"),
    ],
    "regexp": [
        ("unclosed group", "(unclosed", "missing ), unterminated subpattern"),
        ("huge repeat count", "a{99999999999}", "not a valid regular expression"),
        ("deep nesting", "(" * 500 + ")" * 500, "nest too deeply"),
        ("over 1024 characters", "a" * 1025, "at most 1024 characters"),
    ],
    "file": [
        ("any value", "malware.exe", "carry an attachment, not a value"),
    ],
}


def as_params(rows: dict[str, list[tuple[str, str, str]]]) -> list[pytest.ParameterSet]:
    """Flattens a table by datatype into parameters with readable ids."""
    return [
        pytest.param(data_type, value, outcome, id=f"{data_type}: {case}")
        for data_type, cases in rows.items()
        for case, value, outcome in cases
    ]


ACCEPTED = [
    *as_params(ACCEPTED_ROWS),
    pytest.param(
        "regexp",
        "[[:alpha:]]+",
        "[[:alpha:]]+",
        id="regexp: pattern that compiles with a warning",
        marks=ignore_re_syntax_warnings,
    ),
]
REJECTED = as_params(REJECTED_ROWS)


@pytest.mark.parametrize(("data_type", "value", "expected"), ACCEPTED)
def test_accepted_value_is_stored_normalised(
    data_type: str, value: str, expected: str
) -> None:
    stored = normalise_observable(data_type, value)

    assert stored == expected


@pytest.mark.parametrize(("data_type", "value", "reason"), REJECTED)
def test_rejected_value_says_why(data_type: str, value: str, reason: str) -> None:
    with pytest.raises(InvalidObservableValue) as caught:
        normalise_observable(data_type, value)

    assert caught.value.data_type == data_type
    assert reason in caught.value.reason


GENERIC_TYPES = [t for t in DEFAULT_DATATYPES if t != "file"] + ["my-custom-type"]


@pytest.mark.parametrize("data_type", GENERIC_TYPES)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("", "empty value", id="empty"),
        pytest.param(" \t\n ", "empty value", id="only whitespace"),
        pytest.param("a\x00b", "contains a NUL character", id="NUL"),
        pytest.param("a" * 8193, "longer than 8192 characters", id="too long"),
    ],
)
def test_every_datatype_applies_the_generic_rules(
    data_type: str, value: str, reason: str
) -> None:
    with pytest.raises(InvalidObservableValue) as caught:
        normalise_observable(data_type, value)

    assert caught.value.reason.startswith(reason)


def test_default_datatypes_are_thehive_3_ones_in_order() -> None:
    expected = (
        "filename fqdn url user-agent domain ip mail_subject hash mail registry "
        "uri_path regexp other file autonomous-system"
    )

    assert tuple(expected.split()) == DEFAULT_DATATYPES


def test_error_message_names_datatype_value_and_reason() -> None:
    with pytest.raises(InvalidObservableValue) as caught:
        normalise_observable("ip", "1.2.3")

    assert str(caught.value) == "invalid ip value '1.2.3': not an IPv4 or IPv6 address"


def test_error_keeps_the_value_as_given_and_shortens_it_in_the_message() -> None:
    value = " " + "x" * 9000

    with pytest.raises(InvalidObservableValue) as caught:
        normalise_observable("other", value)

    assert caught.value.value == value
    assert len(str(caught.value)) < 200


def test_invalid_observable_value_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid hash value"):
        normalise_observable("hash", "nope")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        pytest.param("a" * 32, "md5", id="md5"),
        pytest.param("A" * 40, "sha1", id="sha1 upper case"),
        pytest.param(" " + "0" * 64 + " ", "sha256", id="sha256 with spaces"),
        pytest.param("f" * 128, "sha512", id="sha512"),
        pytest.param("a" * 48, None, id="unknown length"),
        pytest.param("g" * 32, None, id="not hex"),
        pytest.param("", None, id="empty"),
    ],
)
def test_hash_kind_is_told_by_length(value: str, kind: str | None) -> None:
    assert hash_kind(value) == kind


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("ip", True, id="default name"),
        pytest.param("btc-address", True, id="hyphen"),
        pytest.param("x509_serial", True, id="underscore and digits"),
        pytest.param("9lives", True, id="starts with digit"),
        pytest.param("a" * 64, True, id="64 characters"),
        pytest.param("a" * 65, False, id="65 characters"),
        pytest.param("", False, id="empty"),
        pytest.param("-ip", False, id="starts with hyphen"),
        pytest.param("IP", False, id="upper case"),
        pytest.param("my type", False, id="space"),
        pytest.param("ip\n", False, id="trailing newline"),
    ],
)
def test_datatype_names_admins_may_add(name: str, valid: bool) -> None:
    assert is_valid_datatype_name(name) is valid


@given(st.ip_addresses())
def test_ip_normalisation_is_idempotent(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    stored = normalise_observable("ip", str(address))

    assert normalise_observable("ip", stored) == stored


@given(st.ip_addresses(v=6))
def test_ipv6_is_stored_compressed(address: ipaddress.IPv6Address) -> None:
    exploded = address.exploded.upper()

    stored = normalise_observable("ip", exploded)

    assert stored == address.compressed


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_network_normalisation_is_idempotent(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int
) -> None:
    network = ipaddress.ip_network(
        f"{address}/{prefix % (address.max_prefixlen + 1)}", strict=False
    )

    stored = normalise_observable("ip", str(network))

    assert stored == str(network)
    assert normalise_observable("ip", stored) == stored


@given(dns_names, st.sampled_from(["domain", "fqdn"]))
def test_domain_normalisation_is_idempotent(name: str, data_type: str) -> None:
    stored = normalise_observable(data_type, name + ".")

    assert stored == name.lower()
    assert normalise_observable(data_type, stored) == stored


@given(st.emails(domains=dns_names))
def test_mail_normalisation_is_idempotent(address: str) -> None:
    local_part, _, domain = address.rpartition("@")

    stored = normalise_observable("mail", address)

    assert stored == f"{local_part}@{domain.lower()}"
    assert normalise_observable("mail", stored) == stored


@given(
    st.sampled_from([32, 40, 64, 128]).flatmap(
        lambda size: st.text("0123456789abcdefABCDEF", min_size=size, max_size=size)
    )
)
def test_hash_normalisation_is_idempotent(digest: str) -> None:
    stored = normalise_observable("hash", digest)

    assert stored == digest.lower()
    assert normalise_observable("hash", stored) == stored
    assert hash_kind(stored) is not None


@given(
    st.integers(min_value=1, max_value=2**32 - 1),
    st.sampled_from(["AS{}", "as{}", "{}", "AS {}"]),
)
def test_as_number_normalisation_is_idempotent(number: int, spelling: str) -> None:
    stored = normalise_observable("autonomous-system", spelling.format(number))

    assert stored == f"AS{number}"
    assert normalise_observable("autonomous-system", stored) == stored


@given(
    st.sampled_from(["http", "HTTPS", "hxxp", "hXXps", "ftp"]),
    dns_names,
    st.from_regex(
        r"(/[A-Za-z0-9._~%!$&'*+,;=:@-]*)*(\?[A-Za-z0-9=&]*)?", fullmatch=True
    ),
)
def test_url_normalisation_is_idempotent(scheme: str, host: str, rest: str) -> None:
    plain_scheme = scheme.lower().replace("hxxp", "http")

    stored = normalise_observable("url", f"{scheme}://{host}{rest}")

    assert stored == f"{plain_scheme}://{host.lower()}{rest}"
    assert normalise_observable("url", stored) == stored


@pytest.mark.parametrize("data_type", DEFAULT_DATATYPES + ("my-custom-type",))
@given(value=st.text())
@ignore_re_syntax_warnings
def test_any_text_is_stored_as_a_fixed_point_or_rejected(
    data_type: str, value: str
) -> None:
    try:
        stored = normalise_observable(data_type, value)
    except InvalidObservableValue:
        return

    assert normalise_observable(data_type, stored) == stored
