"""A fleet on one machine: Debian's puppetserver on 127.0.0.1 and N simulated
hosts, each with its own puppet agent (certname, confdir, vardir), its own
berth root and its own `berth agent`. Shared by tests/fleet/run and
bench/fleet. Everything lives under one temporary directory.
"""
import concurrent.futures
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(TOP, "puppet-module")
PS_CONF = "/etc/puppet/puppetserver"
PS_JAR = "/usr/share/puppetserver/puppetserver.jar"
PP_CLUSTER = "1.3.6.1.4.1.34380.1.1.16"  # Puppet's pp_cluster certificate extension


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Server:
    """puppetserver in the foreground, its confdir, codedir, vardir, CA and
    logs under `dir`; a small JVM heap, two JRuby instances."""

    def __init__(self, dir, heap="512m"):
        self.dir = dir
        self.port = free_port()
        self.confdir = os.path.join(dir, "conf")
        self.codedir = os.path.join(dir, "code")
        self.vardir = os.path.join(dir, "var")
        self.tk = os.path.join(dir, "tk")  # trapperkeeper's conf.d
        self.log = os.path.join(dir, "server.log")
        # where puppetserver 7 caches each node's last facts (older servers:
        # yaml/facts/NODE.yaml; berth-gate reads either)
        self.facts = os.path.join(self.vardir, "server_data", "facts")
        self.heap = heap
        self.proc = None

    def configure(self):
        d = self.dir
        for sub in ("conf", "code", "var", "run", "logs", "gems", "tmp", "tk"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        write(os.path.join(self.confdir, "puppet.conf"), f"""\
[main]
certname = puppet
dns_alt_names = localhost,IP:127.0.0.1
server = 127.0.0.1
masterport = {self.port}
codedir = {self.codedir}
vardir = {self.vardir}
ssldir = {self.confdir}/ssl
logdir = {d}/logs
rundir = {d}/run
publicdir = {d}/public
keylength = 2048
[server]
autosign = true
cadir = {self.confdir}/ca
storeconfigs = false
reports = store
""")
        write(os.path.join(self.tk, "puppetserver.conf"), f"""\
jruby-puppet: {{
    ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]
    gem-home: {d}/gems
    gem-path: [{d}/gems, "/usr/lib/puppetserver/vendored-jruby-gems"]
    server-conf-dir: {self.confdir}
    server-code-dir: {self.codedir}
    server-var-dir: {self.vardir}
    server-run-dir: {d}/run
    server-log-dir: {d}/logs
    max-active-instances: 2
}}
http-client: {{}}
profiler: {{ enabled: false }}
""")
        write(os.path.join(self.tk, "webserver.conf"), f"""\
webserver: {{
    client-auth: want
    ssl-host: 127.0.0.1
    ssl-port: {self.port}
}}
""")
        write(os.path.join(self.tk, "global.conf"), f"""\
global: {{ logging-config: {d}/logback.xml }}
""")
        write(os.path.join(d, "logback.xml"), f"""\
<configuration>
  <appender name="F" class="ch.qos.logback.core.FileAppender">
    <file>{self.log}</file>
    <encoder><pattern>%d %-5p [%c{{2}}] %m%n</pattern></encoder>
  </appender>
  <root level="info"><appender-ref ref="F"/></root>
</configuration>
""")
        for f in ("auth.conf", "ca.conf", "web-routes.conf", "metrics.conf"):
            shutil.copy(os.path.join(PS_CONF, "conf.d", f), self.tk)

    def start(self, timeout=240):
        self.configure()
        d = self.dir
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": d, "LANG": "C.UTF-8"}
        argv = ["/usr/bin/java", f"-Xms{self.heap}", f"-Xmx{self.heap}",
                "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
                "-Xshare:auto", f"-Djava.io.tmpdir={d}/tmp",
                "-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger",
                "-Djruby.lib=/usr/share/jruby/lib", "-XX:+CrashOnOutOfMemoryError",
                f"-XX:ErrorFile={d}/logs/java_err_pid%p.log",
                "-jar", PS_JAR, "--config", self.tk,
                "--bootstrap-config", os.path.join(PS_CONF, "services.d"),
                "--restart-file", f"{d}/run/restart"]
        self.out = open(os.path.join(d, "server.stdout"), "w")
        self.proc = subprocess.Popen(argv, cwd="/usr/share/puppetserver", env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"puppetserver exited with {self.proc.returncode}: "
                                   f"see {self.log} and {d}/server.stdout")
            try:
                with open(f"{d}/run/restart") as f:
                    if f.read(1) == "1":
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"puppetserver not up in {timeout} s: see {self.log}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def busybox_image(www, name, files):
    """A rootfs tarball of busybox-static plus `files` (path: text) under
    www/NAME.tar.gz; returns its image block."""
    path = os.path.join(www, name + ".tar.gz")

    def add(tar, arcname, data=None, mode=0o755, link=None, dir=False):
        ti = tarfile.TarInfo(arcname)
        ti.mtime, ti.uid, ti.gid = 0, 0, 0
        if dir:
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        elif link:
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
            tar.addfile(ti)
        else:
            ti.size, ti.mode = len(data), mode
            tar.addfile(ti, io.BytesIO(data))

    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "srv"):
            add(tar, d, dir=True)
        with open("/bin/busybox", "rb") as f:
            add(tar, "bin/busybox", f.read())
        for a in ("sh", "sleep", "test", "cat", "echo"):
            add(tar, "bin/" + a, link="busybox")
        add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        for p, text in files.items():
            add(tar, p, text.encode(), 0o755)
    with open(path, "rb") as f:
        digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    return {"digest": digest, "format": "rootfs"}


