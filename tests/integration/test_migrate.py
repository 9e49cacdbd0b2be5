"""Migration bridges (issue 12): berth export kube, berth export systemd,
berth import compose.

- export kube: every example file's services, exported and validated
  offline against the Kubernetes schema (the kubernetes-models npm package,
  installed once into /var/cache/berth-tests); then a Pod played with
  Debian's podman (`podman kube play`) against an image in a local
  docker-registry, and what the container sees from inside (command, env,
  working directory, user, mounts, capabilities) compared with the same
  service under berth.
- export systemd: `systemd-analyze verify` on the unit, and its
  ExecStartPre/ExecStart run as they are: the same container.
- import compose: the corpus in tests/integration/compose/ (written after
  common public examples), each imported, validated, checked against an
  independent reading of the Compose file (PyYAML), and applied with
  stand-in images pushed to the local registry under the images' names.
- round trip: Compose → berth → Kubernetes keeps command, env, mounts and
  limits.
"""
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
import yaml

import imagekit
from conftest import TOP, Host, make_rootfs, wait_for
from test_registry import Registry, umoci

CACHE = "/var/cache/berth-tests/kubernetes-models"
MODELS_VERSION = "4.5.1"
EXAMPLES = os.path.join(TOP, "manifests-schema", "examples", "valid")
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compose")

# what the container reports about itself, one key=value per line
REPORT = r"""#!/bin/sh
echo "report-begin"
echo "args=$*"
env | grep '^MIG_' | sort | sed 's/^/env=/'
echo "pwd=$(pwd)"
echo "uid=$(id -u) gid=$(id -g)"
grep '^CapBnd' /proc/self/status | tr -d ' \t' | sed 's/:/=/'
for t in /data /ro /scratch; do
  grep " $t " /proc/self/mounts | awk '{split($4, o, ","); print "mount=" $2 " " $3 " " o[1]}'
done
if touch /rootfs-probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi
echo "report-end"
exec sleep 100000
"""

STUB = """#!/bin/sh
echo "stub $(basename "$0") $*"
exec sleep 100000
"""

# the commands the corpus runs, all the stand-in stub
STUB_NAMES = ["gunicorn", "flask", "redis-server", "celery", "npm", "docker-entrypoint.sh",
              "prometheus", "entrypoint.sh", "mysqld", "apache2-foreground", "postgres",
              "nginx", "rabbitmq-server", "grafana", "whoami", "gitea", "minio", "mongod"]

# the corpus' images: repository (as the local registry stores it) and the
# entrypoint of the stand-in, as the real image has one
CORPUS_IMAGES = {
    "library/mysql:8.0": None,
    "library/wordpress:6.4-apache": None,
    "example/django-web:2.3.1": None,
    "library/postgres:16-alpine": None,
    "example/flask-counter:latest": None,
    "library/redis:7-alpine": ["docker-entrypoint.sh"],
    "shop/backend:1.12.0": None,
    "library/rabbitmq:3.12-management": None,
    "library/redis:7": None,
    "library/nginx:1.25-alpine": None,
    "prom/prometheus:v2.48.0": ["/bin/prometheus"],
    "grafana/grafana:10.2.2": None,
    "library/node:20-bookworm-slim": None,
    "library/mongo:7.0": ["/usr/local/bin/docker-entrypoint.sh"],
    "library/traefik:v2.10": ["/entrypoint.sh"],
    "traefik/whoami:v1.10": None,
    "minio/minio:RELEASE.2024-01-01": ["/usr/bin/docker-entrypoint.sh"],
    "gitea/gitea:1.21.1": None,
    "library/postgres:14": None,
    "library/busybox:1.36": None,
    "library/alpine:3.19": None,
    "example/alpha:1": None,
    "example/beta:2": None,
    "example/gamma:latest": None,
}
REGISTRY_HOSTS = ["docker.io", "ghcr.io", "quay.io", "registry.example.com"]

# Compose keys berth reports instead of importing
UNSUPPORTED = {"depends_on", "networks", "links", "expose", "secrets", "configs",
               "container_name", "labels", "logging", "privileged", "devices", "extra_hosts",
               "dns", "sysctls", "init", "shm_size", "build", "ports"}


# --- the registry and images ---------------------------------------------------

def write_exec(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, probe_bin):
    """A docker-registry on 127.0.0.1 with test/probe:1 (busybox, probe,
    /bin/report) and the corpus' stand-in images."""
    imagekit.need("umoci")
    d = str(tmp_path_factory.mktemp("migrate-images"))
    lay = os.path.join(d, "layout")
    umoci("init", "--layout", lay)
    umoci("new", "--image", f"{lay}:base")
    bundle = os.path.join(d, "bundle")
    umoci("unpack", "--image", f"{lay}:base", bundle)
    rootfs = os.path.join(bundle, "rootfs")
    shutil.rmtree(rootfs)
    make_rootfs(rootfs, probe_bin)
    write_exec(os.path.join(rootfs, "bin/report"), REPORT)
    write_exec(os.path.join(rootfs, "usr/local/bin/stub"), STUB)
    for name in STUB_NAMES:
        os.symlink("stub", os.path.join(rootfs, "usr/local/bin", name))
    for path in ("/bin/prometheus", "/entrypoint.sh", "/usr/bin/docker-entrypoint.sh"):
        os.makedirs(os.path.dirname(rootfs + path), exist_ok=True)
        os.symlink("/usr/local/bin/stub", rootfs + path)
    with open(os.path.join(rootfs, "etc/passwd"), "a") as f:
        f.write("node:x:1001:1001:node:/home/node:/bin/sh\n")
    for d_ in ("data", "ro", "scratch", "home/node"):
        os.makedirs(os.path.join(rootfs, d_), exist_ok=True)
    umoci("repack", "--image", f"{lay}:base", bundle)
    umoci("config", "--image", f"{lay}:base", "--config.cmd", "/usr/local/bin/stub",
          "--config.cmd", "default", "--config.env",
          "PATH=/usr/local/bin:/usr/bin:/bin")
    for ep in {tuple(e) for e in CORPUS_IMAGES.values() if e}:
        tag = "ep" + ep[0].replace("/", "-").replace(".", "-")
        umoci("config", "--image", f"{lay}:base", "--tag", tag,
              *[x for a in ep for x in ("--config.entrypoint", a)])
    reg = Registry(os.path.join(d, "registry")).start()
    reg.push(lay, "base", "test/probe:1")
    for repo, ep in CORPUS_IMAGES.items():
        tag = "ep" + ep[0].replace("/", "-").replace(".", "-") if ep else "base"
        reg.push(lay, tag, repo)
    yield reg
    reg.stop()


