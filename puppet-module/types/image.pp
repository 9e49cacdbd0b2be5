# @summary Where a service's image comes from and what it must be.
#
# `url` first, then each of `mirrors` in order; whatever is downloaded must
# match `digest` (and `signature`, when given) before anything runs. A
# registry image's mirrors are registries too, and it takes no signature
# and no archive format (berth validate, the file's validate_cmd, checks
# these and that the URL's digest is `digest`).
type Berth::Image = Struct[{
    url                 => Berth::ImageUrl,
    Optional[mirrors]   => Array[Berth::ImageUrl],
    digest              => Berth::Digest,
    Optional[format]    => Enum['auto', 'rootfs', 'oci', 'docker'],
    Optional[signature] => Berth::Signature,
}]
