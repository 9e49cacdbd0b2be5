"""Images from OCI registries: Debian's real docker-registry started here on
127.0.0.1 (anonymous, and with htpasswd Basic auth), images built with
umoci and pushed with skopeo (OCI, Docker schema 2, a multi-platform
index), pulled by `berth pin`, `berth fetch` and `berth apply`.

Each registry writes an access log (one line per completed request), from
which the tests count the downloads of each blob."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import imagekit
from conftest import Host, make_rootfs, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry serving its own storage directory on 127.0.0.1."""

    def __init__(self, workdir, htpasswd=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.storage = os.path.join(self.dir, "storage")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = os.path.join(self.dir, "registry.log")
        auth = ""
        if htpasswd:
            auth = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
        self.configure(auth)
        self.proc = None

    def configure(self, auth=""):
        """(Re)write the configuration; `auth` is the YAML of its auth: block."""
        with open(os.path.join(self.dir, "config.yml"), "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: warn\n  accesslog:\n    disabled: false\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
                    "  delete:\n    enabled: true\n"
                    f"http:\n  addr: {self.host}\n  secret: berth-test\n{auth}")

    def start(self):
        imagekit.need("docker-registry")
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(["docker-registry", "serve",
                                      os.path.join(self.dir, "config.yml")],
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

        def up():  # no event says "listening": ask it, with a deadline
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited: {open(self.log).read()}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return True
            except urllib.error.HTTPError as e:
                return e.code == 401
            except OSError:
                return False
        wait_for(up, timeout=20, what="docker-registry to answer")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def push(self, layout, tag, repo, fmt=None, all_=False, creds=None):
        imagekit.need("skopeo")
        args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if fmt:
            args += ["--format", fmt]
        if all_:
            args += ["--all"]
        if creds:
            args += ["--dest-creds", creds]
        r = subprocess.run(args + [f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def blob_gets(self, hexdigest):
        """Completed GETs of a blob, from the access log."""
        with open(self.log) as f:
            return sum(1 for line in f if '"GET ' in line and f"/blobs/sha256:{hexdigest}" in line)

    def blob_path(self, hexdigest):
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexdigest[:2],
                            hexdigest, "data")


# --- images ------------------------------------------------------------------

def umoci(*args):
    r = subprocess.run(["umoci", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def read_json(layout, hexdigest):
    with open(os.path.join(layout, "blobs/sha256", hexdigest)) as f:
        return json.load(f)


def tag_manifest(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        for m in json.load(f)["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return m
    raise AssertionError(f"no tag {tag} in {layout}")


def add_variant(layout, workdir, tag, which, arch=None, size=0):
    """Tag `tag`: the base plus a layer holding /etc/which (and /big, `size`
    random bytes, when asked)."""
    umoci("config", "--image", f"{layout}:base", "--tag", tag)
    src = os.path.join(workdir, f"which-{tag}")
    with open(src, "w") as f:
        f.write(which + "\n")
    umoci("insert", "--image", f"{layout}:{tag}", src, "/etc/which")
    if size:
        big = os.path.join(workdir, f"big-{tag}")
        with open(big, "wb") as f:
            f.write(os.urandom(size))
        umoci("insert", "--image", f"{layout}:{tag}", big, "/big")
    if arch:
        umoci("config", "--image", f"{layout}:{tag}", "--architecture", arch)


def add_index(layout, tag, tags_platforms):
    """Tag `tag`: an OCI image index over the manifests of other tags."""
    entries = []
    for t, arch in tags_platforms:
        d = dict(tag_manifest(layout, t))
        d.pop("annotations", None)
        d["platform"] = {"architecture": arch, "os": "linux"}
        entries.append(d)
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": entries}).encode()
    hexdigest = imagekit.hashlib.sha256(body).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", hexdigest), "wb") as f:
        f.write(body)
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": f"sha256:{hexdigest}", "size": len(body),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    return hexdigest


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """One layout: tag base (busybox), a, b, c (base + a small layer each),
    big (base + 32 MiB), arm (base + a layer, arm64) and multi (an index of
    a for amd64 and arm for arm64)."""
    imagekit.need("umoci")
    d = str(tmp_path_factory.mktemp("registry-images"))
    lay = os.path.join(d, "layout")
    umoci("init", "--layout", lay)
    umoci("new", "--image", f"{lay}:base")
    bundle = os.path.join(d, "bundle")
    umoci("unpack", "--image", f"{lay}:base", bundle)
    shutil.rmtree(os.path.join(bundle, "rootfs"))
    make_rootfs(os.path.join(bundle, "rootfs"))
    umoci("repack", "--image", f"{lay}:base", bundle)
    umoci("config", "--image", f"{lay}:base", "--config.cmd", "/bin/sh",
          "--config.cmd", "-c", "--config.cmd", "cat /etc/which; exec sleep 1000")
    for t in ("a", "b", "c"):
        add_variant(lay, d, t, f"image {t}")
    add_variant(lay, d, "big", "image big", size=32 << 20)
    add_variant(lay, d, "arm", "image arm64", arch="arm64")
    add_index(lay, "multi", [("arm", "arm64"), ("a", "amd64")])
    return lay


def layers(layout, tag):
    m = read_json(layout, tag_manifest(layout, tag)["digest"][7:])
    return [x["digest"][7:] for x in m["layers"]]


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "registry").start()
    yield reg
    reg.stop()


def pin(berth, url, *extra):
    r = berth.run("pin", url, *extra, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "image:"
    block = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert block["url"].endswith("@" + block["digest"]), block
    return block


def logs(berth, name):
    r = berth.run("logs", name)
    return r.stdout if r.returncode == 0 else ""


def running(host, name, text):
    wait_for(lambda: text in logs(host.berth, name), timeout=30, what=f"'{text}' from {name}")
    assert host.status()[name]["state"] == "running"
    return host.status()[name]["pid"]


@pytest.fixture
def reghost(berth, tmp_path):
    h = Host(berth, None, tmp_path)
    yield h
    h.teardown()


def image_block(block):
    return {"url": block["url"], "digest": block["digest"]}


# --- tests -------------------------------------------------------------------

def test_oci_and_docker_schema2_images_run_from_a_registry(reghost, registry, layout):
    registry.push(layout, "a", "team/a:1")
    registry.push(layout, "b", "team/b:1", fmt="v2s2")
    ba = pin(reghost.berth, f"oci+http://{registry.host}/team/a:1")
    bb = pin(reghost.berth, f"oci+http://{registry.host}/team/b:1")
    # the digests are the manifests' as the registry serves them
    assert ba["digest"] == tag_manifest(layout, "a")["digest"]
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{registry.host}/v2/team/b/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
        assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert "sha256:" + imagekit.hashlib.sha256(r.read()).hexdigest() == bb["digest"]
    reghost.write({"a": {"image": image_block(ba)}, "b": {"image": image_block(bb)}})
    r = reghost.apply()
    assert r.returncode == 0, r.stderr
    running(reghost, "a", "image a")
    running(reghost, "b", "image b")
    # the image's config gave the command; the layers are blobs of the store
    store = os.listdir(os.path.join(reghost.berth.root, "blobs/sha256"))
    for hexdigest in layers(layout, "a") + layers(layout, "b"):
        assert hexdigest in store


def test_index_picks_this_platform(berth, registry, layout):
    registry.push(layout, "multi", "team/multi:1", all_=True)
    url = f"oci+http://{registry.host}/team/multi:1"
    per_host = pin(berth, url)
    assert per_host["digest"] == tag_manifest(layout, "a")["digest"]  # amd64's, not arm64's
    whole = pin(berth, url, "--index")
    assert whole["digest"] == tag_manifest(layout, "multi")["digest"]
    # pulled by the index's digest: the amd64 manifest's layers, not arm64's
    r = berth.run("fetch", whole["url"])
    assert r.returncode == 0, r.stderr
    rootfs = r.stdout.split()[1]
    with open(os.path.join(rootfs, "etc/which")) as f:
        assert f.read() == "image a\n"
    r = berth.run("run", whole["digest"], "--", "/bin/cat", "/etc/which")
    assert r.returncode == 0 and r.stdout == "image a\n", r.stderr


def test_shared_base_layer_is_downloaded_once_and_kept_by_gc(reghost, registry, layout):
    registry.push(layout, "a", "team/a:1")
    registry.push(layout, "c", "team/c:1")
    base = layers(layout, "base")[0]
    assert layers(layout, "a")[0] == base == layers(layout, "c")[0]
    ba = pin(reghost.berth, f"oci+http://{registry.host}/team/a:1")
    reghost.write({"a": {"image": image_block(ba)}})
    assert reghost.apply().returncode == 0
    assert registry.blob_gets(base) == 1
    bc = pin(reghost.berth, f"oci+http://{registry.host}/team/c:1")
    reghost.write({"c": {"image": image_block(bc)}})
    r = reghost.apply()
    assert r.returncode == 0, r.stderr
    running(reghost, "c", "image c")
    # c's own layer came over, the base did not come again
    assert registry.blob_gets(layers(layout, "c")[-1]) == 1
    assert registry.blob_gets(base) == 1
    # a is gone: gc removes a's image and its own layer, keeps what c uses
    r = reghost.berth.run("gc")
    assert r.returncode == 0, r.stderr
    store = os.listdir(os.path.join(reghost.berth.root, "blobs/sha256"))
    assert base in store and layers(layout, "c")[-1] in store
    assert layers(layout, "a")[-1] not in store
    assert ba["digest"][7:] not in os.listdir(os.path.join(reghost.berth.root, "images"))
    assert bc["digest"][7:] in os.listdir(os.path.join(reghost.berth.root, "images"))


def test_corrupted_layer_is_refused_and_the_old_version_keeps_running(reghost, registry,
                                                                      layout):
    registry.push(layout, "a", "team/web:1")
    registry.push(layout, "c", "team/web:2")
    v1 = pin(reghost.berth, f"oci+http://{registry.host}/team/web:1")
    reghost.write({"web": {"image": image_block(v1)}})
    assert reghost.apply().returncode == 0
    pid = running(reghost, "web", "image a")
    before = imagekit.store_view(reghost.berth.root)
    # version 2's own layer, flipped in the registry's storage
    top = layers(layout, "c")[-1]
    path = registry.blob_path(top)
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)
    v2 = {"url": f"oci+http://{registry.host}/team/web@{tag_manifest(layout, 'c')['digest']}",
          "digest": tag_manifest(layout, "c")["digest"]}
    reghost.write({"web": {"image": v2}})
    r = reghost.apply()
    assert r.returncode == 1
    out = r.stdout + r.stderr  # apply reports each service on stdout
    assert f"sha256:{top}" in out and "digest mismatch" in out, out
    assert reghost.status()["web"]["pid"] == pid
    assert reghost.status()["web"]["state"] == "running"
    assert imagekit.store_view(reghost.berth.root) == before
    # positive control: the same pull once the blob is whole again
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    r = reghost.apply()
    assert r.returncode == 0, r.stderr
    running(reghost, "web", "image c")


def test_a_wrong_manifest_digest_is_refused_before_any_layer(berth, registry, layout):
    registry.push(layout, "a", "team/a:1")
    real = tag_manifest(layout, "a")["digest"]
    wrong = "sha256:" + "0" * 64
    # the registry has no such manifest
    r = berth.run("fetch", f"oci+http://{registry.host}/team/a@{wrong}", "--retries", "0")
    assert r.returncode == 1 and wrong in r.stderr, r.stderr
    # the registry's copy of the manifest changed (still valid JSON): what it
    # serves under the digest is not what the digest names
    path = registry.blob_path(real[7:])
    with open(path, "rb") as f:
        good = f.read()
    with open(path, "ab") as f:
        f.write(b" \n")
    r = berth.run("fetch", f"oci+http://{registry.host}/team/a@{real}")
    assert r.returncode == 1
    assert f"not the {real} asked for" in r.stderr, r.stderr
    assert all(registry.blob_gets(h) == 0 for h in layers(layout, "a"))
    assert imagekit.store_view(berth.root) == []
    # positive control: the manifest as pushed
    with open(path, "wb") as f:
        f.write(good)
    r = berth.run("fetch", f"oci+http://{registry.host}/team/a@{real}")
    assert r.returncode == 0, r.stderr


class CuttingProxy:
    """TCP forwarding to the registry that kills the registry once `limit`
    bytes of a response for `path` went through: the registry stopped
    half-way through a pull."""

    def __init__(self, registry, path, limit, stall=False):
        self.registry, self.path, self.limit, self.stall = registry, path, limit, stall
        self.closed = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.cut = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.registry.port))
        except OSError:
            c.close()
            return
        req = c.recv(65536)
        watched = self.path.encode() in req
        u.sendall(req)
        threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
        sent = 0
        while True:
            data = u.recv(65536)
            if not data:
                break
            if watched and sent + len(data) > self.limit:
                self.cut.set()
                if self.stall:  # the connection stays, nothing more comes
                    self.closed.wait()
                else:
                    self.registry.stop()
                break
            c.sendall(data)
            sent += len(data)
        for s in (c, u):  # shutdown: the pump thread's recv holds the sockets open
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pump(self, c, u):
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                u.sendall(data)
        except OSError:
            pass

    def close(self):
        self.closed.set()
        self.sock.close()


def test_registry_stopped_half_way_leaves_no_partial_image(reghost, registry, layout):
    registry.push(layout, "a", "team/web:1")
    registry.push(layout, "big", "team/web:2")
    v1 = pin(reghost.berth, f"oci+http://{registry.host}/team/web:1")
    reghost.write({"web": {"image": image_block(v1)}})
    assert reghost.apply().returncode == 0
    pid = running(reghost, "web", "image a")
    before = imagekit.store_view(reghost.berth.root)
    big = layers(layout, "big")[-1]
    proxy = CuttingProxy(registry, f"/blobs/sha256:{big}", 4 << 20)
    digest = tag_manifest(layout, "big")["digest"]
    reghost.write({"web": {"image": {"url": f"oci+http://{proxy.host}/team/web@{digest}",
                                     "digest": digest}}})
    try:
        r = reghost.apply("--retries", "1", "--retry-delay", "100ms")
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert r.returncode == 1
    out = r.stdout + r.stderr
    # the error names the registry and a blob of v2 (the big layer, or one
    # that was in flight beside it when the registry went)
    config = read_json(layout, digest[7:])["config"]["digest"]
    assert proxy.host in out and "blob sha256:" in out, out
    assert any(f"blob sha256:{h}" in out for h in layers(layout, "big")[1:] + [config[7:]]), out
    assert reghost.status()["web"]["pid"] == pid
    assert imagekit.store_view(reghost.berth.root) == before
    # what came is kept only where the next pull resumes it
    partial = os.listdir(os.path.join(reghost.berth.root, "blobs/.partial"))
    assert all(n.startswith(".resume-") for n in partial), partial


def blob_responses(log, hexdigest, since=0):
    """(status, bytes) of each completed GET of a blob in the access log
    after byte `since` of it."""
    import re
    with open(log) as f:
        f.seek(since)
        lines = f.read().splitlines()
    pat = re.compile(r'"GET [^"]*/blobs/sha256:' + hexdigest + r' [^"]*" (\d+) (\d+)')
    return [(int(m.group(1)), int(m.group(2))) for m in map(pat.search, lines) if m]


def test_an_interrupted_blob_resumes_with_range(berth, registry, layout):
    """The registry killed 8 MiB into the 32 MiB layer; the next pull asks
    for the rest only (Range), and the image verifies."""
    registry.push(layout, "big", "team/web:2")
    digest = tag_manifest(layout, "big")["digest"]
    big = layers(layout, "big")[-1]
    size = os.path.getsize(registry.blob_path(big))
    proxy = CuttingProxy(registry, f"/blobs/sha256:{big}", 8 << 20)
    try:
        r = berth.run("fetch", f"oci+http://{proxy.host}/team/web@{digest}", "--retries", "0")
    finally:
        proxy.close()
    assert proxy.cut.is_set() and r.returncode == 1, r.stderr
    assert imagekit.store_view(berth.root) == []
    resume = os.path.join(berth.root, "blobs/.partial", f".resume-{big}")
    got = os.path.getsize(resume)
    assert 0 < got <= 8 << 20
    registry.start()
    since = os.path.getsize(registry.log)
    r = berth.run("fetch", f"oci+http://{registry.host}/team/web@{digest}")
    assert r.returncode == 0, r.stderr
    assert blob_responses(registry.log, big, since) == [(206, size - got)]
    assert imagekit.sha256_file(os.path.join(berth.root, "blobs/sha256", big)) == big
    with open(os.path.join(r.stdout.split()[1], "etc/which")) as f:
        assert f.read() == "image big\n"
    assert not os.path.exists(resume)


def test_a_wrong_resumed_prefix_is_fetched_again_whole(berth, registry, layout):
    """A resume file whose bytes are not the blob's (a bad earlier server):
    the resumed blob mismatches, and berth fetches it once more from byte
    0 rather than fail."""
    registry.push(layout, "big", "team/web:2")
    digest = tag_manifest(layout, "big")["digest"]
    big = layers(layout, "big")[-1]
    size = os.path.getsize(registry.blob_path(big))
    pdir = os.path.join(berth.root, "blobs/.partial")
    os.makedirs(pdir)
    with open(os.path.join(pdir, f".resume-{big}"), "wb") as f:
        f.write(os.urandom(1 << 20))
    r = berth.run("fetch", f"oci+http://{registry.host}/team/web@{digest}")
    assert r.returncode == 0, r.stderr
    assert blob_responses(registry.log, big) == [(206, size - (1 << 20)), (200, size)]
    assert imagekit.sha256_file(os.path.join(berth.root, "blobs/sha256", big)) == big
    # gc removes what no pull holds
    with open(os.path.join(pdir, f".resume-{'0' * 64}"), "wb") as f:
        f.write(b"x")
    assert berth.run("gc").returncode == 0
    assert os.listdir(pdir) == []


# --- stalls ------------------------------------------------------------------

def test_a_registry_stalling_in_a_blob_is_left_for_the_next_mirror(reghost, registry, layout):
    """The first registry (a relay) stalls after 1 MiB of the big layer,
    headers sent; with the default stall timeout (30 s) the pull moves to
    the mirror and the service runs well within a minute."""
    registry.push(layout, "big", "team/web:2")
    digest = tag_manifest(layout, "big")["digest"]
    big = layers(layout, "big")[-1]
    proxy = CuttingProxy(registry, f"/blobs/sha256:{big}", 1 << 20, stall=True)
    reghost.write({"web": {"image": {
        "url": f"oci+http://{proxy.host}/team/web@{digest}",
        "mirrors": [f"oci+http://{registry.host}/team/web@{digest}"], "digest": digest}}})
    try:
        t0 = time.monotonic()
        r = reghost.apply()
        elapsed = time.monotonic() - t0
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert r.returncode == 0, r.stdout + r.stderr
    assert 29 <= elapsed < 45, elapsed
    running(reghost, "web", "image big")
    assert not os.listdir(os.path.join(reghost.berth.root, "blobs/.partial"))


def test_a_stalled_registry_is_named_with_the_url_and_how_long(berth, registry, layout):
    registry.push(layout, "big", "team/web:2")
    digest = tag_manifest(layout, "big")["digest"]
    big = layers(layout, "big")[-1]
    proxy = CuttingProxy(registry, f"/blobs/sha256:{big}", 1 << 20, stall=True)
    try:
        t0 = time.monotonic()
        r = berth.run("fetch", f"oci+http://{proxy.host}/team/web@{digest}",
                      "--stall-timeout", "2s", "--retries", "0")
        elapsed = time.monotonic() - t0
    finally:
        proxy.close()
    assert r.returncode == 1
    assert (f"'http://{proxy.host}/v2/team/web/blobs/sha256:{big}': stalled: less than 1024 "
            "bytes/s for 2s") in r.stderr, r.stderr
    assert elapsed < 15
    assert imagekit.store_view(berth.root) == []


# --- authentication ----------------------------------------------------------

def htpasswd_file(path, user, password):
    imagekit.need("htpasswd")
    r = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(path, "w") as f:
        f.write(r.stdout)
    return str(path)


def auth_file(path, host, user, password):
    import base64
    with open(path, "w") as f:
        json.dump({"auths": {host: {"auth": base64.b64encode(
            f"{user}:{password}".encode()).decode()}}}, f)
    return str(path)


def test_basic_auth_from_registry_auth_file(reghost, tmp_path, layout):
    pw = htpasswd_file(tmp_path / "htpasswd", "berth", "s3cret")
    registry = Registry(tmp_path / "authreg", htpasswd=pw).start()
    try:
        registry.push(layout, "a", "team/a:1", creds="berth:s3cret")
        url = f"oci+http://{registry.host}/team/a@{tag_manifest(layout, 'a')['digest']}"
        # anonymous: refused, and the error says where credentials come from
        r = reghost.berth.run("fetch", url)
        assert r.returncode == 1
        assert "asks for credentials (Basic)" in r.stderr and "--registry-auth" in r.stderr, \
            r.stderr
        # wrong password: refused
        bad = auth_file(tmp_path / "bad.json", registry.host, "berth", "nope")
        r = reghost.berth.run("fetch", url, "--registry-auth", bad)
        assert r.returncode == 1 and "refused the credentials" in r.stderr, r.stderr
        assert imagekit.store_view(reghost.berth.root) == []
        # the right file, by flag for apply and by $REGISTRY_AUTH_FILE for pin
        good = auth_file(tmp_path / "auth.json", registry.host, "berth", "s3cret")
        reghost.write({"a": {"image": {"url": url,
                                       "digest": tag_manifest(layout, "a")["digest"]}}})
        r = reghost.apply("--registry-auth", good)
        assert r.returncode == 0, r.stderr
        running(reghost, "a", "image a")
        r = reghost.berth.run("pin", f"oci+http://{registry.host}/team/a:1")
        assert r.returncode == 1 and "asks for credentials" in r.stderr, r.stderr
        env = dict(os.environ, REGISTRY_AUTH_FILE=good)
        r = reghost.berth.run("pin", f"oci+http://{registry.host}/team/a:1", env=env)
        assert r.returncode == 0, r.stderr
        assert tag_manifest(layout, "a")["digest"] in r.stdout
    finally:
        registry.stop()


# --- Bearer tokens -------------------------------------------------------------

def b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """An RSA key and its self-signed certificate, made with openssl; the
    registry trusts the certificates of its rootcertbundle and finds a
    token's key by the libtrust key id in the token's "kid"."""

    def __init__(self, workdir, name):
        import base64
        self.key = os.path.join(str(workdir), f"{name}.key")
        self.cert = os.path.join(str(workdir), f"{name}.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        self.key, "-out", self.cert, "-days", "1", "-subj", f"/CN={name}"],
                       check=True, capture_output=True)
        pub = subprocess.run(["openssl", "x509", "-in", self.cert, "-noout", "-pubkey"],
                             check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             check=True, capture_output=True).stdout
        # libtrust: base32 of the first 240 bits of sha256(DER), in groups of 4
        b32 = base64.b32encode(imagekit.hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
        self.kid = ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))

    def sign(self, claims):
        head = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": self.kid}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=f"{head}.{body}".encode(), check=True,
                             capture_output=True).stdout
        return f"{head}.{body}.{b64url(sig)}"


class TokenServer:
    """A token server on 127.0.0.1 (Docker's token protocol): GET /token
    with Basic credentials answers a JWT granting pull of exactly the
    repositories in `scope`; anything else is a 401. Every request is
    recorded as (scope, service, authorised)."""

    ISSUER = "berth-test-issuer"
    SERVICE = "berth-test-registry"

    def __init__(self, key, user, password):
        import base64
        import http.server
        self.key = key
        self.requests = []
        self.expect = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import urllib.parse
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                ok = u.path == "/token" and self.headers.get("Authorization") == server.expect
                server.requests.append((q.get("scope", [None])[0], q.get("service", [None])[0],
                                        ok))
                if not ok:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                access = []
                for sc in q.get("scope", []):
                    kind, name, _ = sc.split(":")
                    access.append({"type": kind, "name": name, "actions": ["pull"]})
                now = int(time.time())
                token = server.key.sign({"iss": server.ISSUER, "sub": "berth",
                                         "aud": q.get("service", [""])[0], "exp": now + 300,
                                         "nbf": now - 5, "iat": now - 5,
                                         "jti": os.urandom(8).hex(), "access": access})
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def auth_yaml(self, bundle):
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.SERVICE}\n"
                f"    issuer: {self.ISSUER}\n    rootcertbundle: {bundle}\n")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RotatingRelay:
    """HTTP relay to the registry, one request per connection. The first
    blob request waits while the token server's signing key is rotated:
    the registry is restarted trusting only the new key, so the token berth
    holds from the manifest is refused (a real 401 with a new challenge)
    and berth must ask for a new one."""

    def __init__(self, registry, rotate):
        self.registry, self.rotate = registry, rotate
        self.lock = threading.Lock()
        self.rotated = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        with c:
            req = b""
            while b"\r\n\r\n" not in req:
                data = c.recv(65536)
                if not data:
                    return
                req += data
            head, rest = req.split(b"\r\n\r\n", 1)
            lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
            if b"/blobs/" in lines[0]:
                with self.lock:
                    if not self.rotated:
                        self.rotate()
                        self.rotated = True
            with socket.create_connection(("127.0.0.1", self.registry.port)) as u:
                u.sendall(b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + rest)
                while True:
                    data = u.recv(65536)
                    if not data:
                        break
                    c.sendall(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def token_registry(tmp_path, layout):
    """team/a and team/b pushed anonymously, then the registry behind token
    auth: tokens signed by key A, for berth:s3cret only."""
    reg = Registry(tmp_path / "tokenreg").start()
    reg.push(layout, "a", "team/a:1")
    reg.push(layout, "c", "team/b:1")
    reg.stop()
    keys = [SigningKey(tmp_path, "token-a"), SigningKey(tmp_path, "token-b")]
    bundle = str(tmp_path / "bundle.crt")
    shutil.copy(keys[0].cert, bundle)
    ts = TokenServer(keys[0], "berth", "s3cret")
    reg.configure(ts.auth_yaml(bundle))
    reg.start()
    reg.tokens, reg.keys, reg.bundle = ts, keys, bundle
    yield reg
    reg.stop()
    ts.close()


def test_bearer_token_auth_follows_the_challenge_scoped_per_repository(reghost, token_registry,
                                                                      layout, tmp_path):
    reg, ts = token_registry, token_registry.tokens
    da, db = tag_manifest(layout, "a")["digest"], tag_manifest(layout, "c")["digest"]
    url_a = f"oci+http://{reg.host}/team/a@{da}"
    url_b = f"oci+http://{reg.host}/team/b@{db}"
    # the registry really wants a token: anonymous and Basic both get the challenge
    for headers in ({}, {"Authorization": "Basic YmVydGg6czNjcmV0"}):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(
                f"http://{reg.host}/v2/team/a/manifests/{da}", headers=headers))
        assert e.value.code == 401
        assert e.value.headers["WWW-Authenticate"].startswith(f'Bearer realm="{ts.realm}"')
    # no credentials: the token server refuses berth, and berth says so
    r = reghost.berth.run("fetch", url_a)
    assert r.returncode == 1 and "token server refused an anonymous request" in r.stderr, r.stderr
    assert ts.requests == [("repository:team/a:pull", ts.SERVICE, False)]
    bad = auth_file(tmp_path / "bad.json", reg.host, "berth", "nope")
    r = reghost.berth.run("fetch", url_a, "--registry-auth", bad)
    assert r.returncode == 1 and "token server refused the credentials" in r.stderr, r.stderr
    assert imagekit.store_view(reghost.berth.root) == []
    # with credentials: one token per repository, for exactly that repository
    del ts.requests[:]
    good = auth_file(tmp_path / "auth.json", reg.host, "berth", "s3cret")
    reghost.write({"a": {"image": {"url": url_a, "digest": da}},
                   "b": {"image": {"url": url_b, "digest": db}}})
    r = reghost.apply("--registry-auth", good)
    assert r.returncode == 0, r.stderr
    running(reghost, "a", "image a")
    running(reghost, "b", "image c")
    assert sorted(ts.requests) == [("repository:team/a:pull", ts.SERVICE, True),
                                   ("repository:team/b:pull", ts.SERVICE, True)]


