"""Real SMTP servers on 127.0.0.1 (STARTTLS and implicit TLS, with AUTH) for the SMTP-account tests."""
import datetime
import ipaddress
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port


USER = "ada@example.com"


PASSWORD = "abcd-efgh-ijkl-mnop"


def self_signed(folder, names, addresses=(), ca=False):
    """(cert path, key path) of a self-signed certificate for `names` (the first is the subject) and IP
    `addresses`, made with `cryptography`; ca=True lets a client trust it as its own anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName(alt_names), critical=False))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1."""
    return self_signed(tmp_path_factory.mktemp("cert"), ["localhost"], ["127.0.0.1"])


def server_context(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(certificate):
    """Start servers on demand: smtp_server("starttls") or smtp_server("tls"); returns the port."""
    controllers = []

    def start(mode):
        port = free_port()
        options = dict(hostname="127.0.0.1", port=port, authenticator=authenticator, server_hostname="mx.test",
                       auth_exclude_mechanism=["CRAM-MD5"])
        if mode == "tls":
            # aiosmtpd does not notice that an implicit-TLS session is encrypted, so it would
            # withhold AUTH under auth_require_tls: the connection *is* TLS, allow it.
            controller = Controller(Sink(), ssl_context=server_context(certificate), auth_require_tls=False,
                                    **options)
        else:
            controller = Controller(Sink(), tls_context=server_context(certificate), require_starttls=True,
                                    **options)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()
