"""The hashed roots directory (globesms/tls_roots.py) and the context built from it (globesms/tls.py).

OpenSSL is the judge of the hash: a root is found in a directory only under the name OpenSSL computes for it, so a
handshake whose chain ends at a root written there succeeds only if `subject_hash` named its file as OpenSSL would.
The roots here have names that exercise every rule of the canonical form (case, white space, string types, a
multi-valued RDN, a type left as encoded, a long name); a file under any other name is not found (the control).
certifi's own roots, whose keys nobody has, are held to the names `openssl rehash` gives them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from globesms import tls, tls_roots

HOST = "provider.example.test"
NOW = dt.datetime.now(dt.UTC)


def _attribute(oid: x509.ObjectIdentifier, value: str, kind: _ASN1Type | None = None) -> x509.NameAttribute:
    return x509.NameAttribute(oid, value) if kind is None else x509.NameAttribute(oid, value, _type=kind)


#: Root names, each leaning on one rule of OpenSSL's canonical form.
NAMES: dict[str, x509.Name] = {
    "case and inner spaces": x509.Name([_attribute(NameOID.COMMON_NAME, "GlobeSMS   Test\tRoot CA")]),
    "leading and trailing white space": x509.Name([_attribute(NameOID.ORGANIZATION_NAME, "\t Globe SMS \r\n")]),
    "printable string": x509.Name(
        [
            _attribute(NameOID.COUNTRY_NAME, "CN", _ASN1Type.PrintableString),
            _attribute(NameOID.ORGANIZATION_NAME, "Globe SMS Ltd", _ASN1Type.PrintableString),
        ]
    ),
    "BMP string, not ASCII": x509.Name([_attribute(NameOID.COMMON_NAME, "Ĝlobe Ŝms Wurzel", _ASN1Type.BMPString)]),
    "UTF-8, not ASCII": x509.Name([_attribute(NameOID.COMMON_NAME, "Globe SMS Racine Émise ÀÉ")]),
    "T61 string, a high byte": x509.Name([_attribute(NameOID.COMMON_NAME, "Globe Zürich", _ASN1Type.T61String)]),
    "IA5 e-mail": x509.Name([_attribute(NameOID.EMAIL_ADDRESS, "Root@GlobeSMS.Example", _ASN1Type.IA5String)]),
    # Encoded, the O entry sorts first (the BMP string makes the CN entry longer); canonical, the CN entry does: the
    # canonical SET OF must be sorted again.
    "multi-valued RDN": x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    _attribute(NameOID.ORGANIZATION_NAME, "Zeta Org Long Name"),
                    _attribute(NameOID.COMMON_NAME, "Alpha Root", _ASN1Type.BMPString),
                ]
            ),
            x509.RelativeDistinguishedName([_attribute(NameOID.COUNTRY_NAME, "SG")]),
        ]
    ),
    "numeric string, kept as encoded": x509.Name(
        [
            _attribute(NameOID.SERIAL_NUMBER, "0042 17", _ASN1Type.NumericString),
            _attribute(NameOID.COMMON_NAME, "Numbered Root"),
        ]
    ),
    "long name (two-byte lengths)": x509.Name(
        [_attribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"Unit {n:02d} of the Globe SMS Root") for n in range(8)]
    ),
}


def _certificate(
    subject: x509.Name, issuer: x509.Name, public: Any, signer: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(hours=1))
    )
    if ca:
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False
        ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _server(tmp_path: Path, root_name: x509.Name) -> tuple[x509.Certificate, ssl.SSLContext]:
    """A root named `root_name`, and a server context presenting a leaf it signed."""
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    leaf = _certificate(
        x509.Name([_attribute(NameOID.COMMON_NAME, HOST)]), root_name, leaf_key.public_key(), root_key, ca=False
    )
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    return root, server


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    """A TLS handshake in memory; raises what the client raises (ssl.SSLCertVerificationError for an unknown root)."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_end = client.wrap_bio(to_client, to_server, server_hostname=HOST)
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_end = server.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, end in (("client", client_end), ("server", server_end)):
            if not done[side]:
                try:
                    end.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(to_server.read())
        to_client.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def _bundle(tmp_path: Path, *roots: x509.Certificate) -> Path:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"".join(root.public_bytes(serialization.Encoding.PEM) for root in roots))
    return bundle


