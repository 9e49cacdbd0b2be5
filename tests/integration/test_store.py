"""The image store end to end: every format fetched over HTTP, unpacked
once, run with `berth run`; the OCI image unpacks to the same tree as
`umoci unpack`; pin, images and gc."""
import json
import os
import subprocess

import pytest

import imagekit
from faultserver import FaultServer


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    return imagekit.busybox_rootfs(str(d / "rootfs"))


@pytest.fixture(scope="module")
def oci(tmp_path_factory, base):
    d = tmp_path_factory.mktemp("oci")
    layout = imagekit.oci_layout(base, str(d))
    return layout, imagekit.oci_archive(layout, str(d / "image.oci.tar"))


@pytest.fixture(scope="module")
def docker(tmp_path_factory, base):
    d = tmp_path_factory.mktemp("docker")
    return imagekit.docker_archive(base, str(d / "image.docker.tar"), str(d))


@pytest.fixture
def srv():
    with FaultServer() as s:
        yield s


def fetch(berth, srv, path, file, fmt=None):
    digest = srv.add(path, file=file)
    args = ["fetch", srv.url(path), "--digest", f"sha256:{digest}"]
    if fmt:
        args += ["--format", fmt]
    r = berth.run(*args)
    assert r.returncode == 0, r.stderr
    return digest, r.stdout.split()[1]


def config(berth, digest):
    with open(os.path.join(berth.root, "images", digest, "config.json")) as f:
        return json.load(f)


def run_in(berth, rootfs, *cmd):
    return berth.run("run", rootfs, *cmd)


