# @summary Resource limits: memory (a size), CPUs (may be fractional), pids, open files.
type Berth::Limits = Struct[{
    Optional[memory] => Berth::Size,
    Optional[cpus]   => Variant[Integer[1, 4096], Float[0.001, 4096.0]],
    Optional[pids]   => Integer[1, 4194304],
    Optional[nofile] => Integer[1, 1048576],
}]
