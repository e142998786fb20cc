"""The hashed roots directory (globesms/tls_roots.py) and the context built from it (globesms/tls.py).

OpenSSL is the judge of the hash: a root is found in a directory only under the name OpenSSL computes for it, so a
handshake whose chain ends at a root written there succeeds only if `subject_hash` named its file as OpenSSL would.
The roots here have names that exercise each rule of the canonical form (case, every white-space character, each
string type OpenSSL converts, a multi-valued RDN whose canonical order differs, a type left as encoded, lengths over
127 bytes); a file under any other name is not found (the control). (The 7-bit types read as Latin-1 or as UTF-8
differ only for bytes they may not hold, which cryptography refuses to write.)
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
    # Its canonical value is itself over 127 bytes: the canonical encoding's own lengths take two bytes.
    "long value": x509.Name([_attribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Globe SMS Root " + "Long " * 30)]),
    "universal string": x509.Name([_attribute(NameOID.COMMON_NAME, "Globe SMS Ünïversal", _ASN1Type.UniversalString)]),
    "vertical tab and form feed": x509.Name([_attribute(NameOID.COMMON_NAME, "\vGlobe\f\fSMS Root\v")]),
}
#: Two subjects that differ but hash alike (3574faad), found by trying "Collision Root <n>" names.
COLLIDING = ("Collision Root 22784", "Collision Root 146388")


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


def _servers(tmp_path: Path, *names: x509.Name) -> tuple[list[x509.Certificate], list[ssl.SSLContext]]:
    """`_server` for each name, each in a folder of its own (`tmp_path`/0, /1, ...)."""
    made = []
    for index, name in enumerate(names):
        (tmp_path / str(index)).mkdir()
        made.append(_server(tmp_path / str(index), name))
    return [root for root, _ in made], [server for _, server in made]


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


def test_roots_whose_subjects_hash_alike_are_numbered_in_bundle_order(tmp_path: Path) -> None:
    roots, servers = _servers(tmp_path, *(x509.Name([_attribute(NameOID.COMMON_NAME, cn)]) for cn in COLLIDING))
    folder = tmp_path / "roots"
    assert tls_roots.write_hashed_roots(_bundle(tmp_path, *roots), folder) == 2
    assert sorted(path.name for path in folder.iterdir()) == ["3574faad.0", "3574faad.1", tls_roots.SOURCE_DIGEST]
    assert x509.load_pem_x509_certificate((folder / "3574faad.1").read_bytes()) == roots[1]
    for server in servers:  # each found, whichever file it is in
        _handshake(ssl.create_default_context(capath=str(folder)), server)


def test_a_bundle_with_two_roots_of_one_subject_gets_no_directory(tmp_path: Path) -> None:
    # A re-keyed root beside the old one: OpenSSL's directory lookup could miss the second (see write_hashed_roots).
    (first, second), _ = _servers(tmp_path, NAMES["printable string"], NAMES["printable string"])
    folder = tmp_path / "roots"
    bundle = _bundle(tmp_path, first, second)
    tls_roots.write_hashed_roots(_bundle(tmp_path / "0", first), folder)  # an earlier build's
    assert tls_roots.write_hashed_roots(bundle, folder) == 0
    assert not folder.exists()
    assert tls_roots.hashed_roots(bundle, folder) is None


def test_writing_again_leaves_no_root_of_the_bundle_before(tmp_path: Path) -> None:
    (old, new), (old_server, _) = _servers(tmp_path, NAMES["IA5 e-mail"], NAMES["UTF-8, not ASCII"])
    folder = tmp_path / "roots"
    tls_roots.write_hashed_roots(_bundle(tmp_path / "0", old), folder)
    tls_roots.write_hashed_roots(_bundle(tmp_path / "1", new), folder)
    assert len(list(folder.glob("*.0"))) == 1
    with pytest.raises(ssl.SSLCertVerificationError):  # the root the bundle no longer holds is not trusted
        _handshake(ssl.create_default_context(capath=str(folder)), old_server)


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


@pytest.fixture
def context_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`tls.verifying_context` over a bundle of one test root (as certifi's) and `folder` (as the layer's
    directory), with no SSL_CERT_* set; returns the root's server context and the folder."""
    root, server = _server(tmp_path, NAMES["IA5 e-mail"])
    bundle = _bundle(tmp_path, root)
    folder = tmp_path / "roots"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(tls.certifi, "where", lambda: str(bundle))
    monkeypatch.setattr(tls, "hashed_roots", lambda source: tls_roots.hashed_roots(source, folder))
    tls.verifying_context.cache_clear()
    yield bundle, server, folder
    tls.verifying_context.cache_clear()


def test_the_context_reads_the_layers_directory_when_a_handshake_needs_it(context_over: Any) -> None:
    bundle, server, folder = context_over
    tls_roots.write_hashed_roots(bundle, folder)
    context = tls.verifying_context()
    assert context.get_ca_certs() == []  # nothing read until a handshake needs it
    _handshake(context, server)
    assert len(context.get_ca_certs()) == 1


def test_without_the_directory_the_context_reads_the_bundle_whole(context_over: Any) -> None:
    _, server, _ = context_over  # no directory written: a source tree
    context = tls.verifying_context()
    assert len(context.get_ca_certs()) == 1  # read when built
    _handshake(context, server)


def test_ssl_cert_file_and_ssl_cert_dir_win_as_in_httpx(
    context_over: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, server, folder = context_over
    tls_roots.write_hashed_roots(bundle, folder)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere)
    (folder / next(folder.glob("*.0")).name).unlink()  # the layer's directory no longer finds the root
    monkeypatch.setenv("SSL_CERT_DIR", str(elsewhere))
    _handshake(tls.verifying_context(), server)
    tls.verifying_context.cache_clear()
    monkeypatch.delenv("SSL_CERT_DIR")
    with pytest.raises(ssl.SSLCertVerificationError):  # the control: the layer's directory, emptied
        _handshake(tls.verifying_context(), server)
    tls.verifying_context.cache_clear()
    single = tmp_path / "single.pem"
    single.write_bytes(bundle.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(single))  # the file named, read whole
    assert len(tls.verifying_context().get_ca_certs()) == 1
