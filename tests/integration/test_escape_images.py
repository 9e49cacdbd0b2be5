"""The image server and the image's author as attackers (issue 15, the
image side): real exploits against the real berth and real HTTP(S) servers
on 127.0.0.1, each beside a positive control that shows the same path
working with benign input.

- An endless response on a small tmpfs root never eats into the free-space
  reserve; a maximum artifact size and the declared Content-Length bound
  every download; no partial file outlives a failed fetch.
- An https URL is never redirected to http.
- The unpacker that parses bytes not yet verified is chrooted into its
  target, with no_new_privs, a seccomp filter and only the capabilities
  extraction needs (read from /proc/PID while it parses a slow download).
- index.json / manifest.json of an archive that are a symlink to a host
  file or a FIFO are refused, neither read nor blocking.
"""
import hashlib
import io
import os
import subprocess
import tarfile
import threading
import time

import pytest

import imagekit
from conftest import Berth
from faultserver import FaultServer

MiB = 1 << 20
FAKE_DIGEST = "sha256:" + hashlib.sha256(b"never matches").hexdigest()

# CHOWN DAC_OVERRIDE FOWNER FSETID SETFCAP
UNPACKER_CAPS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 31)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("escimg")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    with open(imagekit.rootfs_tar(rootfs, str(d / "a.tar.gz"), "gzip"), "rb") as f:
        return f.read()


@pytest.fixture
def srv():
    with FaultServer() as s:
        yield s


@pytest.fixture
def small_root(tmp_path, berth_bin):
    """A berth whose --root is a 64 MiB tmpfs."""
    d = tmp_path / "tmpfs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M,mode=0700", "berth-test", str(d)],
                   check=True)
    try:
        yield Berth(berth_bin, str(d))
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def leftovers(root):
    """Partial downloads and unpacks in progress under the root."""
    out = []
    for sub in ("blobs/.partial", "images"):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            out += [f"{sub}/{n}" for n in os.listdir(d) if n.startswith(".")]
    return out


def endless_tar_prefix():
    """A tar header of a 10 GiB file: the unpacker writes what follows too."""
    info = tarfile.TarInfo("big")
    info.size = 10 << 30
    return info.tobuf(format=tarfile.GNU_FORMAT)


def fetch(berth, url, digest, *extra, timeout=120, env=None):
    return berth.run("fetch", url, "--digest", digest, "--retries", "0", *extra, timeout=timeout,
                     env=env)


class Sampler:
    """Samples a value every few ms while a process runs."""

    def __init__(self, fn, interval=0.002):
        self.fn, self.interval, self.values = fn, interval, []
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            try:
                self.values.append(self.fn())
            except OSError:
                pass
            time.sleep(self.interval)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.t.join()


# ---- downloads are bounded ------------------------------------------------

def test_endless_download_on_a_small_tmpfs_keeps_the_reserve(small_root, srv, artifact):
    root = small_root.root
    reserve = 16 * MiB
    # positive control: a real image on the same filesystem with the same reserve
    digest = srv.add("/good.tar.gz", artifact)
    r = fetch(small_root, srv.url("/good.tar.gz"), f"sha256:{digest}", "--min-free-space", "16M")
    assert r.returncode == 0, r.stderr
    before = free_bytes(root)

    srv.add("/endless", b"")
    srv.script("/endless", [{"endless": endless_tar_prefix()}])
    p = small_root.popen("fetch", srv.url("/endless"), "--digest", FAKE_DIGEST, "--retries", "0",
                         "--min-free-space", "16M")
    with Sampler(lambda: free_bytes(root)) as s:
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("the endless download did not stop")
    assert p.returncode == 1, err
    assert "stopped before the disk fills" in err and "reserve of 16.0 MiB" in err, err
    assert len(s.values) > 10
    assert min(s.values) >= reserve, f"free space fell to {min(s.values)} (reserve {reserve})"
    # it did fill up to the reserve (the exploit ran), then let go of all of it
    assert min(s.values) < before - 16 * MiB
    assert leftovers(root) == []
    assert abs(free_bytes(root) - before) < MiB
    assert imagekit.store_view(root) == [f"blobs/sha256/{digest}", f"images/{digest}"]


