"""Hostile archives: each is refused or neutralised with a clear message,
and nothing is written outside the target directory. The archives are
fetched over HTTP like any image, as rootfs tarballs and inside docker
layers."""
import hashlib
import io
import json
import os
import tarfile

import pytest

import imagekit
from faultserver import FaultServer


def tar_of(entries):
    """entries: (name, kind, arg) with kind file/dir/symlink/hardlink/chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, arg in entries:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = arg if isinstance(arg, bytes) else arg.encode()
                info.size = len(data)
                info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = arg
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = arg
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = arg
                info.mode = 0o666
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("do not touch\n")
    return d


def snapshot(d):
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink)
    return out


def fetch_bytes(berth, data, *extra):
    with FaultServer() as srv:
        digest = srv.add("/evil.tar", data)
        r = berth.run("fetch", srv.url("/evil.tar"), "--digest", f"sha256:{digest}",
                      "--format", "rootfs", *extra)
    return r, digest


def assert_refused(berth, outside, entries, words, *extra):
    before = snapshot(outside)
    r, digest = fetch_bytes(berth, tar_of(entries), *extra)
    assert r.returncode == 1, r.stdout
    for w in words:
        assert w in r.stderr, r.stderr
    assert snapshot(outside) == before, "nothing written outside"
    assert not os.path.exists(os.path.join(berth.root, "images", digest))
    assert [n for n in imagekit.store_view(berth.root) if n.startswith("images/")] == []
    # no work directory left either
    images = os.path.join(berth.root, "images")
    assert not os.path.isdir(images) or os.listdir(images) == []
    return r


def test_dotdot_path_refused(berth, outside):
    assert_refused(berth, outside, [("etc", "dir", None),
                                    ("../../../../../../../../" + str(outside)[1:] + "/x",
                                     "file", "pwned")], ["refusing", ".."])


def test_nested_dotdot_refused(berth, outside):
    rel = os.path.relpath(outside, "/")
    assert_refused(berth, outside, [("a/b/../../../../../../../../../../" + rel + "/y",
                                     "file", "pwned")], ["refusing"])


def test_absolute_path_refused(berth, outside):
    r = assert_refused(berth, outside, [(str(outside / "abs"), "file", "pwned")],
                       ["refusing", "absolute"])
    assert str(outside / "abs")[1:] in r.stderr


def test_write_through_symlink_refused(berth, outside):
    assert_refused(berth, outside, [("link", "symlink", str(outside)),
                                    ("link/pwned", "file", "pwned")],
                   ["refusing 'link/pwned'", "symlink"])


def test_write_through_relative_symlink_refused(berth, outside):
    up = "../" * 20 + os.path.relpath(outside, "/")
    assert_refused(berth, outside, [("d", "dir", None), ("d/link", "symlink", up),
                                    ("d/link/secret", "file", "overwritten")],
                   ["refusing 'd/link/secret'"])


def test_hard_link_to_outside_refused(berth, outside):
    assert_refused(berth, outside, [("hl", "hardlink", str(outside / "secret"))],
                   ["refusing 'hl'"])
    assert_refused(berth, outside, [("hl", "hardlink", "../" * 20 + str(outside / "secret"))],
                   ["refusing 'hl'"])


def test_hard_link_through_symlink_refused(berth, outside):
    assert_refused(berth, outside, [("link", "symlink", str(outside)),
                                    ("hl", "hardlink", "link/secret")], ["refusing 'hl'"])
    assert os.stat(outside / "secret").st_nlink == 1


def test_device_nodes_left_out_with_a_message(berth, outside):
    data = tar_of([("bin", "dir", None), ("bin/ok", "file", "fine"),
                   ("dev", "dir", None), ("dev/mem", "chr", (1, 1)),
                   ("evil-null", "chr", (1, 3))])
    r, digest = fetch_bytes(berth, data)
    assert r.returncode == 0, r.stderr
    assert "left out 2 device nodes" in r.stderr
    rootfs = os.path.join(berth.root, "images", digest, "rootfs")
    assert os.path.isfile(os.path.join(rootfs, "bin/ok"))
    assert not os.path.lexists(os.path.join(rootfs, "evil-null"))
    assert os.listdir(os.path.join(rootfs, "dev")) == []


def test_entry_past_the_size_cap_refused(berth, outside):
    big = b"x" * (3 << 20)
    assert_refused(berth, outside, [("ok", "file", "small"), ("big", "file", big)],
                   ["refusing 'big'", "more than 1048576 bytes"],
                   "--max-unpacked-size", "1M")


def test_entry_count_cap_refused(berth, outside):
    entries = [(f"f{i}", "file", "x") for i in range(50)]
    assert_refused(berth, outside, entries, ["more than 20 entries"], "--max-entries", "20")


def test_hostile_docker_layer_refused(berth, outside, tmp_path):
    layer = tar_of([("link", "symlink", str(outside)), ("link/pwned", "file", "pwned")])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"config": {}, "rootfs": {"type": "layers",
                                                  "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode()
    outer = tar_of([("manifest.json", "file", manifest), ("c.json", "file", config),
                    ("l", "dir", None), ("l/layer.tar", "file", layer)])
    before = snapshot(outside)
    with FaultServer() as srv:
        digest = srv.add("/d.tar", outer)
        r = berth.run("fetch", srv.url("/d.tar"), "--digest", f"sha256:{digest}",
                      "--format", "docker")
    assert r.returncode == 1
    assert "refusing 'link/pwned'" in r.stderr and "layer 'l/layer.tar'" in r.stderr
    assert snapshot(outside) == before


def test_docker_manifest_pointing_outside_refused(berth, outside):
    manifest = json.dumps([{"Config": "c.json",
                            "Layers": ["../" * 20 + str(outside / "secret")]}]).encode()
    outer = tar_of([("manifest.json", "file", manifest),
                    ("c.json", "file", b'{"config": {}}')])
    with FaultServer() as srv:
        digest = srv.add("/d.tar", outer)
        r = berth.run("fetch", srv.url("/d.tar"), "--digest", f"sha256:{digest}",
                      "--format", "docker")
    assert r.returncode == 1
    assert "in the image" in r.stderr  # resolved inside the archive, where it is missing


def test_whiteout_cannot_escape(berth, outside, tmp_path):
    layer = tar_of([(".wh.." , "file", b""), ("a/.wh.." , "file", b"")])
    manifest = json.dumps([{"Config": "c.json", "Layers": ["layer.tar"]}]).encode()
    outer = tar_of([("manifest.json", "file", manifest), ("c.json", "file", b'{"config": {}}'),
                    ("layer.tar", "file", layer)])
    before = snapshot(outside)
    with FaultServer() as srv:
        digest = srv.add("/d.tar", outer)
        r = berth.run("fetch", srv.url("/d.tar"), "--digest", f"sha256:{digest}",
                      "--format", "docker")
    assert r.returncode == 1
    assert "refusing whiteout" in r.stderr
    assert snapshot(outside) == before