class ImageServer:
    """A plain HTTP server on 127.0.0.1 for the images, in this process."""

    def __init__(self, www):
        self.log = []  # "GET /web-1.tar.gz 200", one per request
        log = self.log

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                log.append(f"{self.requestline.split(' ')[0]} {self.path} {code}")

            def log_message(self, *a):
                pass
        handler = functools.partial(Handler, directory=www)
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Host:
    """One simulated host: a puppet agent with its own certname, confdir and
    vardir, a berth root and a `berth agent`, all under DIR/hosts/NAME."""

    def __init__(self, fleet, name, group):
        self.fleet, self.name, self.group = fleet, name, group
        self.dir = os.path.join(fleet.dir, "hosts", name)
        self.root = os.path.join(self.dir, "root")
        self.etc = os.path.join(self.dir, "etc")
        self.config = os.path.join(self.etc, "services.yaml")
        self.agent = None

    def setup(self):
        s = self.fleet.server
        conf = os.path.join(self.dir, "puppet")
        write(os.path.join(conf, "puppet.conf"), f"""\
[main]
certname = {self.name}
server = 127.0.0.1
masterport = {s.port}
vardir = {self.dir}/puppet-var
ssldir = {conf}/ssl
logdir = {self.dir}/puppet-log
rundir = {self.dir}/puppet-run
codedir = {self.dir}/puppet-code
publicdir = {self.dir}/puppet-public
keylength = 2048
[agent]
report = true
usecacheonfailure = false
""")
        self.bootstrap_ssl(os.path.join(conf, "ssl"))
        os.makedirs(self.etc, exist_ok=True)
        # the agent needs a file before Puppet writes one
        write(self.config, "version: 1\nservices: {}\n")

    def bootstrap_ssl(self, ssldir):
        """What `puppet ssl bootstrap` does, with openssl and the CA's HTTP
        API: a key, a CSR carrying the host's group as the pp_cluster
        extension (trusted.extensions.pp_cluster), signed by the server's CA
        (autosign), the CA's certificate and CRL. Puppet's own CSR upload
        stalls for 30 s in puppetserver 7.9 here, per host."""
        for d in ("certs", "private_keys", "certificate_requests"):
            os.makedirs(os.path.join(ssldir, d), exist_ok=True)
        key = os.path.join(ssldir, "private_keys", self.name + ".pem")
        csr = os.path.join(ssldir, "certificate_requests", self.name + ".pem")
        subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-subj", f"/CN={self.name}", "-out", csr, "-addext",
                        f"{PP_CLUSTER}=ASN1:UTF8String:{self.group}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o640)
        base = f"https://127.0.0.1:{self.fleet.server.port}/puppet-ca/v1"
        ctx = ssl._create_unverified_context()  # the CA certificate is what it fetches

        def get(path, data=None):
            req = urllib.request.Request(base + path, data=data, method="PUT" if data else "GET",
                                         headers={"Content-Type": "text/plain"})
            with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
                return r.read()
        with open(csr, "rb") as f:
            get(f"/certificate_request/{self.name}", f.read())
        for path, out in ((f"/certificate/{self.name}", f"certs/{self.name}.pem"),
                          ("/certificate/ca", "certs/ca.pem"),
                          ("/certificate_revocation_list/ca", "crl.pem")):
            with open(os.path.join(ssldir, out), "wb") as f:
                f.write(get(path))

    def env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.dir, "LANG": "C.UTF-8",
                "BERTH_FACT_CONFIG": os.path.join(self.etc, "fact.json")}

    def start_agent(self):
        log = open(os.path.join(self.dir, "berth-agent.log"), "a")
        self.agent = subprocess.Popen(
            [self.fleet.berth, "--root", self.root, "agent", "-f", self.config,
             "--settle", "3s", "--health-settle", "60s", "--resync", "10m"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()

    def puppet(self):
        """One `puppet agent --onetime --no-daemonize`; returns (seconds, exit
        code, output), its peak RSS in last_maxrss_kb. --detailed-exitcodes:
        0 nothing changed, 2 changes."""
        argv = ["puppet", "agent", "--onetime", "--no-daemonize", "--detailed-exitcodes",
                "--confdir", os.path.join(self.dir, "puppet"), "--color", "false",
                "--no-splay", "--waitforcert", "0", "--logdest", "console"]
        t0 = time.monotonic()
        with tempfile.TemporaryFile("w+") as out:
            p = subprocess.Popen(argv, env=self.env(), stdout=out, stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            self.last_maxrss_kb = ru.ru_maxrss
            out.seek(0)
            return time.monotonic() - t0, p.returncode, out.read()

    def facts_upload(self):
        r = subprocess.run(["puppet", "facts", "upload", "--confdir",
                            os.path.join(self.dir, "puppet"), "--color", "false"],
                           env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def status(self):
        r = subprocess.run([self.fleet.berth, "--root", self.root, "status", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if r.returncode:
            return {}
        return {s["name"]: s for s in json.loads(r.stdout)["services"]}

    def stop(self, empty):
        """The berth agent, then every service: `apply --purge` of the empty
        file `empty` removes them, their keepers, mounts and cgroups."""
        if self.agent and self.agent.poll() is None:
            self.agent.terminate()
            self.agent.wait(30)
        if os.path.isdir(self.root):
            subprocess.run([self.fleet.berth, "--root", self.root, "apply", "-f", empty, "--purge"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def yaml_dump(obj, indent=0):
    """Block YAML of plain data (JSON scalars are YAML too)."""
    pad = " " * indent
    out = []
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            out.append(f"{pad}{k}:\n{yaml_dump(v, indent + 2)}")
        else:
            out.append(f"{pad}{k}: {json.dumps(v)}\n")
    return "".join(out)


GATE = os.path.join(MODULE, "files", "berth-gate")


class Fleet:
    """The server, the control repository (environment `production`: the
    berth module, Hiera with a common layer and a layer per group), the image
    server and the hosts: `canaries` hosts in group canary, the rest main."""

    def __init__(self, dir, berth, n, canaries=2, heap="512m"):
        self.dir, self.berth, self.n = dir, os.path.abspath(berth), n
        self.server = Server(os.path.join(dir, "server"), heap)
        self.env = os.path.join(self.server.codedir, "environments", "production")
        self.www = os.path.join(dir, "www")
        self.images = None
        self.hosts = [Host(self, f"host{i:02d}", "canary" if i <= canaries else "main")
                      for i in range(1, n + 1)]

    def group(self, name):
        return [h for h in self.hosts if h.group == name]

    def build_images(self):
        os.makedirs(self.www, exist_ok=True)
        ok = "#!/bin/sh\necho \"$SVC $(cat /srv/version) up\"\nexec sleep 1000000\n"
        self.images = {
            "web-1": busybox_image(self.www, "web-1", {"srv/run": ok, "srv/version": "web 1"}),
            "web-2": busybox_image(self.www, "web-2", {"srv/run": ok, "srv/version": "web 2"}),
            # the broken release: exits at start, and has no /srv/version for
            # the health check either
            "web-bad": busybox_image(self.www, "web-bad",
                                     {"srv/run": "#!/bin/sh\necho 'web 3: bad config'\nexit 3\n"}),
            "api-1": busybox_image(self.www, "api-1", {"srv/run": ok, "srv/version": "api 1"}),
        }
        self.http = ImageServer(self.www)
        for name, img in self.images.items():
            img["url"] = f"{self.http.url}/{name}.tar.gz"

    def service(self, image):
        return {"image": dict(self.images[image]), "command": ["/srv/run"],
                "env": {"SVC": image.split("-")[0]},
                "healthcheck": {"command": ["/bin/test", "-s", "/srv/version"],
                                "interval": "1s", "timeout": "1s", "retries": 1},
                "backoff": {"initial": "1s", "max": "5s"}, "stop_timeout": "2s"}

    def write_repo(self):
        env = self.env
        os.makedirs(os.path.join(env, "modules"), exist_ok=True)
        link = os.path.join(env, "modules", "berth")
        if not os.path.islink(link):
            os.symlink(MODULE, link)
        # Hiera's data files are read again whenever they change (Puppet checks
        # them per compile), so the environment itself can be cached for ever
        write(os.path.join(env, "environment.conf"),
              "modulepath = modules\nenvironment_timeout = unlimited\n")
        write(os.path.join(env, "manifests", "site.pp"), "node default {\n  include berth\n}\n")
        write(os.path.join(env, "hiera.yaml"), """\
---
version: 5
defaults:
  datadir: data
  data_hash: yaml_data
hierarchy:
  - name: per node group
    path: "groups/%{trusted.extensions.pp_cluster}.yaml"
  - name: common
    path: common.yaml
""")
        hosts = os.path.join(self.dir, "hosts")
        common = {
            "berth::root": f"{hosts}/%{{trusted.certname}}/root",
            "berth::config_path": f"{hosts}/%{{trusted.certname}}/etc/services.yaml",
            "berth::fact_config_path": f"{hosts}/%{{trusted.certname}}/etc/fact.json",
            "berth::binary_path": self.berth,
            "berth::manage_config_dir": False,
            "berth::manage_agent": False,
            "berth::apply_on_change": False,  # each host's own `berth agent` converges
            "berth::group": "%{trusted.extensions.pp_cluster}",
            "berth::services": {"web": self.service("web-1"), "api": self.service("api-1")},
        }
        self.common = common
        self.set_layer("common", common)
        for g in ("canary", "main"):
            self.set_layer(f"groups/{g}", {})

    def set_layer(self, name, data):
        """Replace one Hiera layer (the "Hiera change" of a rollout step)."""
        path = os.path.join(self.env, "data", name + ".yaml")
        write(path + ".tmp", "---\n" + (yaml_dump(data) if data else "{}\n"))
        os.rename(path + ".tmp", path)

    def start(self):
        self.build_images()
        self.write_repo()
        up = self.server.start()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(Host.setup, self.hosts))
        for h in self.hosts:
            h.start_agent()
        return up

    def wave(self, hosts, parallel=2):
        """`puppet agent --onetime` on each host, `parallel` at a time;
        returns {host name: (seconds, exit code, output)}."""
        with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
            return dict(zip([h.name for h in hosts], ex.map(Host.puppet, hosts)))

    def upload_facts(self, hosts, parallel=2):
        with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
            return list(ex.map(lambda h: h.facts_upload(), hosts))

    def gate(self, group, service, digest, expect=None):
        """The module's gate on the facts the server cached: (exit code, output)."""
        argv = [GATE, "--facts", self.server.facts,
                "--group", group, "--service", service, "--digest", digest]
        if expect is not None:
            argv += ["--expect", str(expect)]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def cached_facts(self, host):
        """HOST's facts as the server cached them."""
        with open(os.path.join(self.server.facts, host.name + ".json")) as f:
            return json.load(f)["values"]

    def stop(self):
        empty = os.path.join(self.dir, "empty.yaml")
        write(empty, "version: 1\nservices: {}\n")
        for h in self.hosts:
            h.stop(empty)
        self.server.stop()
        if self.images:
            self.http.stop()


def wait_for(cond, timeout, interval=0.2):
    """cond() until it is truthy or `timeout` s passed; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


# Where Puppet, puppetserver and the JVM keep state by default: a fleet run
# must leave all of them as it found them (its own are under its directory).
OUTSIDE = ["/etc/puppet", "/etc/puppetlabs", "/var/lib/puppet", "/var/lib/puppetserver",
           "/var/log/puppetserver", "/var/log/puppet", "/run/puppetserver", "/run/puppet",
           "/var/cache/puppet", "/opt/puppetlabs", "/root/.puppetlabs", "/tmp/hsperfdata_root"]


def outside_snapshot():
    """{path: (size, mtime)} of every file under OUTSIDE."""
    snap = {}
    for top in OUTSIDE:
        for d, _, files in os.walk(top):
            snap[d] = None
            for f in files:
                p = os.path.join(d, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                snap[p] = (st.st_size, st.st_mtime_ns)
    return snap


def leftovers(dir, cgroups):
    """What is still there of a fleet under `dir` after its stop: processes
    whose command line or cwd names it, mounts under it, the services'
    cgroups (`cgroups`: the paths seen while they ran)."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if dir in argv or cwd.startswith(dir):
            left.append(f"process {pid}: {argv.replace(chr(0), ' ')[:200]}")
    for line in open("/proc/self/mountinfo"):
        if dir in line.split()[4]:
            left.append(f"mount {line.split()[4]}")
    left += [f"cgroup {c}" for c in sorted(cgroups) if os.path.exists(c)]
    return left


# where cgroup v2 is mounted: beside v1's controllers (hybrid) or alone
V2 = "unified" if os.path.isdir("/sys/fs/cgroup/unified") else ""


def service_cgroups(host):
    """The cgroup directories of HOST's running containers (v1 and v2)."""
    found = set()
    for s in host.status().values():
        try:
            lines = open(f"/proc/{s['pid']}/cgroup").read().splitlines() if s.get("pid") else []
        except OSError:
            continue
        for line in lines:
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.replace("name=", "").split(",") if ctrls else [V2]:
                d = os.path.normpath(f"/sys/fs/cgroup/{c}{path}")
                if path != "/" and os.path.isdir(d):
                    found.add(d)
    return found
