"""Test images for the image pipeline, built at test time from busybox:
rootfs tarballs in every compression, an OCI image layout built with the
real umoci (and packed as an oci-archive), a docker-save-style archive
assembled here, and helpers to compare trees and to read the store.
"""
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from conftest import make_rootfs

COMPRESSIONS = {"none": [], "gzip": ["--gzip"], "xz": ["--xz"], "zstd": ["--zstd"],
                "bzip2": ["--bzip2"]}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def need(tool):
    if not shutil.which(tool):
        pytest.fail(f"'{tool}' is not installed (tests/run installs it)")
    return tool


def busybox_rootfs(dest):
    """The shared busybox rootfs plus what exercises the unpacker: a hard
    link, an xattr, a setuid file, an owned directory, files to delete in
    later layers."""
    make_rootfs(dest)
    os.makedirs(os.path.join(dest, "opt/old/sub"), exist_ok=True)
    for name in ("opt/old/a", "opt/old/sub/b", "srv/gone.txt", "srv/kept.txt", "data/file"):
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        with open(os.path.join(dest, name), "w") as f:
            f.write(f"content of {name}\n")
    os.link(os.path.join(dest, "data/file"), os.path.join(dest, "data/hardlink"))
    os.chmod(os.path.join(dest, "data/file"), 0o4755)
    os.chown(os.path.join(dest, "srv"), 1000, 1000)
    os.setxattr(os.path.join(dest, "srv/kept.txt"), "user.berth", b"kept")
    return dest


def rootfs_tar(src, out, compression="zstd"):
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", src,
                    *COMPRESSIONS[compression], "-cf", out, "."], check=True)
    return out


OCI_CONFIG = {
    "entrypoint": ["/bin/sh", "-c"],
    "cmd": ["echo from-oci"],
    "env": ["FOO=bar"],
    "workdir": "/tmp",
    "user": "1000:1000",
    "stop_signal": "SIGINT",
}


def oci_layout(rootfs_dir, workdir):
    """An OCI layout built by umoci: the rootfs as layer 1, then a whiteout
    of /srv/gone.txt and an opaque replacement of /opt/old. Returns the
    layout path (tag 'latest')."""
    need("umoci")
    layout = os.path.join(workdir, "layout")
    bundle = os.path.join(workdir, "bundle")
    img = f"{layout}:latest"
    run = lambda *a: subprocess.run(["umoci", *a], check=True, capture_output=True)  # noqa: E731
    run("init", "--layout", layout)
    run("new", "--image", img)
    run("unpack", "--image", img, bundle)
    rootfs = os.path.join(bundle, "rootfs")
    shutil.rmtree(rootfs)
    subprocess.run(["cp", "-a", rootfs_dir, rootfs], check=True)
    run("repack", "--image", img, bundle)
    run("insert", "--image", img, "--whiteout", "/srv/gone.txt")
    newopt = os.path.join(workdir, "newopt")
    os.makedirs(newopt)
    with open(os.path.join(newopt, "only"), "w") as f:
        f.write("only this survives\n")
    run("insert", "--image", img, "--opaque", newopt, "/opt/old")
    c = OCI_CONFIG
    run("config", "--image", img, "--config.entrypoint", c["entrypoint"][0],
        "--config.entrypoint", c["entrypoint"][1], "--config.cmd", c["cmd"][0],
        "--config.env", c["env"][0], "--config.workingdir", c["workdir"],
        "--config.user", c["user"], "--config.stopsignal", c["stop_signal"])
    return layout


def oci_archive(layout, out):
    """Pack an OCI layout as an oci-archive tar (what skopeo copy ...
    oci-archive: writes)."""
    subprocess.run(["tar", "-C", layout, "-cf", out, "."], check=True)
    return out


def umoci_unpack(layout, dest):
    need("umoci")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", dest], check=True,
                   capture_output=True)
    return os.path.join(dest, "rootfs")


def _tar_bytes(members):
    """A tar from [(TarInfo, bytes or None)]."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _dir(name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info, None


DOCKER_CONFIG = {"Entrypoint": ["/bin/echo"], "Cmd": ["from-docker"], "Env": ["D=1"],
                 "WorkingDir": "/srv", "User": "0", "StopSignal": "SIGQUIT"}


def docker_archive(rootfs_dir, out, workdir):
    """A `docker save` archive: manifest.json, <id>.json config, <id>/layer.tar
    per layer. Layer 2 has a whiteout (.wh.gone.txt) and an opaque
    directory (opt/old/.wh..wh..opq plus a new file)."""
    layer1 = os.path.join(workdir, "layer1.tar")
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C",
                    rootfs_dir, "-cf", layer1, "."], check=True)
    with open(layer1, "rb") as f:
        l1 = f.read()
    l2 = _tar_bytes([
        _dir("srv"), _file("srv/.wh.gone.txt", b""),
        _dir("opt"), _dir("opt/old"), _file("opt/old/.wh..wh..opq", b""),
        _file("opt/old/only", b"only this survives\n"),
        _file("etc/motd", b"layer two\n"),
    ])
    layers = [l1, l2]
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = {"architecture": "amd64", "os": "linux", "config": DOCKER_CONFIG,
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cbytes = json.dumps(config).encode()
    cid = hashlib.sha256(cbytes).hexdigest()
    members, paths = [], []
    for i, x in enumerate(layers):
        lid = hashlib.sha256(f"layer{i}".encode()).hexdigest()
        members += [_dir(lid), _file(f"{lid}/VERSION", b"1.0"), _file(f"{lid}/layer.tar", x)]
        paths.append(f"{lid}/layer.tar")
    manifest = [{"Config": f"{cid}.json", "RepoTags": ["test:latest"], "Layers": paths}]
    members += [_file(f"{cid}.json", cbytes), _file("manifest.json", json.dumps(manifest).encode()),
                _file("repositories", b"{}")]
    with open(out, "wb") as f:
        f.write(_tar_bytes(members))
    return out


def tree(root):
    """{relpath: (type, mode, uid, gid, link target or content sha256)} for
    comparing two unpacked trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                what = ("file", sha256_file(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", None)
            else:
                what = ("other", stat.S_IFMT(st.st_mode))
            out[rel] = (what, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def store_view(root):
    """What the store shows under its final names (dot names are work in
    progress, invisible to users)."""
    seen = []
    for sub in ("blobs/sha256", "images"):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            seen += [f"{sub}/{n}" for n in os.listdir(d) if not n.startswith(".")]
    return sorted(seen)