def test_bearer_token_refused_during_the_blobs_is_asked_for_again(berth, token_registry, layout,
                                                                   tmp_path):
    reg, ts = token_registry, token_registry.tokens

    def rotate():  # the token server moves to key B; the registry trusts only B
        ts.key = reg.keys[1]
        shutil.copy(reg.keys[1].cert, reg.bundle)
        reg.stop()
        reg.start()

    relay = RotatingRelay(reg, rotate)
    da = tag_manifest(layout, "a")["digest"]
    good = auth_file(tmp_path / "auth.json", relay.host, "berth", "s3cret")
    try:
        r = berth.run("fetch", f"oci+http://{relay.host}/team/a@{da}", "--registry-auth", good,
                      timeout=120)
    finally:
        relay.close()
    assert relay.rotated
    assert r.returncode == 0, r.stderr
    # the manifest with the first token, the blobs with a second one after a 401
    assert ts.requests == [("repository:team/a:pull", ts.SERVICE, True)] * 2
    with open(reg.log) as f:
        refused = [line for line in f if '"GET /v2/team/a/blobs/' in line and '" 401 ' in line]
    assert refused, "the registry never refused the old token"
    rootfs = r.stdout.split()[1]
    with open(os.path.join(rootfs, "etc/which")) as f:
        assert f.read() == "image a\n"


