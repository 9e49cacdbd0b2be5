# @summary Restart delays: start at `initial`, double up to `max`, reset after `reset_after` of uptime.
type Berth::Backoff = Struct[{
    Optional[initial]     => Berth::Duration,
    Optional[max]         => Berth::Duration,
    Optional[reset_after] => Berth::Duration,
}]
