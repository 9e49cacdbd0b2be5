# @summary A host name (RFC 1123 labels), at most 64 characters.
type Berth::Hostname = Pattern[/\A(?=.{1,64}\z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z/]
