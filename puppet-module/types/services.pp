# @summary The `services:` mapping: name => service.
type Berth::Services = Hash[Berth::Name, Berth::ServiceSpec]
