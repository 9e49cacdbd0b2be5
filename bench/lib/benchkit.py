"""Helpers shared by berth's benchmark scripts (bench/reconcile, bench/agent)."""
import hashlib
import http.server
import os
import shutil
import socketserver
import subprocess
import threading

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_berth():
    build = os.path.join(TOP, "build-bench")
    sh("cmake", "-S", TOP, "-B", build, "-DBERTH_TESTS=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
       stdout=subprocess.DEVNULL)
    sh("cmake", "--build", build, "-j2", stdout=subprocess.DEVNULL)
    return os.path.join(build, "berth")


def make_image(work):
    rootfs = os.path.join(work, "rootfs")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy2("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    for a in ("sh", "sleep", "usleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    www = os.path.join(work, "www")
    os.makedirs(www)
    tarball = os.path.join(www, "img.tar.gz")
    sh("tar", "-C", rootfs, "-czf", tarball, ".")
    digest = hashlib.sha256(open(tarball, "rb").read()).hexdigest()
    return www, "sha256:" + digest


def serve(directory):
    class H(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0),
                                          lambda *a, **k: H(*a, directory=directory, **k))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def rss_kb(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in kB: VmRSS, or RssAnon for the
    private part (file pages of the binary are shared by every keeper)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
