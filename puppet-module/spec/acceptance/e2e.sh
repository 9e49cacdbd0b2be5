#!/usr/bin/env bash
# End to end: the real `puppet apply` of the berth module drives the real
# berth against a temporary root (issue 7's acceptance). Run as root:
#   BERTH_BIN=build/berth puppet-module/spec/acceptance/e2e.sh
# Needs `berth validate`, `berth apply` and `berth status --json`; prints
# "N passed, N failed" and exits non-zero on any failure.
#
#  1. a manifest with two services (one from Hiera, one berth::service) →
#     the file is written and validated, `berth apply` runs (refreshonly
#     exec, manage_agent => false), both containers run;
#  2. the same manifest again → nothing changes, apply does not run;
#  3. web's image changed → only web is replaced (api keeps its pid);
#  4. a bad digest → the compile fails; a value only berth rejects →
#     validate_cmd fails, Puppet reports it; either way the old file stays
#     and nothing running changes;
#  5. --noop (--show_diff) → the YAML diff is shown, nothing changes;
#  6. the `berth` fact (facter --custom-dir) reports both services running
#     at their digests, from <root>/status.json and from `berth status --json`.
# Images are rootfs tarballs built here from busybox-static, served by a
# local HTTP server on 127.0.0.1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=$(cd "$here/../.." && pwd)
: "${BERTH_BIN:?set BERTH_BIN to the berth binary}"
BERTH_BIN=$(realpath "$BERTH_BIN")
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

for verb in validate apply status; do
  "$BERTH_BIN" "$verb" --help >/dev/null 2>&1 ||
    { echo "e2e: '$BERTH_BIN $verb --help' fails: this berth cannot run the end-to-end test" >&2; exit 1; }
done

t=$(mktemp -d /tmp/berth-puppet-e2e.XXXXXX)
root=$t/root conf=$t/etc/services.yaml
server_pid=
cleanup() {
  # stop what this test started: converge to no services, then the server
  [ -f "$conf" ] && printf 'version: 1\nservices: {}\n' > "$t/empty.yaml" &&
    "$BERTH_BIN" --root "$root" apply -f "$t/empty.yaml" >/dev/null 2>&1
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$t"
}
trap cleanup EXIT
mkdir -p "$t/modules" "$t/www" "$t/data"
ln -s "$module" "$t/modules/berth"

# --- images: busybox rootfs tarballs, two versions ---------------------------
image() { # name version → $t/www/NAME-VERSION.tar.gz, prints its digest
  local r=$t/build/$1-$2
  mkdir -p "$r/bin" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  ln -sf busybox "$r/bin/sh"
  ln -sf busybox "$r/bin/sleep"
  echo "$1 $2" > "$r/etc/version"
  tar -C "$r" --owner=0 --group=0 --mtime=@0 --sort=name -czf "$t/www/$1-$2.tar.gz" .
  echo "sha256:$(sha256sum "$t/www/$1-$2.tar.gz" | cut -d' ' -f1)"
}
WEB1=$(image web 1) WEB2=$(image web 2) API1=$(image api 1)

# An HTTP server on 127.0.0.1 that prints its port once it listens.
mkfifo "$t/port"
python3 - "$t/www" > "$t/port" <<'PY' &
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.log_message = lambda *a: None
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
server_pid=$!
read -r -t 10 port < "$t/port" || { echo "e2e: the HTTP server did not start" >&2; exit 1; }
url=http://127.0.0.1:$port

# --- puppet apply -------------------------------------------------------------
papply() { # web digest, api memory, extra args → $t/out, $rc
  local web=$1 mem=$2; shift 2
  cat > "$t/hiera.yaml" <<YAML
version: 5
defaults: {datadir: $t/data, data_hash: yaml_data}
hierarchy: [{name: common, path: common.yaml}]
YAML
  cat > "$t/data/common.yaml" <<YAML
berth::services:
  web:
    image: {url: "$url/web-${web_version:-1}.tar.gz", digest: "$web", format: rootfs}
    command: [/bin/sleep, "3600"]
YAML
  cat > "$t/site.pp" <<PP
class { 'berth':
  config_path      => '$conf',
  root             => '$root',
  binary_path      => '$BERTH_BIN',
  manage_agent     => false,
  fact_config_path => '$t/fact.json',
}
berth::service { 'api':
  image   => { url => '$url/api-1.tar.gz', digest => '$API1', format => 'rootfs' },
  command => ['/bin/sleep', '3600'],
  limits  => { memory => '$mem' },
}
PP
  puppet apply --detailed-exitcodes --modulepath "$t/modules" --hiera_config "$t/hiera.yaml" \
    --confdir "$t/puppet" --vardir "$t/puppet/var" --codedir "$t/puppet/code" --publicdir "$t/puppet/public" --color false \
    "$@" "$t/site.pp" > "$t/out" 2>&1
  rc=$?
}
status() { "$BERTH_BIN" --root "$root" status --json; }
field() { # service key → value from berth status --json
  status | python3 -c "
import json, sys
for s in json.load(sys.stdin)['services']:
    if s['name'] == sys.argv[1]: print(s.get(sys.argv[2]))" "$1" "$2"
}
check() { # description, condition (eval'ed)
  if eval "$2"; then pass "$1"; else fail "$1 (puppet exit $rc)"; sed 's/^/    /' "$t/out"; status | sed 's/^/    /'; fi
}

