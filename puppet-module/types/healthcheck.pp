# @summary A command run inside the service every `interval`; unhealthy after `retries` failures.
type Berth::Healthcheck = Struct[{
    command            => Berth::Command,
    Optional[interval] => Berth::Duration,
    Optional[timeout]  => Berth::Duration,
    Optional[retries]  => Integer[1],
}]