def test_default_reserve_refuses_a_disk_that_is_nearly_full(small_root, srv, artifact):
    """The default keeps max(64 MiB, 5%) free: a 64 MiB filesystem has no room."""
    digest = srv.add("/good.tar.gz", artifact)
    r = fetch(small_root, srv.url("/good.tar.gz"), f"sha256:{digest}")
    assert r.returncode == 1
    assert "reserve of 64.0 MiB" in r.stderr and "max(64.0 MiB, 5%)" in r.stderr, r.stderr
    assert leftovers(small_root.root) == [] and imagekit.store_view(small_root.root) == []
    # the host setting, as the systemd unit would set it
    env = dict(os.environ, BERTH_MIN_FREE_SPACE="8M")
    r = fetch(small_root, srv.url("/good.tar.gz"), f"sha256:{digest}", env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_endless_download_stops_at_the_maximum_artifact_size(berth, srv, artifact, how):
    digest = srv.add("/good.tar.gz", artifact)
    srv.add("/endless", b"")
    srv.script("/endless", [{"endless": b""}])
    extra, env = (["--max-artifact-size", "4M"], None) if how == "flag" else \
        ([], dict(os.environ, BERTH_MAX_ARTIFACT_SIZE="4M"))
    r = fetch(berth, srv.url("/endless"), FAKE_DIGEST, *extra, env=env, timeout=60)
    assert r.returncode == 1
    assert "maximum artifact size of 4.0 MiB" in r.stderr, r.stderr
    assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == []
    # positive control: an artifact below the limit
    r = fetch(berth, srv.url("/good.tar.gz"), f"sha256:{digest}", *extra, env=env)
    assert r.returncode == 0, r.stderr


def test_declared_size_above_the_maximum_is_refused_before_any_byte(berth, srv, artifact):
    digest = srv.add("/good.tar.gz", artifact)
    limit = len(artifact) // 2
    r = fetch(berth, srv.url("/good.tar.gz"), f"sha256:{digest}", "--max-artifact-size",
              str(limit))
    assert r.returncode == 1
    assert f"the server declares" in r.stderr and f"({len(artifact)} bytes)" in r.stderr, r.stderr
    assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == []
    r = fetch(berth, srv.url("/good.tar.gz"), f"sha256:{digest}", "--max-artifact-size",
              str(len(artifact)))
    assert r.returncode == 0, r.stderr


def partial_sizes(root):
    d = os.path.join(root, "blobs/.partial")
    return max([os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)] or [0]) \
        if os.path.isdir(d) else 0


@pytest.mark.parametrize("lie", ["lie_length", "chunked_lie"])
def test_no_more_than_the_declared_content_length(berth, srv, artifact, lie):
    """The server declares a Content-Length and sends far more (plainly, or
    in chunks beside Transfer-Encoding, where curl would ignore it)."""
    declared = 4096
    big = artifact + bytes(16 * MiB)
    digest = srv.add("/a", big)
    srv.script("/a", [{lie: declared}])
    with Sampler(lambda: partial_sizes(berth.root)) as s:
        r = fetch(berth, srv.url("/a"), f"sha256:{digest}")
    assert r.returncode == 1
    assert max(s.values or [0]) <= declared, f"{max(s.values)} bytes written, {declared} declared"
    if lie == "chunked_lie":
        assert "more than the 4096 bytes its Content-Length declared" in r.stderr, r.stderr
    else:  # curl stops at the declared length: what arrived is not the artifact
        assert "digest mismatch" in r.stderr, r.stderr
    assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == []
    # positive control: the honest length
    r = fetch(berth, srv.url("/a"), f"sha256:{digest}", "--format", "rootfs")
    assert r.returncode == 0, r.stderr


# ---- https never redirects to http ----------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    imagekit.need("openssl")
    d = tmp_path_factory.mktemp("pki")
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True,  # noqa: E731
                                    capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key")}


