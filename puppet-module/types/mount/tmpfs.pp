# @summary A tmpfs mounted in the container, optionally bounded in size.
type Berth::Mount::Tmpfs = Struct[{
    'type'         => Enum['tmpfs'],
    target         => Berth::Path,
    Optional[size] => Berth::Size,
}]
