"""berth fetch transport options against real servers on 127.0.0.1: https
with --cacert, a client certificate (--cert/--key) for internal artifact
stores, the standard proxy variables, and the progress line that appears
only when stderr is a terminal."""
import os
import pty
import select
import subprocess

import pytest

import imagekit
from faultserver import FaultServer


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    imagekit.need("openssl")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out",
                f"{name}.pem", cwd=d)
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem",
                                    "client.key")}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("transport")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    with open(imagekit.rootfs_tar(rootfs, str(d / "a.tar.gz"), "gzip"), "rb") as f:
        return f.read()


def fetch(berth, url, digest, *extra, env=None):
    return berth.run("fetch", url, "--digest", f"sha256:{digest}", "--retries", "0", *extra,
                     env=env)


def test_https_needs_the_ca_bundle(berth, pki, artifact):
    with FaultServer(tls=(pki["server.pem"], pki["server.key"], None)) as srv:
        digest = srv.add("/a.tar.gz", artifact)
        r = fetch(berth, srv.url("/a.tar.gz"), digest)
        assert r.returncode == 1
        assert "certificate" in r.stderr.lower()
        assert imagekit.store_view(berth.root) == []
        r = fetch(berth, srv.url("/a.tar.gz"), digest, "--cacert", pki["ca.pem"])
        assert r.returncode == 0, r.stderr


def test_client_certificate(berth, pki, artifact):
    tls = (pki["server.pem"], pki["server.key"], pki["ca.pem"])
    with FaultServer(tls=tls) as srv:
        digest = srv.add("/a.tar.gz", artifact)
        r = fetch(berth, srv.url("/a.tar.gz"), digest, "--cacert", pki["ca.pem"])
        assert r.returncode == 1, "the server requires a client certificate"
        r = fetch(berth, srv.url("/a.tar.gz"), digest, "--cacert", pki["ca.pem"],
                  "--cert", pki["client.pem"], "--key", pki["client.key"])
        assert r.returncode == 0, r.stderr


def test_http_proxy_variable_honoured(berth, artifact):
    with FaultServer() as proxy:
        digest = proxy.add("/a.tar.gz", artifact)
        env = dict(os.environ, http_proxy=proxy.url(""), no_proxy="")
        # a name that does not resolve: only the proxy can answer it
        url = "http://artifacts.berth-test.invalid/a.tar.gz"
        r = fetch(berth, url, digest, env=env)
        assert r.returncode == 0, r.stderr
        assert proxy.proxied == [url]


def test_progress_line_only_on_a_terminal(berth, berth_bin, artifact):
    with FaultServer() as srv:
        digest = srv.add("/a.tar.gz", artifact)
        master, slave = pty.openpty()
        p = subprocess.Popen([berth_bin, "--root", berth.root, "fetch", srv.url("/a.tar.gz"),
                              "--digest", f"sha256:{digest}"], stdout=subprocess.PIPE,
                             stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "no output on the terminal"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            seen += chunk
        p.wait(timeout=30)
        os.close(master)
        assert p.returncode == 0
        assert b"fetching 0/1" in seen and seen.endswith(b"\r\x1b[K") and b"\r" in seen and b"\n" not in seen, seen