def test_https_never_redirects_to_http(berth, pki, srv, artifact):
    with FaultServer(tls=(pki["server.pem"], pki["server.key"], None)) as tls:
        digest = tls.add("/a.tar.gz", artifact)
        srv.add("/a.tar.gz", artifact)
        tls.redirect("/down", srv.url("/a.tar.gz"))
        r = fetch(berth, tls.url("/down"), f"sha256:{digest}", "--cacert", pki["ca.pem"])
        assert r.returncode == 1
        assert "refused a redirect from https to 'http://127.0.0.1" in r.stderr, r.stderr
        assert srv.gets("/a.tar.gz") == [], "the http server was asked"
        assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == []
        # positive controls: https to https, and http to http
        tls.redirect("/same", tls.url("/a.tar.gz"))
        r = fetch(berth, tls.url("/same"), f"sha256:{digest}", "--cacert", pki["ca.pem"])
        assert r.returncode == 0, r.stderr
        srv.redirect("/plain", srv.url("/a.tar.gz"))
        r = Berth(berth.binary, berth.root + "2")
        os.makedirs(r.root)
        r = fetch(r, srv.url("/plain"), f"sha256:{digest}")
        assert r.returncode == 0, r.stderr


# ---- the unpacker is confined ---------------------------------------------

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def unpackers_of(pid):
    """Descendants of `pid` named berth-unpack."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                with open(f"/proc/{k}/comm") as f:
                    if f.read().strip() == "berth-unpack":
                        found.append(k)
            except OSError:
                pass
        todo += kids
    return found


def test_unpacker_of_a_slow_download_is_confined(berth, srv, tmp_path):
    rootfs = imagekit.busybox_rootfs(str(tmp_path / "rootfs"))
    tar = imagekit.rootfs_tar(rootfs, str(tmp_path / "a.tar"), "none")
    with open(tar, "rb") as f:
        data = f.read()
    digest = srv.add("/slow.tar", data)
    srv.script("/slow.tar", [{"trickle": (len(data) // 40 + 1, 0.1)}])  # about 4 s
    p = berth.popen("fetch", srv.url("/slow.tar"), "--digest", f"sha256:{digest}",
                    "--retries", "0")
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None and not seen:
        for pid in unpackers_of(p.pid):
            try:
                st = proc_status(pid)
                root = os.readlink(f"/proc/{pid}/root")
                fds = {int(n): os.readlink(f"/proc/{pid}/fd/{n}")
                       for n in os.listdir(f"/proc/{pid}/fd")}
            except OSError:
                continue
            if st.get("Seccomp") == "2":  # confined by now (not just forked)
                seen = (pid, st, root, fds)
                break
        time.sleep(0.01)
    out, err = p.communicate(timeout=60)
    assert seen, "no unpacker seen while the download trickled"
    pid, st, root, fds = seen
    assert int(st["CapEff"], 16) == UNPACKER_CAPS, st["CapEff"]
    assert int(st["CapPrm"], 16) == UNPACKER_CAPS, st["CapPrm"]
    assert int(st["CapBnd"], 16) == UNPACKER_CAPS, st["CapBnd"]
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    # chrooted into its target: the stream directory of the unpack in progress
    assert root != "/"
    assert root.startswith(os.path.join(berth.root, "images/.tmp-")) and \
        root.endswith("/stream"), root
    # nothing open but the stream, its tree, the verdict pipe and /dev/null
    assert sorted(fds) == [0, 1, 2, 3, 4, 5], fds
    assert fds[0] == fds[1] == "/dev/null"
    assert fds[3].startswith("socket:") and fds[4] == root, fds
    # positive control: the same unpacker produced the image
    assert p.returncode == 0, err
    assert imagekit.tree(os.path.join(berth.root, "images", digest, "rootfs", "srv")) == \
        imagekit.tree(os.path.join(rootfs, "srv"))


def test_unpacker_runs_no_external_programs(berth, srv, tmp_path):
    """An lzop-compressed artifact: filter_all would run `lzop -d`."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x\n")
    plain = tmp_path / "a.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(plain), "."], check=True)
    # the lzop magic in front: without the built-in filters only, libarchive
    # would look for the program
    data = b"\x89LZO\x00\r\n\x1a\n" + plain.read_bytes()
    digest = srv.add("/a.tar.lzo", data)
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "ran"
    (fake / "lzop").write_text(f"#!/bin/sh\ntouch {marker}\nexec cat\n")
    (fake / "lzop").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    r = fetch(berth, srv.url("/a.tar.lzo"), f"sha256:{digest}", env=env)
    assert r.returncode == 1
    assert not marker.exists(), "an external decompressor ran"
    assert leftovers(berth.root) == []


# ---- the image's JSON files stay inside the artifact ----------------------

