"""certifi's root certificates as a hashed directory, which OpenSSL reads one root at a time, when a handshake needs it.

Why: a verifying context given certifi's bundle (`cafile`, httpx's default) parses all of its ~120 roots when it is
built: 35-65 ms of CPU under OpenSSL 3 here, in the first event of every function that calls out over HTTPS (the
three dispatchers, the webhook sender, reconcile). Given a directory (`capath`), OpenSSL looks a root up by the
hash of its subject name when a chain needs one (`<hash>.0`, `<hash>.1`, ...): building the context costs under a
millisecond, and a handshake reads the one or two files it needs. Same roots, same checks, only read later (and
`get_ca_certs()` lists what has been read so far). It is the layout `openssl rehash` writes, and that Debian's
/etc/ssl/certs uses. A bundle in which two roots share a subject gets no directory (`write_hashed_roots` says why).

The layer's build (layers/globesms/Makefile) writes the directory from the certifi it installs (this file run as a
script, standard library only), with the bundle's SHA-256 beside it: `hashed_roots` gives the directory only when
that is the bundle installed now (a source tree, or a certifi changed without a build, has none or another: the
caller falls back on the bundle itself).

Written here because nothing the build can count on computes the hash: Python's `ssl` does not expose it, and
pyOpenSSL (`X509.subject_name_hash`) or the `openssl` command would be a build dependency on every machine that runs
`sam build` for 60 lines of standard library. The hash is OpenSSL's `X509_NAME_hash_ex` (crypto/x509/x509_cmp.c):
the first four bytes, little-endian, of the SHA-1 of the name's canonical encoding (crypto/x509/x_name.c,
`x509_name_canon`): each relative distinguished name's SET OF entries, DER-sorted, concatenated without the outer
SEQUENCE, every value of the string types it lists (not NumericString, for one) turned into a UTF8String with
leading and trailing white space dropped, inner runs of it made one space, and ASCII letters lowercased.
tests/unit/test_tls_roots.py holds it to OpenSSL's own lookup (handshakes against roots with awkward names) and to
`openssl rehash`'s names for certifi's roots; `bench.layer` checks that the built layer has the directory for its
certifi.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import sys
from pathlib import Path

#: Where the layer's build puts the directory: beside this module, in the package.
FOLDER = Path(__file__).parent / "roots"
#: The SHA-256 (hex) of the bundle the directory was written from.
SOURCE_DIGEST = "bundle.sha256"

_SEQUENCE, _SET, _UTF8STRING = 0x30, 0x31, 0x0C
_VERSION_TAG = 0xA0  # [0] EXPLICIT, before the serial number of a v2/v3 certificate
#: String types OpenSSL canonicalises (ASN1_MASK_CANON), with how ASN1_STRING_to_UTF8 reads their bytes.
_CANONICAL_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String (read as Latin-1)
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
}
_SPACES = b" \t\n\v\f\r"  # ossl_isspace
_SPACE_RUN = re.compile(rb"[ \t\n\v\f\r]+")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at `at`: its tag, where its contents start and where they end (single-byte tags only, all
    a certificate's name needs)."""
    tag, length = data[at], data[at + 1]
    start = at + 2
    if length & 0x80:
        size = length & 0x7F
        length, start = int.from_bytes(data[start : start + size], "big"), start + size
    return tag, start, start + length


