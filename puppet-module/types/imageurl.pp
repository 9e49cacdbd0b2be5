# @summary Where an image comes from: an http(s) URL of an artifact, or a
#   registry image (Berth::RegistryUrl).
type Berth::ImageUrl = Variant[Berth::Url, Berth::RegistryUrl]