@pytest.fixture(scope="module")
def oci_tar(tmp_path_factory):
    d = tmp_path_factory.mktemp("ocijson")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    layout = imagekit.oci_layout(rootfs, str(d))
    return imagekit.oci_archive(layout, str(d / "image.tar"))


@pytest.fixture(scope="module")
def docker_tar(tmp_path_factory):
    d = tmp_path_factory.mktemp("dockerjson")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    return imagekit.docker_archive(rootfs, str(d / "image.tar"), str(d))


def replace_member(src, name, make):
    """The archive `src` with member `name` replaced by make(TarInfo, data)."""
    out = io.BytesIO()
    with tarfile.open(src) as t, tarfile.open(fileobj=out, mode="w",
                                              format=tarfile.PAX_FORMAT) as o:
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else None
            if m.name.lstrip("./") == name:
                m, data = make(m, data)
            o.addfile(m, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def as_symlink(target):
    def make(m, data):
        info = tarfile.TarInfo(m.name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return info, None
    return make


def as_fifo(m, data):
    info = tarfile.TarInfo(m.name)
    info.type = tarfile.FIFOTYPE
    return info, None


def json_of(src, name):
    with tarfile.open(src) as t:
        for m in t.getmembers():
            if m.name.lstrip("./") == name:
                return t.extractfile(m).read()


@pytest.mark.parametrize("kind,name", [("oci", "index.json"), ("docker", "manifest.json")])
def test_image_json_symlink_to_a_host_file_is_not_read(berth, srv, tmp_path, oci_tar, docker_tar,
                                                       kind, name):
    src = oci_tar if kind == "oci" else docker_tar
    # the host file holds exactly the real index.json: if berth followed the
    # symlink, the image would unpack and the fetch would succeed
    secret = tmp_path / "host" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(json_of(src, name))
    evil = replace_member(src, name, as_symlink(str(secret)))
    digest = srv.add("/evil.tar", evil)
    r = fetch(berth, srv.url("/evil.tar"), f"sha256:{digest}", "--format", kind)
    assert r.returncode == 1, "the symlinked host file was read"
    assert f"refusing '{name}' in the image: it is a symlink" in r.stderr, r.stderr
    assert secret.read_bytes()[:20].decode() not in r.stderr
    assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == \
        [f"blobs/sha256/{digest}"]
    # positive control: the same archive with the real file
    with open(src, "rb") as f:
        good = f.read()
    gdigest = srv.add("/good.tar", good)
    r = fetch(berth, srv.url("/good.tar"), f"sha256:{gdigest}", "--format", kind)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kind,name", [("oci", "index.json"), ("docker", "manifest.json")])
def test_image_json_fifo_does_not_block(berth, srv, oci_tar, docker_tar, kind, name):
    src = oci_tar if kind == "oci" else docker_tar
    evil = replace_member(src, name, as_fifo)
    digest = srv.add("/fifo.tar", evil)
    start = time.monotonic()
    r = fetch(berth, srv.url("/fifo.tar"), f"sha256:{digest}", "--format", kind, timeout=30)
    assert time.monotonic() - start < 30
    assert r.returncode == 1
    assert f"refusing '{name}' in the image: not a regular file" in r.stderr, r.stderr
    assert leftovers(berth.root) == []


def test_apply_bounds_its_downloads_too(berth, srv, tmp_path, image):
    """berth apply takes the same bounds: an endless image fails that service
    alone, with nothing left behind."""
    from conftest import services_yaml
    srv.add("/endless", b"")
    srv.script("/endless", [{"endless": b""}] * 3)
    f = tmp_path / "services.yaml"
    f.write_text(services_yaml({"web": {"image": {"url": srv.url("/endless"),
                                                  "digest": FAKE_DIGEST, "format": "rootfs"},
                                        "command": ["/bin/true"], "restart": "never"}}))
    r = berth.run("apply", "-f", str(f), "--max-artifact-size", "4M", timeout=60)
    assert r.returncode == 1
    assert "maximum artifact size of 4.0 MiB" in r.stdout + r.stderr, r.stdout + r.stderr
    assert leftovers(berth.root) == [] and imagekit.store_view(berth.root) == []
    assert berth.run("apply", "-f", str(f), "--min-free-space", "bogus").returncode == 2
