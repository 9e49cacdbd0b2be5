# @summary One service of the desired-state file, exactly as schema version 1 has it.
#
# (Not called Berth::Service: that name is the type of the berth::service
# resources, and Puppet allows one entity per name.)
#
# Only `image` is required; every other key takes berth's default when left
# out. A key that is not here is a type error (a typo must not be silently
# ignored).
type Berth::ServiceSpec = Struct[{
    image                     => Berth::Image,
    Optional[command]         => Berth::Command,
    Optional[workdir]         => Berth::Path,
    Optional[user]            => Berth::User,
    Optional[env]             => Berth::Env,
    Optional[network]         => Enum['host', 'none'],
    Optional[hostname]        => Berth::Hostname,
    Optional[mounts]          => Array[Berth::Mount],
    Optional[readonly_rootfs] => Boolean,
    Optional[restart]         => Enum['always', 'on-failure', 'never'],
    Optional[backoff]         => Berth::Backoff,
    Optional[log]             => Berth::Log,
    Optional[stop_signal]     => Berth::Signal,
    Optional[stop_timeout]    => Berth::Duration,
    Optional[limits]          => Berth::Limits,
    Optional[capabilities]    => Berth::Capabilities,
    Optional[seccomp]         => Berth::Seccomp,
    Optional[healthcheck]     => Berth::Healthcheck,
    Optional[enabled]         => Boolean,
}]