def resolve(registry, repo_tag):
    """The digest of a tag, from the registry itself."""
    repo, tag = repo_tag.rsplit(":", 1)
    r = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                        f"docker://{registry.host}/{repo}:{tag}"], capture_output=True,
                       check=True)
    return "sha256:" + imagekit.hashlib.sha256(r.stdout).hexdigest()


# --- the service compared under berth, podman and systemd ----------------------

@pytest.fixture
def dirs(tmp_path):
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    (ro / "file").write_text("read-only\n")
    return str(data), str(ro)


def probe_service(registry, dirs, user="1000:1000"):
    digest = resolve(registry, "test/probe:1")
    return {
        "image": {"url": f"oci+http://{registry.host}/test/probe:1@{digest}",
                  "digest": digest},
        "command": ["/bin/report", "one", "two words"],
        "env": {"MIG_A": "1", "MIG_B": "hello world"},
        "workdir": "/home/app",
        "user": user,
        "mounts": [{"source": dirs[0], "target": "/data"},
                   {"source": dirs[1], "target": "/ro", "readonly": True},
                   {"type": "tmpfs", "target": "/scratch", "size": "16M"}],
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["CHOWN"]},
        "readonly_rootfs": True,
        "limits": {"memory": "256M", "cpus": 0.5},
        "stop_timeout": "5s",
    }


def parse_report(text):
    """The lines between report-begin and report-end."""
    lines = text.splitlines()
    if "report-begin" not in lines or "report-end" not in lines:
        return None
    return lines[lines.index("report-begin") + 1:lines.index("report-end")]


def comparable(report):
    """The mount lines without the filesystem type of bind mounts (the same
    host directory either way, but overlay under podman's own storage
    would differ for the tmpfs: compare its type)."""
    return sorted(report)


def berth_report(host, svc, name="probe"):
    host.write({name: svc})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}

    def done():
        r = host.berth.run("logs", name)
        out["r"] = parse_report(r.stdout)
        return out["r"] is not None
    wait_for(done, timeout=120, what="the report under berth")
    return out["r"]


def write_yaml(path, data):
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


def export(berth, path, *args, check=True):
    r = berth.run("export", *args, "-f", path)
    if check:
        assert r.returncode == 0, r.stderr
    return r


# --- Kubernetes schema ---------------------------------------------------------

VALIDATOR = r"""
const fs = require('fs');
const base = process.argv[2] + '/node_modules/kubernetes-models/';
// every property name any Kubernetes type has, from the compiled schemas:
// the validators do not refuse unknown fields, so a misspelt one is
// caught here
const known = new Set();
for (const dir of [base + '_schemas/',
                   base + '../@kubernetes-models/apimachinery/_schemas/']) {
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.js')) continue;
    const src = fs.readFileSync(dir + f, 'utf8');
    for (const m of src.matchAll(/data\.([A-Za-z_$][\w$]*)|parentDataProperty:"([^"]+)"/g))
      known.add(m[1] || m[2]);
  }
}
function unknown(v, path, out) {
  if (Array.isArray(v)) { v.forEach((x, i) => unknown(x, path + '[' + i + ']', out)); return; }
  if (v === null || typeof v !== 'object') return;
  for (const k of Object.keys(v)) {
    // maps with free keys: labels, annotations, selectors, quantities
    if (/^(labels|annotations|matchLabels|limits|requests)$/.test(path.split('.').pop())) continue;
    if (!known.has(k)) out.push(path + '.' + k);
    unknown(v[k], path + '.' + k, out);
  }
}
const docs = JSON.parse(fs.readFileSync(0, 'utf8'));
const res = [];
for (const d of docs) {
  const r = {kind: d.kind, name: d.metadata && d.metadata.name, errors: []};
  let Cls;
  try { Cls = require(base + d.apiVersion + '/' + d.kind)[d.kind]; }
  catch (e) { r.errors.push('no model for ' + d.apiVersion + ' ' + d.kind); res.push(r); continue; }
  try { new Cls(d).validate(); } catch (e) { r.errors.push(String(e.message || e)); }
  const u = []; unknown(d, '', u);
  for (const p of u) r.errors.push('unknown field ' + p);
  res.push(r);
}
console.log(JSON.stringify(res));
"""