def _encode(tag: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes((tag, size)) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + contents


def subject_name(certificate: bytes) -> bytes:
    """The contents of a DER certificate's subject Name (its RDN SETs, without the Name's own SEQUENCE header)."""
    _, tbs, _ = _element(certificate, 0)  # Certificate ::= SEQUENCE { tbsCertificate, ... }
    _, at, _ = _element(certificate, tbs)
    tag, _, end = _element(certificate, at)
    if tag == _VERSION_TAG:
        at = end
    for _ in range(4):  # serialNumber, signature, issuer, validity
        at = _element(certificate, at)[2]
    tag, start, end = _element(certificate, at)
    if tag != _SEQUENCE:
        raise ValueError("not an X.509 certificate: no subject name where one belongs")
    return certificate[start:end]


def _canonical_value(tag: int, contents: bytes, whole: bytes) -> bytes:
    codec = _CANONICAL_CODECS.get(tag)
    if codec is None:
        return whole  # not a string type OpenSSL canonicalises: kept as encoded
    text = contents.decode(codec).encode("utf-8").strip(_SPACES)
    lowered = bytes(byte + 32 if 0x41 <= byte <= 0x5A else byte for byte in text)  # ASCII letters only
    return _encode(_UTF8STRING, _SPACE_RUN.sub(b" ", lowered))


def canonical_name(name: bytes) -> bytes:
    """OpenSSL's canonical encoding of a Name's contents (`x509_name_canon`)."""
    canonical = b""
    at = 0
    while at < len(name):
        _, start, end = _element(name, at)  # RelativeDistinguishedName ::= SET OF AttributeTypeAndValue
        entries = []
        while start < end:
            _, entry, entry_end = _element(name, start)  # SEQUENCE { type OBJECT IDENTIFIER, value ANY }
            oid_end = _element(name, entry)[2]
            tag, value, value_end = _element(name, oid_end)
            typed = name[entry:oid_end] + _canonical_value(tag, name[value:value_end], name[oid_end:value_end])
            entries.append(_encode(_SEQUENCE, typed))
            start = entry_end
        canonical += _encode(_SET, b"".join(sorted(entries)))  # DER orders a SET OF by its members' encodings
        at = end
    return canonical


def subject_hash(certificate: bytes) -> str:
    """The name `openssl rehash` gives a DER certificate's file, without the `.N`: `openssl x509 -subject_hash`."""
    return _hash_of(canonical_name(subject_name(certificate)))


def _hash_of(canonical: bytes) -> str:
    digest = hashlib.sha1(canonical, usedforsecurity=False).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def write_hashed_roots(bundle: Path, folder: Path) -> int:
    """Every certificate of the PEM `bundle` as its own file `<subject hash>.<n>` in a fresh `folder` (n counting
    the bundle's earlier roots whose different subjects hash alike), and the bundle's SHA-256 beside them. Returns
    how many; 0, and no folder, when two roots share a subject: OpenSSL reads the directory only for a subject it
    holds no root of yet, so while one thread's lookup has loaded the first of two such roots, another thread's
    handshake that needs the second finds the first and stops there. Such a bundle is read whole (`hashed_roots`
    gives None)."""
    text = bundle.read_bytes()
    pems = _PEM.findall(text.decode("ascii"))
    names = [canonical_name(subject_name(ssl.PEM_cert_to_DER_cert(pem))) for pem in pems]
    shutil.rmtree(folder, ignore_errors=True)  # no root left from another bundle
    if len(set(names)) < len(names):
        return 0
    folder.mkdir(parents=True)
    seen: dict[str, int] = {}
    for pem, name in zip(pems, names, strict=True):
        hashed = _hash_of(name)
        index = seen[hashed] = seen.get(hashed, -1) + 1
        (folder / f"{hashed}.{index}").write_text(pem + "\n")
    (folder / SOURCE_DIGEST).write_text(hashlib.sha256(text).hexdigest() + "\n")
    return len(pems)


def hashed_roots(bundle: Path, folder: Path = FOLDER) -> Path | None:
    """`folder` if it was written from exactly `bundle` (as it is now), else None."""
    try:
        written = (folder / SOURCE_DIGEST).read_text().strip()
        return folder if written == hashlib.sha256(bundle.read_bytes()).hexdigest() else None
    except OSError:
        return None


if __name__ == "__main__":  # the layer's build: python -B -I globesms/tls_roots.py BUNDLE FOLDER
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    written = write_hashed_roots(source, target)
    print(
        f"{written} roots of {source} hashed into {target}"
        if written
        else f"{source}: two roots share a subject, no hashed directory: the functions read the bundle whole"
    )