@pytest.mark.parametrize("compression", list(imagekit.COMPRESSIONS))
def test_rootfs_tarball_each_compression_runs(berth, srv, base, tmp_path, compression):
    tar = imagekit.rootfs_tar(base, str(tmp_path / f"r.tar.{compression}"), compression)
    digest, rootfs = fetch(berth, srv, "/r", tar)
    assert rootfs == os.path.join(berth.root, "images", digest, "rootfs")
    c = config(berth, digest)
    assert c["format"] == "rootfs"
    assert c["entrypoint"] == [] and c["cmd"] == [] and c["env"] == []
    # owners, modes, hard links and xattrs survive
    st = os.lstat(os.path.join(rootfs, "srv"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert os.lstat(os.path.join(rootfs, "data/file")).st_mode & 0o7777 == 0o4755
    assert os.lstat(os.path.join(rootfs, "data/file")).st_ino == \
        os.lstat(os.path.join(rootfs, "data/hardlink")).st_ino
    assert os.getxattr(os.path.join(rootfs, "srv/kept.txt"), "user.berth") == b"kept"
    r = run_in(berth, rootfs, "/bin/cat", "/srv/kept.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "content of srv/kept.txt\n"


def test_oci_archive_runs_and_keeps_config(berth, srv, oci):
    _, archive = oci
    digest, rootfs = fetch(berth, srv, "/image.oci.tar", archive)
    c = config(berth, digest)
    assert c["format"] == "oci"
    want = imagekit.OCI_CONFIG
    assert c["entrypoint"] == want["entrypoint"] and c["cmd"] == want["cmd"]
    assert "FOO=bar" in c["env"]
    assert (c["workdir"], c["user"], c["stop_signal"]) == \
        (want["workdir"], want["user"], want["stop_signal"])
    # whiteout and opaque directory applied
    assert not os.path.lexists(os.path.join(rootfs, "srv/gone.txt"))
    assert os.path.exists(os.path.join(rootfs, "srv/kept.txt"))
    assert sorted(os.listdir(os.path.join(rootfs, "opt/old"))) == ["only"]
    r = run_in(berth, rootfs, "/bin/sh", "-c", "cat /opt/old/only; ls /srv")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "only this survives\nkept.txt\n"


def test_berth_run_an_image_of_the_store_by_digest(berth, srv, oci):
    """`berth run sha256:...` takes the image's config as its defaults."""
    _, archive = oci
    digest, _ = fetch(berth, srv, "/image.oci.tar", archive)
    want = imagekit.OCI_CONFIG
    # entrypoint + cmd, env, workdir and user from the OCI config
    r = berth.run("run", f"sha256:{digest}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-oci\n"
    r = berth.run("run", f"sha256:{digest}", "/bin/sh", "-c", 'echo "$FOO $(pwd) $(id -u)"')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bar", want["workdir"], want["user"].split(":")[0]]
    # options still win over the image's defaults
    r = berth.run("run", "-u", "0", "-w", "/", "-e", "FOO=mine", f"sha256:{digest}",
                  "/bin/sh", "-c", 'echo "$FOO $(pwd) $(id -u)"')
    assert r.stdout.split() == ["mine", "/", "0"]
    r = berth.run("run", "sha256:" + "0" * 64)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1


def test_oci_unpacks_to_the_same_tree_as_umoci(berth, srv, oci, tmp_path):
    layout, archive = oci
    digest, rootfs = fetch(berth, srv, "/image.oci.tar", archive)
    ref = imagekit.umoci_unpack(layout, str(tmp_path / "ref"))
    ours, theirs = imagekit.tree(rootfs), imagekit.tree(ref)
    assert len(theirs) > 250  # busybox applets and all
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    assert only_ours == [] and only_theirs == []
    diff = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert diff == {}


def test_docker_archive_runs_with_whiteouts_and_opaque_dirs(berth, srv, docker):
    digest, rootfs = fetch(berth, srv, "/image.docker.tar", docker)
    c = config(berth, digest)
    assert c["format"] == "docker"
    assert c["entrypoint"] == ["/bin/echo"] and c["cmd"] == ["from-docker"]
    assert (c["workdir"], c["user"], c["stop_signal"]) == ("/srv", "0", "SIGQUIT")
    assert not os.path.lexists(os.path.join(rootfs, "srv/gone.txt"))
    assert sorted(os.listdir(os.path.join(rootfs, "opt/old"))) == ["only"]
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(rootfs) for n in ds + fs)
    r = run_in(berth, rootfs, "/bin/cat", "/etc/motd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "layer two\n"


def test_explicit_format_overrides_detection(berth, srv, docker):
    # read as a plain rootfs, a docker archive is just files
    digest, rootfs = fetch(berth, srv, "/d", docker, fmt="rootfs")
    assert config(berth, digest)["format"] == "rootfs"
    assert os.path.isfile(os.path.join(rootfs, "manifest.json"))


def test_oci_blob_digest_verified(berth, srv, oci, tmp_path):
    layout, _ = oci
    bad = tmp_path / "bad"
    subprocess.run(["cp", "-a", layout, str(bad)], check=True)
    with open(bad / "index.json") as f:
        manifest = json.load(f)["manifests"][0]["digest"].split(":")[1]
    with open(bad / "blobs/sha256" / manifest) as f:
        layers = json.load(f)["layers"]
    victim = bad / "blobs/sha256" / layers[-1]["digest"].split(":")[1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    archive = imagekit.oci_archive(str(bad), str(tmp_path / "bad.tar"))
    digest = srv.add("/bad.tar", file=archive)
    r = berth.run("fetch", srv.url("/bad.tar"), "--digest", f"sha256:{digest}")
    assert r.returncode == 1
    assert "does not match its digest" in r.stderr
    assert not os.path.exists(os.path.join(berth.root, "images", digest))


def test_oci_index_picks_the_host_platform(berth, srv, oci, tmp_path):
    layout, _ = oci
    multi = tmp_path / "multi"
    subprocess.run(["cp", "-a", layout, str(multi)], check=True)
    with open(multi / "index.json") as f:
        index = json.load(f)
    good = index["manifests"][0]
    other = dict(good, digest="sha256:" + "e" * 64,
                 platform={"architecture": "s390x", "os": "linux"})
    good = dict(good, platform={"architecture": "amd64" if os.uname().machine == "x86_64"
                                else "arm64", "os": "linux"})
    index["manifests"] = [other, good]  # the foreign one first; its blob is missing
    with open(multi / "index.json", "w") as f:
        json.dump(index, f)
    archive = imagekit.oci_archive(str(multi), str(tmp_path / "multi.tar"))
    digest, rootfs = fetch(berth, srv, "/multi.tar", archive)
    assert os.path.isfile(os.path.join(rootfs, "opt/old/only"))


def test_one_unpacked_copy_per_digest_and_blob_reuse(berth, srv, base, tmp_path):
    tar = imagekit.rootfs_tar(base, str(tmp_path / "r.tar.gz"), "gzip")
    digest, rootfs = fetch(berth, srv, "/r", tar)
    marker = os.stat(rootfs).st_ino
    r = berth.run("fetch", srv.url("/r"), "--digest", f"sha256:{digest}")
    assert r.returncode == 0
    assert len(srv.gets("/r")) == 1, "an image already in the store is not fetched again"
    assert os.stat(rootfs).st_ino == marker
    assert imagekit.store_view(berth.root) == [f"blobs/sha256/{digest}", f"images/{digest}"]
    # the blob alone is enough to unpack again, without the network
    subprocess.run(["rm", "-rf", os.path.join(berth.root, "images", digest)], check=True)
    r = berth.run("fetch", "http://127.0.0.1:1/nowhere", "--digest", f"sha256:{digest}")
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(os.path.join(rootfs, "bin/busybox"))


def test_pin_prints_an_image_block(berth, srv, oci):
    _, archive = oci
    digest = srv.add("/web.oci.tar", file=archive)
    r = berth.run("pin", srv.url("/web.oci.tar"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"image:\n  url: {srv.url('/web.oci.tar')}\n"
                        f"  digest: sha256:{digest}\n  format: oci\n")
    assert len(srv.gets("/web.oci.tar")) == 1, "downloaded once"
    assert imagekit.store_view(berth.root) == [f"blobs/sha256/{digest}", f"images/{digest}"]


def write_service(root, name, digest, previous=None):
    d = os.path.join(root, "services", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump({"name": name, "image": {"url": "http://x", "digest": f"sha256:{digest}"}}, f)
    if previous:
        os.makedirs(os.path.join(d, "previous"), exist_ok=True)
        with open(os.path.join(d, "previous", "spec.json"), "w") as f:
            json.dump({"name": name, "image": {"digest": f"sha256:{previous}"}}, f)


def test_images_lists_digest_format_size_use(berth, srv, base, docker, tmp_path):
    tar = imagekit.rootfs_tar(base, str(tmp_path / "r.tar.xz"), "xz")
    d1, _ = fetch(berth, srv, "/r", tar)
    d2, _ = fetch(berth, srv, "/d", docker)
    write_service(berth.root, "web", d1)
    r = berth.run("images", "--json")
    assert r.returncode == 0, r.stderr
    rows = {i["digest"]: i for i in json.loads(r.stdout)["images"]}
    assert set(rows) == {f"sha256:{d1}", f"sha256:{d2}"}
    a = rows[f"sha256:{d1}"]
    assert a["format"] == "rootfs" and a["services"] == ["web"]
    assert a["blob"] and a["unpacked"] and a["blob_size"] == os.path.getsize(tar)
    assert a["image_size"] > 1_000_000 and a["last_used"].endswith("Z")
    assert rows[f"sha256:{d2}"]["format"] == "docker"
    assert rows[f"sha256:{d2}"]["services"] == []
    r = berth.run("images")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["DIGEST", "FORMAT"]
    assert any(line.startswith(f"sha256:{d1[:12]}") and "web" in line for line in lines)


def test_gc_keeps_used_and_previous_removes_the_rest(berth, srv, base, tmp_path):
    digests = []
    for comp in ("gzip", "xz", "bzip2"):
        tar = imagekit.rootfs_tar(base, str(tmp_path / f"r.{comp}"), comp)
        digests.append(fetch(berth, srv, f"/{comp}", tar)[0])
    used, previous, unused = digests
    write_service(berth.root, "web", used, previous=previous)
    # leftovers of a killed fetch
    os.makedirs(os.path.join(berth.root, "images", ".tmp-dead.1.0", "rootfs"))
    with open(os.path.join(berth.root, "blobs/.partial", ".dead.1"), "w") as f:
        f.write("half")
    r = berth.run("gc", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"would remove image sha256:{unused}" in r.stdout
    assert f"would remove blob sha256:{unused}" in r.stdout
    assert used not in r.stdout and previous not in r.stdout
    assert len(imagekit.store_view(berth.root)) == 6, "dry run removes nothing"
    r = berth.run("gc")
    assert r.returncode == 0, r.stderr
    assert f"removed image sha256:{unused}" in r.stdout
    assert imagekit.store_view(berth.root) == sorted(
        [f"blobs/sha256/{used}", f"images/{used}", f"blobs/sha256/{previous}",
         f"images/{previous}"])
    assert os.listdir(os.path.join(berth.root, "blobs/.partial")) == []
    assert [n for n in os.listdir(os.path.join(berth.root, "images")) if n.startswith(".")] == []


def test_gc_refuses_when_a_service_file_is_unreadable(berth, srv, base, tmp_path):
    tar = imagekit.rootfs_tar(base, str(tmp_path / "r.gz"), "gzip")
    digest, _ = fetch(berth, srv, "/r", tar)
    d = os.path.join(berth.root, "services", "web")
    os.makedirs(d)
    with open(os.path.join(d, "spec.json"), "w") as f:
        f.write("{not json")
    r = berth.run("gc")
    assert r.returncode == 1
    assert "spec.json" in r.stderr
    assert f"images/{digest}" in imagekit.store_view(berth.root)


def test_gc_waits_for_no_apply(berth, srv, base, tmp_path):
    import fcntl
    tar = imagekit.rootfs_tar(base, str(tmp_path / "r.gz"), "gzip")
    digest, _ = fetch(berth, srv, "/r", tar)
    with open(os.path.join(berth.root, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as `berth apply` holds it
        r = berth.run("gc")
        assert r.returncode == 1
        assert "lock" in r.stderr
        assert f"images/{digest}" in imagekit.store_view(berth.root)
    r = berth.run("gc")
    assert r.returncode == 0, r.stderr
    assert imagekit.store_view(berth.root) == []