@pytest.fixture(scope="module")
def kube_validate(tmp_path_factory):
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (tests/run installs nodejs and npm)")
    pkg = os.path.join(CACHE, "node_modules", "kubernetes-models", "package.json")
    if not os.path.exists(pkg) or json.load(open(pkg))["version"] != MODELS_VERSION:
        os.makedirs(CACHE, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", CACHE,
                            f"kubernetes-models@{MODELS_VERSION}"], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    script = tmp_path_factory.mktemp("kube") / "validate.js"
    script.write_text(VALIDATOR)

    def validate(docs):
        r = subprocess.run(["node", str(script), CACHE], input=json.dumps(docs),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    return validate


def registry_copy(spec):
    """The file with every image made a registry reference of the same
    digest (Kubernetes names registry images only), the rest untouched."""
    spec = copy.deepcopy(spec)
    for name, svc in (spec.get("services") or {}).items():
        digest = svc["image"]["digest"]
        svc["image"] = {"url": f"oci://registry.example/{name.replace('_', '-')}@{digest}",
                        "digest": digest}
    return spec


def test_the_validator_refuses_what_kubernetes_refuses(kube_validate):
    good = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "x", "image": "y"}]}}
    typo = copy.deepcopy(good)
    typo["spec"]["containers"][0]["workDir"] = "/srv"
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["hostNetwork"] = "yes"
    res = kube_validate([good, typo, wrong_type])
    assert res[0]["errors"] == []
    assert any("workDir" in e for e in res[1]["errors"]), res[1]
    assert res[2]["errors"], res[2]


@pytest.mark.parametrize("example", sorted(os.listdir(EXAMPLES)))
@pytest.mark.parametrize("kind", ["pod", "deployment", "daemonset"])
def test_every_example_exports_to_valid_kubernetes(berth, tmp_path, kube_validate, example,
                                                   kind):
    with open(os.path.join(EXAMPLES, example)) as f:
        spec = yaml.safe_load(f)
    names = sorted(spec.get("services") or {})
    # as written: HTTP artifacts are reported per service, exit 1
    r = berth.run("export", "kube", "--kind", kind, "-f", os.path.join(EXAMPLES, example))
    http = [n for n in names if not spec["services"][n]["image"]["url"].startswith("oci")]
    for n in http:
        assert f"'{n}': cannot export: image.url:" in r.stderr, r.stderr
    assert r.returncode == (1 if http else 0), r.stderr
    r = berth.run("export", "kube", "--kind", kind, "--skip-unmappable", "-f",
                  os.path.join(EXAMPLES, example))
    assert r.returncode == 0, r.stderr
    # every service, its images in a registry
    path = write_yaml(tmp_path / example, registry_copy(spec))
    r = export(berth, path, "kube", "--kind", kind)
    docs = list(yaml.safe_load_all(r.stdout))
    docs = [d for d in docs if d]
    want = {"pod": "Pod", "deployment": "Deployment", "daemonset": "DaemonSet"}[kind]
    workloads = [d for d in docs if d["kind"] == want]
    assert sorted(d["metadata"]["annotations"]["berth.example/service"] for d in workloads) \
        == names
    for res in kube_validate(docs):
        assert res["errors"] == [], res
    # the JSON form is the same objects
    r = export(berth, path, "kube", "--kind", kind, "--json")
    assert json.loads(r.stdout)["items"] == docs


