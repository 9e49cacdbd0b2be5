# @summary Resource limits: memory (a size), CPUs (may be fractional), pids, open files.
type Berth::Limits = Struct[{
    Optional[memory] => Berth::Size,
    Optional[cpus]   => Variant[Integer[1], Float[0.001]],
    Optional[pids]   => Integer[1],
    Optional[nofile] => Integer[1],
}]
