# @summary A command run inside the service every `interval`; unhealthy after `retries` failures.
type Berth::Healthcheck = Struct[{
    command                        => Berth::Command,
    Optional[interval]             => Berth::PositiveDuration,
    Optional[timeout]              => Berth::PositiveDuration,
    Optional[retries]              => Integer[1, 1000],
    Optional[restart_on_unhealthy] => Boolean,
}]