def pod_spec(doc):
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def test_kube_fields_and_notes(berth, tmp_path, kube_validate):
    spec = registry_copy(yaml.safe_load(open(os.path.join(EXAMPLES, "full.yaml"))))
    web = spec["services"]["web"]
    web["stop_signal"] = "SIGQUIT"
    web["healthcheck"]["restart_on_unhealthy"] = True
    web["env"]["PRICE"] = "$(NOT_EXPANDED) $$"
    web["capabilities"] = {"add": ["NET_ADMIN"], "drop": ["CHOWN"]}
    web["backoff"]["max"] = "1m"
    web["log"]["max_files"] = 2
    spec["services"]["batch_job"] = {"image": dict(web["image"]), "network": "none",
                                     "hostname": "batch", "restart": "never",
                                     "user": "nobody"}
    path = write_yaml(tmp_path / "s.yaml", spec)
    r = export(berth, path, "kube")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    for res in kube_validate(docs):
        assert res["errors"] == [], res
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    pod = by[("Pod", "web")]["spec"]
    c = pod["containers"][0]
    assert pod["hostNetwork"] is True and pod["restartPolicy"] == "Always"
    assert c["image"] == "registry.example/web@" + web["image"]["digest"]
    assert [c["command"][0], *c["args"]] == web["command"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["PRICE"] == "$$(NOT_EXPANDED) $$$"
    assert env["LOG_LEVEL"] == "info"
    assert c["workingDir"] == web["workdir"]
    assert c["securityContext"]["runAsUser"] == 1000
    assert c["securityContext"]["runAsGroup"] == 1000
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    add = set(c["securityContext"]["capabilities"]["add"])
    assert add == {"DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
                   "SETFCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "NET_ADMIN"}
    assert c["resources"]["limits"] == {"memory": "512Mi", "cpu": "1500m"}
    assert c["livenessProbe"]["exec"]["command"] == web["healthcheck"]["command"]
    assert c["livenessProbe"]["periodSeconds"] == 10
    assert c["livenessProbe"]["timeoutSeconds"] == 2
    assert c["livenessProbe"]["failureThreshold"] == 3
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "-c", "kill -QUIT 1"]
    assert pod["terminationGracePeriodSeconds"] == 10
    vols = {v["name"]: v for v in pod["volumes"]}
    for vm, m in zip(c["volumeMounts"], web["mounts"]):
        assert vm["mountPath"] == m["target"]
        if m.get("type") == "tmpfs":
            assert vols[vm["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
        else:
            assert vols[vm["name"]]["hostPath"]["path"] == m["source"]
            assert vm.get("readOnly", False) == m.get("readonly", False)
    # network: none: no host network, a deny-all policy, and the truth said
    job = by[("Pod", "batch-job")]["spec"]
    assert "hostNetwork" not in job and job["hostname"] == "batch"
    assert job["restartPolicy"] == "Never"
    pol = by[("NetworkPolicy", "batch-job-no-network")]["spec"]
    assert pol["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in pol
    err = r.stderr
    for line in ("'web': limits.pids:", "'web': limits.nofile:", "'web': stop_signal:",
                 "'web': log:", "'web': backoff:", "'batch_job': network:",
                 "'batch_job': user: 'nobody'", "'batch_job': name: named 'batch-job'"):
        assert line in err, err
    # a Deployment cannot say Never: said, not hidden
    r = export(berth, path, "kube", "--kind", "deployment", "batch_job")
    assert "'batch_job': restart: 'never' is exported as Always" in r.stderr
    # a health check that only reports is a readiness probe
    web["healthcheck"]["restart_on_unhealthy"] = False
    r = export(berth, write_yaml(tmp_path / "s.yaml", spec), "kube", "web")
    c = [d for d in yaml.safe_load_all(r.stdout) if d][0]["spec"]["containers"][0]
    assert "livenessProbe" not in c and "readinessProbe" in c
    assert "'web': healthcheck: berth only reports" in r.stderr


# --- podman kube play ------------------------------------------------------------

class Podman:
    """Debian's podman with storage of its own. This host has no systemd as
    pid 1 (cgroupfs, events to a file), and root here cannot raise
    RLIMIT_NOFILE and RLIMIT_NPROC as podman would for every container (the
    pod's infra container too; no CAP_SYS_RESOURCE in this sandbox, and
    even nproc at the hard limit is refused): a containers.conf of the test
    sets nofile to the hard limit and nproc to 4096."""

    def __init__(self, tmp):
        import resource
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.conf = os.path.join(tmp, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", '
                    '"nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
        # crun refuses this hybrid host ("drop all controllers from cgroupv2"); runc runs
        self.base = ["podman", "--root", os.path.join(tmp, "storage"), "--runroot",
                     os.path.join(tmp, "run"), "--cgroup-manager=cgroupfs",
                     "--events-backend=file", "--runtime", "runc"]

    def run(self, *args, timeout=300):
        return subprocess.run(self.base + list(args), capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "CONTAINERS_CONF": self.conf})


@pytest.fixture
def podman(tmp_path):
    if not shutil.which("podman"):
        pytest.fail("podman is not installed (tests/run installs it)")
    # a short path: podman's runroot holds sockets
    d = f"/tmp/berth-podman-{os.getpid()}-{time.monotonic_ns()}"
    os.makedirs(d)
    p = Podman(d)
    yield p
    p.run("pod", "rm", "--all", "--force", timeout=120)
    subprocess.run(["umount", "-R", os.path.join(d, "storage", "overlay")],
                   capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def test_a_pod_under_podman_sees_what_the_service_sees_under_berth(berth, tmp_path, registry,
                                                                    dirs, podman):
    # a user by name: Kubernetes takes numbers, found in the image berth pulled
    svc = probe_service(registry, dirs, user="app")
    path = write_yaml(tmp_path / "s.yaml", {"version": 1, "services": {"probe": svc}})
    r = export(berth, path, "kube")
    assert "'probe': user: 'app' names a user of the image, which is not in the store" \
        in r.stderr
    host = Host(berth, None, tmp_path)
    try:
        under_berth = berth_report(host, svc)
    finally:
        host.teardown()
    r = export(berth, path, "kube")
    assert "'probe': image.url: '127.0.0.1:" in r.stderr  # plain http: said
    assert "'probe': user:" not in r.stderr
    sc = yaml.safe_load(r.stdout)["spec"]["containers"][0]["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (1000, 1000)
    pod_yaml = tmp_path / "pod.yaml"
    pod_yaml.write_text(r.stdout)
    r = podman.run("kube", "play", "--tls-verify=false", str(pod_yaml))
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}

    def done():
        r = podman.run("logs", "probe-probe", timeout=60)
        out["r"] = parse_report(r.stdout + r.stderr)
        return out["r"] is not None
    wait_for(done, timeout=120, what="the report under podman")
    under_podman = out["r"]
    assert "args=one two words" in under_berth
    assert "env=MIG_B=hello world" in under_berth
    assert "uid=1000 gid=1000" in under_berth and "pwd=/home/app" in under_berth
    assert "rootfs=ro" in under_berth
    assert any(x.startswith("mount=/scratch tmpfs rw") for x in under_berth), under_berth
    assert any(x.startswith("mount=/ro ") and x.endswith(" ro") for x in under_berth)
    # Debian 12's podman (4.3) plays every emptyDir as a volume in its
    # storage, medium: Memory or not: the tmpfs's filesystem type is the
    # one difference, and it is podman's (the manifest asks for Memory)
    scratch = "mount=/scratch tmpfs rw"
    assert scratch in under_berth
    assert "mount=/scratch ext4 rw" in under_podman or scratch in under_podman, under_podman
    same = [x for x in under_podman if not x.startswith("mount=/scratch ")] + [scratch]
    assert comparable(same) == comparable(under_berth), \
        f"berth: {under_berth}\npodman: {under_podman}"


# --- systemd -----------------------------------------------------------------------

def unit_command(line):
    """A unit's command line as systemd reads it: quotes and C escapes,
    $$ and %% made single again."""
    return [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(line)]


def test_a_systemd_unit_runs_the_same_container(berth, berth_bin, tmp_path, registry, dirs):
    svc = probe_service(registry, dirs)
    svc["env"]["MIG_C"] = 'quote " dollar $HOME percent %n'
    host = Host(berth, None, tmp_path)
    try:
        under_berth = berth_report(host, svc)
    finally:
        host.teardown()
    path = write_yaml(tmp_path / "s.yaml", {"version": 1, "services": {"probe": svc}})
    unit_root = str(tmp_path / "unit-root")
    r = subprocess.run([berth_bin, "--root", unit_root, "export", "systemd", "--berth", berth_bin,
                        "-f", path, "probe"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    unit = tmp_path / "berth-probe.service"
    unit.write_text(r.stdout)
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stderr.strip() == "", v.stderr
    keys = dict(line.split("=", 1) for line in r.stdout.splitlines()
                if "=" in line and not line.startswith("#"))
    assert keys["Restart"] == "always" and keys["KillMode"] == "mixed"
    pre = unit_command(keys["ExecStartPre"])
    assert pre[:4] == [berth_bin, "--root", unit_root, "fetch"]
    f = subprocess.run(pre, capture_output=True, text=True, timeout=120)
    assert f.returncode == 0, f.stderr
    start = unit_command(keys["ExecStart"])
    assert svc["image"]["digest"] in start
    p = subprocess.Popen(start, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "report-end":
                break
    finally:
        p.terminate()  # as systemd's KillSignal: berth run stops the container
        p.wait(timeout=30)
    assert "env=MIG_C=quote \" dollar $HOME percent %n" in lines, lines
    assert comparable(parse_report("\n".join(lines))) == comparable(under_berth)


@pytest.mark.parametrize("example", sorted(os.listdir(EXAMPLES)))
def test_every_example_service_is_a_unit_systemd_accepts(berth, berth_bin, tmp_path, example):
    path = os.path.join(EXAMPLES, example)
    services = yaml.safe_load(open(path)).get("services") or {}
    for name in sorted(services):
        r = export(berth, path, "systemd", "--berth", berth_bin, name)
        unit = tmp_path / f"berth-{name}.service"
        unit.write_text(r.stdout)
        v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True)
        assert v.returncode == 0 and v.stderr.strip() == "", (name, v.stderr, r.stdout)
        start = [x for x in r.stdout.splitlines() if x.startswith("ExecStart=")][0]
        argv = unit_command(start.split("=", 1)[1])
        assert argv[:4] == [berth_bin, "--root", berth.root, "run"], argv
        assert services[name]["image"]["digest"] in argv


def test_systemd_notes_and_refusals(berth, tmp_path):
    spec = yaml.safe_load(open(os.path.join(EXAMPLES, "full.yaml")))
    path = write_yaml(tmp_path / "s.yaml", spec)
    r = export(berth, path, "systemd", "web")
    assert "'web': healthcheck: berth run has no health checks" in r.stderr
    assert "ExecStartPre=" in r.stdout and "--mirror" in r.stdout
    unit = tmp_path / "web.service"
    unit.write_text(r.stdout.replace("/usr/bin/berth", shutil.which("true")))
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    r = berth.run("export", "systemd", "-f", path, "nope")
    assert r.returncode == 1 and "no service 'nope'" in r.stderr
    r = berth.run("export", "systemd", "-f", path)
    assert r.returncode == 2


# --- import compose -------------------------------------------------------------------

def corpus_files():
    out = []
    for d in sorted(os.listdir(CORPUS)):
        for name in ("docker-compose.yml", "compose.yaml"):
            if os.path.exists(os.path.join(CORPUS, d, name)):
                out.append(os.path.join(d, name))
    return out


def import_args(registry, volumes):
    args = ["--volumes-dir", volumes, "--retries", "0"]
    for h in REGISTRY_HOSTS:
        args += ["--registry", f"{h}=oci+http://{registry.host}"]
    return args


def dotenv(path):
    env = {}
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.removeprefix("export ").split("=", 1)
                env[k] = v.strip('"')
    return env


def expand(text, env):
    """Compose's ${VAR:-default} and ${VAR}, enough for the corpus' volumes."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}",
                  lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def expected_command(svc):
    def words(v):
        return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]
    ep, cmd = svc.get("entrypoint"), svc.get("command")
    if ep is not None:
        return words(ep) + (words(cmd) if cmd is not None else [])
    return words(cmd) if cmd is not None else None


def image_entrypoint(image):
    for repo, ep in CORPUS_IMAGES.items():
        r, tag = repo.rsplit(":", 1)
        if image in (repo, f"{r}:{tag}") or image.endswith("/" + repo) or \
                image == r.removeprefix("library/") + ":" + tag:
            return ep or []
    return []


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus") / "compose"
    shutil.copytree(CORPUS, d)
    return str(d)


@pytest.mark.parametrize("rel", corpus_files())
def test_compose_corpus_imports_validates_and_applies(berth, tmp_path, registry, corpus_dir, rel):
    src = os.path.join(corpus_dir, rel)
    volumes = str(tmp_path / "volumes")
    out = str(tmp_path / "services.yaml")
    compose = yaml.safe_load(open(src))  # PyYAML: anchors and merge keys
    r = berth.run("import", "compose", *import_args(registry, volumes), src, "-o", out,
                  timeout=300)
    buildonly = [n for n, s in compose["services"].items() if "image" not in s]
    assert r.returncode == (1 if buildonly else 0), r.stderr
    for n in buildonly:
        assert f"'{n}': cannot import: build: no image" in r.stderr
    if buildonly:
        r = berth.run("import", "compose", "--skip-unmappable", *import_args(registry, volumes),
                      src, "-o", out, timeout=300)
        assert r.returncode == 0, r.stderr
    notes = r.stderr
    v = berth.run("validate", out)
    assert v.returncode == 0, v.stderr + open(out).read()
    got = yaml.safe_load(open(out))["services"]
    envfile = dotenv(os.path.join(os.path.dirname(src), ".env"))
    for cname, csvc in compose["services"].items():
        name = re.sub(r"[^a-z0-9_.-]", "-", cname.lower())
        if cname in buildonly:
            assert name not in got
            continue
        b = got[name]
        # the image: resolved by the registry to the digest of the tag
        assert b["image"]["url"].endswith("@" + b["image"]["digest"])
        # unsupported keys: reported for this service, never silently
        for key in sorted(UNSUPPORTED & set(csvc)):
            if key == "build":
                assert f"'{name}': build: not imported" in notes, notes
            else:
                assert f"'{name}': {key}:" in notes, (key, notes)
        if "ports" in csvc:
            assert f"'{name}': ports:" in notes and "listens on the host network directly" \
                in notes
        # command: Compose's entrypoint/command rules, the image's entrypoint kept
        want = expected_command(csvc)
        if want is not None and "$" not in " ".join(want):
            if csvc.get("entrypoint") is None:
                want = image_entrypoint(csvc["image"]) + want
            assert b["command"] == want, (b.get("command"), want)
        # environment: env_file, then environment
        env = {}
        for ef in ([csvc["env_file"]] if isinstance(csvc.get("env_file"), str)
                   else csvc.get("env_file") or []):
            env.update(dotenv(os.path.join(os.path.dirname(src), ef)))
        e = csvc.get("environment") or {}
        if isinstance(e, list):
            e = dict(x.split("=", 1) for x in e)
        env.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in e.items()
                    if v is not None})
        for k, val in env.items():
            if "$" not in val:
                assert b["env"][k] == val, (k, b["env"].get(k), val)
            else:
                assert k in b["env"]
        # mounts: every volume and tmpfs target
        targets = []
        for vol in csvc.get("volumes") or []:
            if isinstance(vol, dict):
                targets.append(vol["target"])
            else:
                parts = expand(vol, envfile).split(":")
                targets.append(parts[1] if len(parts) > 1 else parts[0])
        tm = csvc.get("tmpfs") or []
        targets += [t.split(":")[0] for t in ([tm] if isinstance(tm, str) else tm)]
        assert [m["target"] for m in b.get("mounts", [])] == targets
        # limits
        lim = csvc.get("deploy", {}).get("resources", {}).get("limits", {})
        mem = csvc.get("mem_limit") or lim.get("memory")
        if mem:
            assert b["limits"]["memory"].lower().rstrip("b") == str(mem).lower().rstrip("b")
        cpus = csvc.get("cpus") or lim.get("cpus")
        if cpus:
            assert float(b["limits"]["cpus"]) == float(cpus)
        if csvc.get("network_mode") == "none":
            assert b["network"] == "none"
        if "healthcheck" in csvc:
            assert b["healthcheck"]["command"]
    # apply it: the stand-in images run every service
    spec = yaml.safe_load(open(out))
    for name, svc in list(spec["services"].items()):
        for m in svc.get("mounts", []):
            if "source" in m and not os.path.exists(m["source"]):
                if m["source"].startswith(volumes):
                    os.makedirs(m["source"])  # as the note asks
                else:
                    del spec["services"][name]  # a host file this host lacks
                    break
    # root without CAP_SYS_RESOURCE (this sandbox) cannot raise RLIMIT_NOFILE
    # past its hard limit: the corpus' 64000 and 65536 are lowered to it
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for svc in spec["services"].values():
        if svc.get("limits", {}).get("nofile", 0) > hard:
            svc["limits"]["nofile"] = hard
    host = Host(berth, None, tmp_path)
    try:
        host.write(spec["services"])
        r = host.apply(timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr

        enabled = [n for n, v in spec["services"].items() if v.get("enabled", True)]

        def running():
            st = host.status()
            return all(st.get(n, {}).get("state") == "running" for n in enabled)
        wait_for(running, timeout=120, what="every imported service running")
        for name in enabled:
            svc = spec["services"][name]
            if svc.get("command", [""])[0].split("/")[-1] in STUB_NAMES:
                wait_for(lambda: "stub " in host.berth.run("logs", name).stdout, timeout=60,
                         what=f"{name}'s command")
                line = [x for x in host.berth.run("logs", name).stdout.splitlines()
                        if x.startswith("stub ")][0]
                assert line.split()[2:] == svc["command"][1:], (line, svc["command"])
    finally:
        host.teardown()


def test_compose_specifics(berth, tmp_path, registry, corpus_dir):
    volumes = str(tmp_path / "volumes")

    def imp(rel):
        r = berth.run("import", "compose", "--skip-unmappable",
                      *import_args(registry, volumes), os.path.join(corpus_dir, rel),
                      timeout=300)
        assert r.returncode == 0, r.stderr
        return yaml.safe_load(r.stdout)["services"], r.stderr

    # interpolation from .env, defaults, $$; restart limits said
    svcs, err = imp("minio/docker-compose.yml")
    m = svcs["minio"]
    assert ":RELEASE.2024-01-01@sha256:" in m["image"]["url"]
    assert m["command"] == ["/usr/bin/docker-entrypoint.sh", "server", "/data", "--address",
                            ":9000", "--console-address", ":9001"]
    assert m["env"]["MINIO_ROOT_PASSWORD"] == "minio secret"
    assert m["env"]["COST"] == "$5 a month"
    assert m["healthcheck"] == {"command": ["mc", "ready", "local"], "interval": "90s",
                                "timeout": "20s", "retries": 3}
    assert m["restart"] == "on-failure"
    assert "'minio': restart: berth restarts on failure without a limit of 5" in err
    assert "'minio': healthcheck.start_period:" in err
    # merge keys: lists of merges, overrides after a merge
    svcs, err = imp("merge-heavy/docker-compose.yml")
    assert svcs["alpha"]["limits"] == {"memory": "128M", "pids": 64}
    assert svcs["beta"]["limits"] == {"memory": "256M", "pids": 64}
    assert svcs["beta"]["env"] == {"TZ": "UTC", "LANG": "C.UTF-8", "ROLE": "beta"}
    assert svcs["gamma_service"]["command"][-1] == "echo $HOSTNAME; exec sleep 1000"
    assert "'gamma_service': name: the Compose service 'Gamma_Service'" in err
    assert "'alpha': logging:" in err
    # hardening: read-only root, tmpfs sizes, capabilities, stop signal, host network
    svcs, err = imp("nginx-static/docker-compose.yml")
    n = svcs["nginx"]
    assert n["readonly_rootfs"] is True and n["stop_signal"] == "SIGQUIT"
    assert n["capabilities"] == {"add": ["NET_BIND_SERVICE", "CHOWN", "SETUID", "SETGID"],
                                 "drop": ["ALL"]}
    assert n["mounts"][2] == {"type": "tmpfs", "target": "/var/cache/nginx", "size": "32M"}
    assert n["healthcheck"]["command"][:2] == ["/bin/sh", "-c"]
    assert "network" not in n and "'nginx': network_mode:" not in err
    # network none, Compose's entrypoint resetting the command, deploy.restart_policy
    svcs, err = imp("batch-jobs/docker-compose.yml")
    assert svcs["report"]["network"] == "none" and svcs["report"]["restart"] == "never"
    assert svcs["report"]["command"] == ["/bin/sh", "-c", "date; echo nightly report; sleep 3600"]
    assert svcs["sync"]["restart"] == "on-failure" and svcs["sync"]["backoff"] == {"initial": "5s"}
    assert svcs["sync"]["stop_timeout"] == "2s"
    assert "'report': tmpfs: tmpfs option 'mode=1777'" in err
    assert "'custom': skipped: build: no image" in err
    # Compose starts a service with profiles only when asked
    assert svcs["debug"]["enabled"] is False and "'debug': profiles:" in err
    # no restart: in Compose means no restarts
    svcs, err = imp("flask-redis/compose.yaml")
    assert svcs["web"]["restart"] == "never" and "'web': restart: none in the Compose file" in err
    # ulimits, pids, secrets, sysctls
    svcs, err = imp("gitea/docker-compose.yml")
    assert svcs["server"]["limits"] == {"memory": "512M", "cpus": 1, "pids": 512,
                                        "nofile": 65536}
    for line in ("'server': ulimits: ulimit 'nproc'", "'server': secrets:", "'server': sysctls:",
                 "'db': shm_size:", "'(file)': secrets:"):
        assert line in err, err
    # a relative FILE: bind sources still absolute
    r = berth.run("import", "compose", *import_args(registry, volumes), "docker-compose.yml",
                  cwd=os.path.join(corpus_dir, "nginx-static"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["services"]["nginx"]["mounts"][0]["source"] == \
        os.path.join(os.path.realpath(corpus_dir), "nginx-static", "site")
    # names and paths berth cannot take are notes, and the file stays valid
    odd = tmp_path / "odd.yml"
    odd.write_text("services:\n  x:\n    image: busybox:1.36\n"
                   "    environment: {'BAD NAME': 1, GOOD: 2}\n"
                   "    volumes: ['/src:relative/target', '/a:/b']\n")
    r = berth.run("import", "compose", *import_args(registry, volumes), str(odd))
    assert r.returncode == 0, r.stderr
    x = yaml.safe_load(r.stdout)["services"]["x"]
    assert x["env"] == {"GOOD": "2"} and x["mounts"] == [{"source": "/a", "target": "/b"}]
    assert "'x': environment: 'BAD NAME' is not a variable name" in r.stderr
    assert "'x': volumes: target 'relative/target' is not an absolute path" in r.stderr
    # named volumes without --volumes-dir cannot be imported
    r = berth.run("import", "compose", "--retries", "0",
                  *[x for h in REGISTRY_HOSTS for x in ("--registry",
                                                        f"{h}=oci+http://{registry.host}")],
                  os.path.join(corpus_dir, "wordpress/docker-compose.yml"), timeout=300)
    assert r.returncode == 1
    assert "'db': cannot import: volumes: 'db_data' is a named volume" in r.stderr
    # an image the registry does not have: named, with the reason
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  x:\n    image: nothere/at-all:1\n")
    r = berth.run("import", "compose", *import_args(registry, volumes), str(bad))
    assert r.returncode == 1 and "'x': cannot import: image: 'nothere/at-all:1'" in r.stderr


# --- round trip ------------------------------------------------------------------------

@pytest.mark.parametrize("rel", corpus_files())
def test_compose_to_berth_to_kubernetes_keeps_the_service(berth, tmp_path, registry, corpus_dir,
                                                          kube_validate, rel):
    out = str(tmp_path / "services.yaml")
    r = berth.run("import", "compose", "--skip-unmappable",
                  *import_args(registry, str(tmp_path / "v")), os.path.join(corpus_dir, rel),
                  "-o", out, timeout=300)
    assert r.returncode == 0, r.stderr
    spec = yaml.safe_load(open(out))["services"]
    r = export(berth, out, "kube", "--kind", "deployment")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    for res in kube_validate(docs):
        assert res["errors"] == [], res
    workloads = [d for d in docs if d["kind"] == "Deployment"]
    assert len(workloads) == len(spec)
    for name, b in spec.items():
        if b.get("network") == "none":
            assert any(d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"]["matchLabels"]
                       == {"app.kubernetes.io/name": name} for d in docs)
    for d in workloads:
        name = d["metadata"]["annotations"]["berth.example/service"]
        b = spec[name]
        ps = pod_spec(d)
        c = ps["containers"][0]
        if "command" in b:
            assert [*c["command"], *c.get("args", [])] == b["command"]
        assert {e["name"]: e["value"] for e in c.get("env", [])} == \
            {k: v.replace("$(", "$$(") for k, v in (b.get("env") or {}).items()}
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        got = []
        for vm in c.get("volumeMounts", []):
            v = vols[vm["name"]]
            got.append((v["hostPath"]["path"] if "hostPath" in v else None, vm["mountPath"],
                        vm.get("readOnly", False)))
        assert got == [(m.get("source"), m["target"], m.get("readonly", False))
                       for m in b.get("mounts", [])]
        lim = b.get("limits", {})
        kl = c.get("resources", {}).get("limits", {})
        if "memory" in lim:
            assert kl["memory"] == lim["memory"].replace("M", "Mi").replace("G", "Gi")
        else:
            assert "memory" not in kl
        if "cpus" in lim:
            cpu = kl["cpu"]
            assert (float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)) == \
                float(lim["cpus"])
        if "pids" in lim:
            assert f"'{name}': limits.pids:" in r.stderr


def test_odd_compose_values_are_reported_not_fatal(berth, tmp_path, registry):
    """Values of the wrong shape, complex keys, merges of scalars: each is a
    note, the service is still imported, and the result is valid."""
    f = tmp_path / "docker-compose.yml"
    f.write_text(
        "x-s: &s 5\n"
        "services:\n"
        "  ? [complex, key]\n"
        "  : {image: busybox:1.36}\n"
        "  odd:\n"
        "    <<: [*s, {user: '1000'}]\n"
        "    image: busybox:1.36\n"
        "    environment: [~, A, {B: 1}, C=3]\n"
        "    volumes: [~, {type: tmpfs}, {target: /x, type: npipe}, {type: tmpfs, target: /t,"
        " tmpfs: {size: lots}}]\n"
        "    healthcheck: {test: [], interval: never}\n"
        "    deploy: 3\n"
        "    ports: 80\n"
        "    cap_add: [NOT_A_CAP, net_admin]\n"
        "    mem_limit: huge\n"
        "    cpus: -1\n"
        "    stop_grace_period: soon\n"
        "    restart: sometimes\n"
        "    command: 'a \"b c\" ''d e'' \\\\f'\n")
    r = berth.run("import", "compose", *import_args(registry, str(tmp_path / "v")), str(f),
                  "-o", str(tmp_path / "out.yaml"))
    assert r.returncode == 0, r.stderr
    assert berth.run("validate", str(tmp_path / "out.yaml")).returncode == 0
    svc = yaml.safe_load(open(tmp_path / "out.yaml"))["services"]["odd"]
    assert svc["user"] == "1000" and svc["env"] == {"C": "3"}
    assert svc["command"] == ["a", "b c", "d e", "\\f"]
    assert svc["capabilities"] == {"add": ["NET_ADMIN"]}
    assert svc["mounts"] == [{"type": "tmpfs", "target": "/t"}]
    for line in ("'odd': environment: 'A' has no value", "'odd': cap_add: unknown capability",
                 "'odd': mem_limit: 'huge'", "'odd': stop_grace_period: 'soon'",
                 "'odd': restart: unknown restart policy", "'odd': volumes: a 'npipe' mount",
                 "'odd': healthcheck.test: expected CMD", "'odd': volumes: tmpfs size 'lots'",
                 "'odd': deploy: expected a mapping", "'odd': ports: '80' not imported",
                 "'odd': environment: an empty value", "'odd': volumes: an empty value"):
        assert line in r.stderr, (line, r.stderr)


def test_the_readme_compose_example_is_what_berth_prints(berth, tmp_path, registry):
    text = open(os.path.join(TOP, "README.md")).read()
    compose = re.search(r"\$ cat docker-compose.yml\n(.*?)\$ berth import", text, re.S).group(1)
    notes = re.search(r"-o services.yaml\n(.*?)\$ cat services.yaml\n", text, re.S).group(1)
    output = re.search(r"\$ cat services.yaml\n(.*?)```", text, re.S).group(1)
    f = tmp_path / "docker-compose.yml"
    f.write_text(compose)
    r = berth.run("import", "compose", "--registry", f"docker.io=oci+http://{registry.host}",
                  "--volumes-dir", "/srv/volumes", str(f), "-o", str(tmp_path / "s.yaml"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == notes
    got = open(tmp_path / "s.yaml").read()
    digest = yaml.safe_load(got)["services"]["redis"]["image"]["digest"]
    got = got.replace(f"oci+http://{registry.host}/", "oci://docker.io/")
    got = got.replace(f"@{digest}", "@sha256:<the tag's digest today>")
    got = got.replace(f"digest: {digest}", "digest: sha256:<the same>")
    assert got == output