@pytest.mark.parametrize("rule", list(NAMES))
def test_openssl_finds_each_root_under_the_name_written_for_it(tmp_path: Path, rule: str) -> None:
    root, server = _server(tmp_path, NAMES[rule])
    folder = tmp_path / "roots"
    assert tls_roots.write_hashed_roots(_bundle(tmp_path, root), folder) == 1
    _handshake(ssl.create_default_context(capath=str(folder)), server)


def test_a_root_under_another_name_is_not_found(tmp_path: Path) -> None:
    root, server = _server(tmp_path, NAMES["case and inner spaces"])
    folder = tmp_path / "roots"
    tls_roots.write_hashed_roots(_bundle(tmp_path, root), folder)
    (written,) = folder.glob("*.0")
    wrong = f"{(int(written.stem, 16) ^ 1):08x}.0"
    written.rename(folder / wrong)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ssl.create_default_context(capath=str(folder)), server)


def test_roots_sharing_a_hash_are_numbered_in_bundle_order(tmp_path: Path) -> None:
    # Two roots with the same subject (a re-keyed root beside the old one): .0 and .1, and both are trusted.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, first_server = _server(tmp_path / "a", NAMES["printable string"])
    second, second_server = _server(tmp_path / "b", NAMES["printable string"])
    folder = tmp_path / "roots"
    tls_roots.write_hashed_roots(_bundle(tmp_path, first, second), folder)
    name = tls_roots.subject_hash(first.public_bytes(serialization.Encoding.DER))
    assert sorted(path.name for path in folder.iterdir()) == [f"{name}.0", f"{name}.1", tls_roots.SOURCE_DIGEST]
    assert x509.load_pem_x509_certificate((folder / f"{name}.1").read_bytes()) == second
    for server in (first_server, second_server):
        _handshake(ssl.create_default_context(capath=str(folder)), server)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_certifis_roots_get_the_names_openssl_rehash_gives_them(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    count = tls_roots.write_hashed_roots(Path(certifi.where()), ours)
    theirs.mkdir()
    pems = tls_roots._PEM.findall(Path(certifi.where()).read_text())
    for index, pem in enumerate(pems):
        (theirs / f"root{index:03d}.pem").write_text(pem + "\n")
    subprocess.run(["openssl", "rehash", str(theirs)], check=True, capture_output=True)
    hashed = {path.name for path in theirs.iterdir() if not path.name.endswith(".pem")}
    assert count == len(pems) > 100
    assert {path.name for path in ours.iterdir()} - {tls_roots.SOURCE_DIGEST} == hashed
    for name in hashed:  # each name holds the same root in both
        assert ssl.PEM_cert_to_DER_cert((ours / name).read_text()) == ssl.PEM_cert_to_DER_cert(
            (theirs / name).read_text()
        )


def test_the_directory_is_used_only_for_the_bundle_it_was_written_from(tmp_path: Path) -> None:
    root, _ = _server(tmp_path, NAMES["UTF-8, not ASCII"])
    bundle = _bundle(tmp_path, root)
    folder = tmp_path / "roots"
    assert tls_roots.hashed_roots(bundle, folder) is None  # none written
    tls_roots.write_hashed_roots(bundle, folder)
    assert tls_roots.hashed_roots(bundle, folder) == folder
    assert (folder / tls_roots.SOURCE_DIGEST).read_text().strip() == hashlib.sha256(bundle.read_bytes()).hexdigest()
    bundle.write_bytes(bundle.read_bytes() + b"\n")  # certifi changed since the build
    assert tls_roots.hashed_roots(bundle, folder) is None


def test_the_context_reads_the_layers_directory_and_honours_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, server = _server(tmp_path, NAMES["IA5 e-mail"])
    bundle = _bundle(tmp_path, root)
    folder = tmp_path / "roots"
    tls_roots.write_hashed_roots(bundle, folder)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(tls.certifi, "where", lambda: str(bundle))
    monkeypatch.setattr(tls, "hashed_roots", lambda source: tls_roots.hashed_roots(source, folder))
    tls.verifying_context.cache_clear()
    try:
        context = tls.verifying_context()
        assert context.get_ca_certs() == []  # nothing read until a handshake needs it
        _handshake(context, server)
        assert len(context.get_ca_certs()) == 1
        tls.verifying_context.cache_clear()
        other = tmp_path / "other.pem"
        other.write_text((folder / next(folder.glob("*.0")).name).read_text())
        monkeypatch.setenv("SSL_CERT_FILE", str(other))  # httpx's rule: the file named, read whole
        assert len(tls.verifying_context().get_ca_certs()) == 1
    finally:
        tls.verifying_context.cache_clear()