web_version=1 papply "$WEB1" 64M
check "two services: file written and validated, both running" \
  '[ $rc = 2 ] && "$BERTH_BIN" validate "$conf" && [ "$(field web state)" = running ] &&
   [ "$(field api state)" = running ] && [ "$(field web image)" = "$WEB1" ] && [ "$(field api image)" = "$API1" ]'
web_pid=$(field web pid) api_pid=$(field api pid)
cp "$conf" "$t/good-1.yaml"

web_version=1 papply "$WEB1" 64M
check "the same manifest again changes nothing" \
  '[ $rc = 0 ] && [ "$(field web pid)" = "$web_pid" ] && [ "$(field api pid)" = "$api_pid" ]'

web_version=2 papply "$WEB2" 64M
check "a new web image replaces web only" \
  '[ $rc = 2 ] && [ "$(field web image)" = "$WEB2" ] && [ "$(field web state)" = running ] &&
   [ "$(field web pid)" != "$web_pid" ] && [ "$(field api pid)" = "$api_pid" ]'
web_pid=$(field web pid)
cp "$conf" "$t/good-2.yaml"

web_version=2 papply "sha256:0123" 64M
check "a bad digest fails the compile: old file, nothing running changes" \
  '[ $rc = 1 ] && grep -q Berth::Digest "$t/out" && cmp -s "$conf" "$t/good-2.yaml" &&
   [ "$(field web pid)" = "$web_pid" ] && [ "$(field api pid)" = "$api_pid" ]'

web_version=2 papply "$WEB2" 99999999999999999999G
check "validate_cmd rejects a value only berth sees: reported, old file, nothing changes" \
  '[ $((rc & 4)) = 4 ] && grep -q "returned 1" "$t/out" && cmp -s "$conf" "$t/good-2.yaml" &&
   [ "$(field web pid)" = "$web_pid" ] && [ "$(field api pid)" = "$api_pid" ]'

web_version=1 papply "$WEB1" 64M --noop --show_diff
check "--noop shows the diff and changes nothing" \
  'grep -q "^-      digest: $WEB2" "$t/out" && grep -q "^+      digest: $WEB1" "$t/out" &&
   cmp -s "$conf" "$t/good-2.yaml" && [ "$(field web pid)" = "$web_pid" ]'

fact_check() { # description, env...
  local desc=$1; shift
  if out=$(env "$@" facter --custom-dir "$module/lib/facter" --json berth 2>/dev/null) &&
     python3 -c "
import json, sys
f = json.loads(sys.argv[1])['berth']
assert f['services']['web']['state'] == 'running' and f['services']['web']['image'] == sys.argv[2], f
assert f['services']['api']['state'] == 'running' and f['services']['api']['image'] == sys.argv[3], f
assert f['summary']['running'] == 2, f
" "$out" "$WEB2" "$API1"; then pass "fact: $desc"; else fail "fact: $desc"; echo "$out"; fi
}
fact_check "both services running at their digests (status.json)" BERTH_ROOT="$root" BERTH_BINARY=/nonexistent
mv "$root/status.json" "$t/status.json.saved" 2>/dev/null
fact_check "the same from berth status --json" BERTH_ROOT="$root" BERTH_BINARY="$BERTH_BIN"
# what the class wrote for the fact: the root and the binary, nothing else set
fact_check "the root and binary from the fact.json the class wrote" -u BERTH_ROOT -u BERTH_BINARY \
  BERTH_FACT_CONFIG="$t/fact.json"
mv "$t/status.json.saved" "$root/status.json" 2>/dev/null

echo "puppet e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