# --- the agent stays small ------------------------------------------------------

def mapped_libraries(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {os.path.basename(line.split()[-1]) for line in f if "/" in line}


def test_the_agent_pulls_in_a_child_and_never_maps_the_tls_stack(reghost, registry, layout):
    registry.push(layout, "a", "team/a:1")
    registry.push(layout, "c", "team/c:1")
    ba, bc = ({"url": f"oci+http://{registry.host}/team/{t}@{tag_manifest(layout, t)['digest']}",
               "digest": tag_manifest(layout, t)["digest"]} for t in ("a", "c"))
    reghost.write({"a": {"image": image_block(ba)}})
    agent = reghost.berth.popen("agent", "-f", reghost.file)
    try:
        running(reghost, "a", "image a")
        # a second pull by the running agent: the file changed
        reghost.write({"a": {"image": image_block(ba)}, "c": {"image": image_block(bc)}})
        running(reghost, "c", "image c")
        libs = mapped_libraries(agent.pid)
        # positive control: the maps are the agent's (its binary and libc)
        assert os.path.basename(reghost.berth.cmd()[0]) in libs and "libc.so.6" in libs, libs
        assert not [x for x in libs if x.startswith(("libcurl", "libssl", "libgnutls",
                                                      "libnghttp", "libcrypto"))], libs
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    # both images came from the registry: the blobs of c were fetched by the agent's child
    assert registry.blob_gets(layers(layout, "c")[-1]) == 1
