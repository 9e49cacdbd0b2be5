# @summary Captured output: rotated at `max_size`, `max_files` kept.
type Berth::Log = Struct[{
    Optional[max_size]  => Berth::Size,
    Optional[max_files] => Integer[1, 1000],
}]
