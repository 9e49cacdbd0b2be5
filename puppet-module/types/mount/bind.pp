# @summary A bind mount of a host path into the container.
type Berth::Mount::Bind = Struct[{
    Optional['type']   => Enum['bind'],
    source             => Berth::Path,
    target             => Berth::Path,
    Optional[readonly] => Boolean,
}]
