# @summary Writes the one desired-state file of berth on this host and has berth converge to it.
#
# The file (`config_path`) holds every service of `services` (usually from
# Hiera, deep-merged across levels) and every `berth::service` declared
# anywhere in the catalog, keys sorted so that the same data always gives the
# same bytes. Puppet checks it with `berth validate` before it replaces the
# old one, so an invalid file never lands. Then either the berth agent
# (`manage_agent => true`) notices the change and converges, or Puppet runs
# `berth apply` once after each change.
#
# @example Hiera only
#   include berth
#   # data: berth::services: {web: {image: {url: ..., digest: sha256:...}}}
#
# @example Without the agent: Puppet runs `berth apply` after each change
#   class { 'berth': manage_agent => false }
#
# @param services
#   Services by name, each a Berth::ServiceSpec (the schema's service mapping).
#   The module's data sets a deep merge for this key, so each Hiera level can
#   add services or override single fields of a service.
# @param config_path
#   The desired-state file. Its directory is created when missing (see
#   `manage_config_dir`).
# @param root
#   berth's state directory (`--root`), passed to `berth apply` and to the
#   agent.
# @param manage_agent
#   true: keep the `berth agent` systemd service running (it converges on
#   every change of the file). false: no agent; a refreshonly exec runs
#   `berth apply` whenever the file changes.
# @param binary_path
#   The berth binary, used for `validate_cmd`, `berth apply` and the agent.
# @param show_diff
#   Show the file's diff in reports and in `puppet agent --noop`. Turn it off
#   when `env` holds secrets.
# @param manage_config_dir
#   Create the directory of `config_path`.
# @param config_owner
#   Owner of the file.
# @param config_group
#   Group of the file.
# @param config_mode
#   Mode of the file (0640 by default: `env` may hold secrets).
# @param agent_service_name
#   The systemd unit of the agent, shipped with berth as berth-agent.service.
# @param agent_ensure
#   `running` or `stopped` (stopping the agent never stops services).
# @param agent_enable
#   Start the agent at boot.
# @param package_name
#   When set, the package that installs berth, ensured before anything else.
# @param package_ensure
#   The package's ensure (`installed`, `latest` or a version).
# @param apply_timeout
#   Seconds `berth apply` may take (it fetches images) when `manage_agent` is false.
# @param apply_on_change
#   With `manage_agent => false`: true (the default) runs `berth apply` after
#   each change of the file; false leaves converging to a `berth agent` that
#   something else than systemd supervises (runit, a container, a test).
# @param prefetch
#   Images to have in the store before the file changes (name => Berth::Image,
#   as a service's `image`): each one not there yet is fetched and verified
#   with `berth fetch` before the file is written, so that the switch to a
#   release does not wait for its download. List the next release here one
#   Puppet run ahead of the wave that switches to it.
# @param group
#   The host's rollout group (`canary`, `main`, ...), reported as the fact's
#   `group` so that a rollout tool, `berth-gate` (files/berth-gate) or a
#   PuppetDB query can select a wave's hosts by their facts.
# @param fact_config_path
#   Where the `berth` fact finds `root` and `binary_path` (JSON). The fact
#   reads /etc/berth/fact.json; another path is for tests (the fact's
#   BERTH_FACT_CONFIG).
class berth (
  Berth::Services $services = {},
  Berth::Path $config_path = '/etc/berth/services.yaml',
  Berth::Path $root = '/var/lib/berth',
  Boolean $manage_agent = true,
  Berth::Path $binary_path = '/usr/bin/berth',
  Boolean $show_diff = true,
  Boolean $manage_config_dir = true,
  String[1] $config_owner = 'root',
  String[1] $config_group = 'root',
  Pattern[/\A0?[0-7]{3}\z/] $config_mode = '0640',
  Pattern[/\A[A-Za-z0-9@_.:-]+\z/] $agent_service_name = 'berth-agent',
  Enum['running', 'stopped'] $agent_ensure = 'running',
  Boolean $agent_enable = true,
  Optional[String[1]] $package_name = undef,
  String[1] $package_ensure = 'installed',
  Integer[0] $apply_timeout = 900,
  Berth::Path $fact_config_path = '/etc/berth/fact.json',
  Boolean $apply_on_change = true,
  Hash[String[1], Berth::Image] $prefetch = {},
  Optional[String[1]] $group = undef,
) {
  if $package_name {
    package { $package_name:
      ensure => $package_ensure,
      before => File[$config_path],
    }
  }

  if $manage_config_dir {
    $config_dir = $config_path.regsubst(/\/[^\/]*\z/, '')
    if $config_dir != '' {
      file { $config_dir:
        ensure => directory,
        owner  => $config_owner,
        group  => $config_group,
        mode   => '0755',
        before => File[$config_path],
      }
    }
  }

  $prefetch.each |$name, $image| {
    $hex = $image['digest'].regsubst(/\Asha256:/, '')
    $mirrors = $image.get('mirrors', []).map |$m| { ['--mirror', $m] }.flatten
    $format = $image['format'] ? { undef => [], default => ['--format', $image['format']] }
    $signature = $image['signature'] ? {
      undef   => [],
      default => ['--signature', $image['signature']['url'], '--public-key', $image['signature']['public_key']],
    }
    exec { "berth fetch ${name}":
      command   => [$binary_path, '--root', $root, 'fetch', $image['url'], '--digest', $image['digest']]
        + $mirrors + $format + $signature,
      creates   => "${root}/images/${hex}",
      logoutput => on_failure,
      timeout   => $apply_timeout,
      before    => File[$config_path],
    }
  }

  # The content is complete only once every berth::service has been
  # evaluated: each of them renders it again (see berth::render_config).
  file { $config_path:
    ensure       => file,
    owner        => $config_owner,
    group        => $config_group,
    mode         => $config_mode,
    content      => berth::render_config($services, $config_path),
    validate_cmd => "${binary_path} validate %",
    show_diff    => $show_diff,
    backup       => false,
  }

  # The fact runs outside the catalog: it learns the root and the binary here.
  $config_parent = $config_path.regsubst(/\/[^\/]*\z/, '')
  $fact_config_dir = $fact_config_path.regsubst(/\/[^\/]*\z/, '')
  $fact_in_config_dir = $manage_config_dir and $config_parent != '' and $fact_config_dir == $config_parent
  $fact_requires = $fact_in_config_dir ? {
    true    => File[$fact_config_dir],
    default => undef,
  }
  $group_member = $group ? { undef => '', default => ", \"group\": ${berth::json_string($group)}" }
  file { $fact_config_path:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0644',
    content => "{\"root\": ${berth::json_string($root)}, \"binary\": ${berth::json_string($binary_path)}${group_member}}\n",
    require => $fact_requires,
  }
  if $package_name {
    Package[$package_name] -> File[$fact_config_path]
  }

  $dropin_dir = "/etc/systemd/system/${agent_service_name}.service.d"
  if $manage_agent {
    # The packaged unit runs the agent with berth's defaults; a drop-in
    # points it at other paths only when the class is given other ones.
    if [$binary_path, $root, $config_path] != ['/usr/bin/berth', '/var/lib/berth', '/etc/berth/services.yaml'] {
      $argv = [$binary_path, '--root', $root, '--config', $config_path, 'agent'].map |$a| {
        $a =~ /[\s"\\]/ ? { true => "\"${a.regsubst(/(["\\])/, '\\\\\1', 'G')}\"", default => $a }
      }
      $exec_start = $argv.join(' ').regsubst(/%/, '%%', 'G')
      file { $dropin_dir:
        ensure => directory,
        owner  => 'root',
        group  => 'root',
        mode   => '0755',
      }
      file { "${dropin_dir}/puppet-berth.conf":
        ensure  => file,
        owner   => 'root',
        group   => 'root',
        mode    => '0644',
        content => "# Managed by Puppet (module berth)\n[Service]\nExecStart=\nExecStart=${exec_start}\n",
        notify  => Service[$agent_service_name],
      }
    } else {
      file { "${dropin_dir}/puppet-berth.conf":
        ensure => absent,
        notify => Service[$agent_service_name],
      }
    }
    # No notify from the file: the agent watches it (inotify) and converges
    # by itself. Restarting the agent never restarts services.
    service { $agent_service_name:
      ensure  => $agent_ensure,
      enable  => $agent_enable,
      require => File[$config_path],
    }
  } elsif $apply_on_change {
    exec { 'berth apply':
      command     => [$binary_path, '--root', $root, '--config', $config_path, 'apply'],
      refreshonly => true,
      subscribe   => File[$config_path],
      logoutput   => true,
      timeout     => $apply_timeout,
    }
  }
}
