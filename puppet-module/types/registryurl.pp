# @summary An image in an OCI registry, pinned by digest:
#   oci://HOST[:PORT]/REPO[:TAG]@sha256:HEX (https), or oci+http:// (plain http).
#
# `berth pin oci://HOST/REPO:TAG` prints one. The digest must be the image's.
type Berth::RegistryUrl = Pattern[/\Aoci(\+http)?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(:[0-9]{1,5})?\/[a-z0-9]+([._-]+[a-z0-9]+)*(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}\z/]
