# @summary Capabilities on top of Docker's default set: `add`, then `drop`.
type Berth::Capabilities = Struct[{
    Optional[add]  => Array[Berth::Capability],
    Optional[drop] => Array[Berth::Capability],
}]
