# @summary Capabilities on top of podman's default set (Docker's without NET_RAW, MKNOD and AUDIT_WRITE): `add`, then `drop`.
type Berth::Capabilities = Struct[{
    Optional[add]  => Array[Berth::Capability],
    Optional[drop] => Array[Berth::Capability],
}]
