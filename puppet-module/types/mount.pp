# @summary One entry of `mounts`: a bind mount or a tmpfs.
type Berth::Mount = Variant[Berth::Mount::Bind, Berth::Mount::Tmpfs]
