# @summary Where a service's image comes from and what it must be.
#
# `url` first, then each of `mirrors` in order; whatever is downloaded must
# match `digest` (and `signature`, when given) before anything runs.
type Berth::Image = Struct[{
    url                 => Berth::Url,
    Optional[mirrors]   => Array[Berth::Url],
    digest              => Berth::Digest,
    Optional[format]    => Enum['auto', 'rootfs', 'oci', 'docker'],
    Optional[signature] => Berth::Signature,
}]
