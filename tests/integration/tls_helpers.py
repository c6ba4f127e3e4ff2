"""Certificates for the TLS tests, made at test time with openssl(1): a
private CA, and server certificates it signs for the names a test asks
for. Clients verify against the CA (ca.pem), as a real client verifies
against its trust store; nothing is ever fetched from the network."""
import os
import ssl
import subprocess


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))


class CA:
    """A certificate authority in DIR: ca.pem and ca.key."""

    def __init__(self, directory, name="yubin test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=" + name,
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                 cwd=directory)

    def issue(self, stem, names, key="rsa", days=2):
        """A server certificate for names (the first is the CN) signed by
        this CA: returns (chain.pem, key.pem), the chain holding the
        server's certificate and then the CA's. key: "rsa" or "ec"."""
        key_path = os.path.join(self.dir, stem + ".key")
        csr = os.path.join(self.dir, stem + ".csr")
        crt = os.path.join(self.dir, stem + ".crt")
        ext = os.path.join(self.dir, stem + ".ext")
        newkey = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        _openssl("req", *newkey, "-nodes", "-keyout", key_path, "-out", csr, "-subj", "/CN=" + names[0],
                 cwd=self.dir)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
                    % ",".join("DNS:" + n for n in names))
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                 "-out", crt, "-days", str(days), "-extfile", ext, cwd=self.dir)
        chain = os.path.join(self.dir, stem + ".pem")
        with open(chain, "w") as out, open(crt) as a, open(self.cert) as b:
            out.write(a.read() + b.read())
        return chain, key_path

    def client_context(self, hostname_check=True):
        """An ssl.SSLContext that trusts only this CA."""
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = hostname_check
        return ctx


def install(inst, chain, key):
    """Makes chain and key the instance's control/tlscert and control/tlskey
    (copies, key 0600), replaced through a new name so that a running
    server sees either the old files or the new ones."""
    for src, name, mode in ((chain, "tlscert", 0o644), (key, "tlskey", 0o600)):
        dst = os.path.join(inst.dir, "control", name)
        tmp = dst + ".new"
        with open(src, "rb") as f:
            data = f.read()
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, dst)


def peer_names(sock):
    """The DNS names of the certificate an SSLSocket was given."""
    cert = sock.getpeercert()
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")
