"""minisign signatures made by the real minisign tool: prehashed (the 0.11
default) and legacy both verify; a tampered artifact, a wrong key or a
tampered trusted comment are rejected and nothing enters the store."""
import base64
import subprocess

import pytest

import imagekit
from faultserver import FaultServer


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    imagekit.need("minisign")
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("good", "other"):
        pub, sec = d / f"{name}.pub", d / f"{name}.key"
        subprocess.run(["minisign", "-G", "-p", str(pub), "-s", str(sec), "-W"], check=True,
                       capture_output=True)
        out[name] = (str(pub), str(sec), pub.read_text().splitlines()[1])
    return out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("sigartifact")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    return imagekit.rootfs_tar(rootfs, str(d / "a.tar.gz"), "gzip")


def sign(artifact, sec, legacy=False, comment="berth test build 42"):
    sig = artifact + (".legacy" if legacy else "") + ".minisig"
    subprocess.run(["minisign", "-S", *(["-l"] if legacy else []), "-s", sec, "-m", artifact,
                    "-x", sig, "-t", comment], check=True, capture_output=True)
    with open(sig) as f:
        return f.read()


def serve(srv, artifact, sig_text, data=None):
    with open(artifact, "rb") as f:
        real = f.read()
    digest = srv.add("/a.tar.gz", data if data is not None else real)
    srv.add("/a.tar.gz.minisig", sig_text.encode())
    return digest


def fetch(berth, srv, digest, pubkey):
    return berth.run("fetch", srv.url("/a.tar.gz"), "--digest", f"sha256:{digest}",
                     "--signature", srv.url("/a.tar.gz.minisig"), "--public-key", pubkey,
                     "--retry-delay", "10ms")


def nothing_added(berth):
    return imagekit.store_view(berth.root) == []


@pytest.mark.parametrize("legacy", [False, True], ids=["prehashed", "legacy"])
def test_real_minisign_signature_verifies(berth, keys, artifact, legacy):
    pub, sec, line = keys["good"]
    text = sign(artifact, sec, legacy)
    alg = base64.b64decode(text.splitlines()[1])[:2]
    assert alg == (b"Ed" if legacy else b"ED"), "minisign wrote the expected algorithm"
    # the tool itself agrees
    subprocess.run(["minisign", "-V", "-p", pub, "-m", artifact, "-x",
                    artifact + (".legacy" if legacy else "") + ".minisig"], check=True,
                   capture_output=True)
    with FaultServer() as srv:
        digest = serve(srv, artifact, text)
        r = fetch(berth, srv, digest, line)
        assert r.returncode == 0, r.stderr
        assert f"blobs/sha256/{digest}" in imagekit.store_view(berth.root)


def test_public_key_file_accepted(berth, keys, artifact):
    pub, sec, _ = keys["good"]
    with FaultServer() as srv:
        digest = serve(srv, artifact, sign(artifact, sec))
        r = fetch(berth, srv, digest, pub)
        assert r.returncode == 0, r.stderr


def test_tampered_artifact_rejected(berth, keys, artifact):
    _, sec, line = keys["good"]
    text = sign(artifact, sec)
    with open(artifact, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with FaultServer() as srv:
        # the digest pinned is the tampered file's: only the signature can tell
        digest = serve(srv, artifact, text, bytes(data))
        r = fetch(berth, srv, digest, line)
        assert r.returncode == 1
        assert "signature verification failed" in r.stderr
        assert nothing_added(berth)


def test_wrong_key_rejected(berth, keys, artifact):
    _, sec, _ = keys["good"]
    other = keys["other"][2]
    with FaultServer() as srv:
        digest = serve(srv, artifact, sign(artifact, sec))
        r = fetch(berth, srv, digest, other)
        assert r.returncode == 1
        assert "signature made with key" in r.stderr and "trusted key" in r.stderr
        assert nothing_added(berth)


def test_tampered_trusted_comment_rejected(berth, keys, artifact):
    _, sec, line = keys["good"]
    lines = sign(artifact, sec, comment="release 1.0").splitlines()
    assert lines[2] == "trusted comment: release 1.0"
    lines[2] = "trusted comment: release 9.9"
    with FaultServer() as srv:
        digest = serve(srv, artifact, "\n".join(lines) + "\n")
        r = fetch(berth, srv, digest, line)
        assert r.returncode == 1
        assert "trusted comment" in r.stderr
        assert nothing_added(berth)


def test_missing_signature_is_an_error(berth, keys, artifact):
    _, _, line = keys["good"]
    with FaultServer() as srv:
        with open(artifact, "rb") as f:
            digest = srv.add("/a.tar.gz", f.read())
        r = fetch(berth, srv, digest, line)
        assert r.returncode == 1
        assert "a.tar.gz.minisig" in r.stderr and "404" in r.stderr
        assert nothing_added(berth)


def test_garbage_public_key_rejected(berth, keys, artifact):
    _, sec, _ = keys["good"]
    with FaultServer() as srv:
        digest = serve(srv, artifact, sign(artifact, sec))
        r = fetch(berth, srv, digest, "RWnotakey")
        assert r.returncode == 1
        assert "public key" in r.stderr
        assert nothing_added(berth)
