# @summary The seccomp filter of a service: `default` (Docker's default
# profile), `unconfined` (none), or the absolute path of a profile file in
# Docker's JSON format (it must exist on the host when berth validates the
# file).
type Berth::Seccomp = Variant[Enum['default', 'unconfined'], Berth::Path]
