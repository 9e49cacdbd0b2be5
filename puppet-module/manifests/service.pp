# @summary One berth service, declared from any class; it lands in the host's one desired-state file.
#
# The title is the service name. Each parameter is the schema's key of the
# same name (see Berth::ServiceSpec); leave one out for berth's default. The
# entry is merged with `berth::services` into `berth::config_path`; a name
# that is also in `berth::services` is a compile error naming both places.
#
# @example
#   berth::service { 'web':
#     image   => {
#       url    => 'https://artifacts.example/web-1.4.2.tar.zst',
#       digest => 'sha256:0123...cdef',
#     },
#     command => ['/usr/bin/web', '--port=8080'],
#     limits  => { memory => '512M', cpus => 1.5 },
#   }
#
# @param ensure `absent` leaves the service out of the file, so berth removes
#   that service and no other. It also removes a service of the same name that
#   Hiera's `berth::services` declares for this host (a Hiera level cannot
#   delete what a lower level declares; a node's profile can). No `image` is
#   needed then.
# @param image Where the image comes from and its digest (required when present).
# @param command The command line; default: the image's entrypoint and cmd.
# @param workdir Working directory in the container.
# @param user `uid[:gid]` or a name from the image's /etc/passwd.
# @param env Environment variables.
# @param network `host` (default) or `none`.
# @param hostname The container's host name.
# @param mounts Bind mounts and tmpfs mounts.
# @param readonly_rootfs Mount the image read-only.
# @param restart `always` (default), `on-failure` or `never`.
# @param backoff Restart delays.
# @param log Bounds of the captured output.
# @param stop_signal The signal that asks the service to stop.
# @param stop_timeout How long to wait after it before SIGKILL.
# @param limits Memory, CPU, pids and open files limits.
# @param capabilities Capabilities added to and dropped from podman's default set (Docker's without NET_RAW, MKNOD and AUDIT_WRITE).
# @param seccomp The seccomp filter: `default` (Docker's default profile), `unconfined`,
#   or the absolute path of a profile file in Docker's JSON format on the host.
# @param healthcheck A command that tells whether the service is healthy.
# @param enabled false: keep the service declared but stopped.
define berth::service (
  Enum['present', 'absent'] $ensure = 'present',
  Optional[Berth::Image] $image = undef,
  Optional[Berth::Command] $command = undef,
  Optional[Berth::Path] $workdir = undef,
  Optional[Berth::User] $user = undef,
  Optional[Berth::Env] $env = undef,
  Optional[Enum['host', 'none']] $network = undef,
  Optional[Berth::Hostname] $hostname = undef,
  Optional[Array[Berth::Mount]] $mounts = undef,
  Optional[Boolean] $readonly_rootfs = undef,
  Optional[Enum['always', 'on-failure', 'never']] $restart = undef,
  Optional[Berth::Backoff] $backoff = undef,
  Optional[Berth::Log] $log = undef,
  Optional[Berth::Signal] $stop_signal = undef,
  Optional[Berth::Duration] $stop_timeout = undef,
  Optional[Berth::Limits] $limits = undef,
  Optional[Berth::Capabilities] $capabilities = undef,
  Optional[Berth::Seccomp] $seccomp = undef,
  Optional[Berth::Healthcheck] $healthcheck = undef,
  Optional[Boolean] $enabled = undef,
) {
  unless $title =~ Berth::Name {
    $rule = "lower case letters, digits, '_', '.' and '-', starting with a letter or a digit, at most 63 characters"
    fail("berth::service { '${title}': } the title is the service name: ${rule}")
  }
  if $ensure == 'present' and $image == undef {
    fail("berth::service { '${title}': } needs an image (only ensure => absent goes without)")
  }
  include berth
  # Render the whole file again, this service included; the last
  # berth::service evaluated leaves the complete file in the catalog.
  berth::render_config($berth::services, $berth::config_path)
}
