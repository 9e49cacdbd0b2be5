# @summary A host name: dot-separated labels of letters, digits and inner `-`, at most 64 characters.
type Berth::Hostname = Pattern[/\A(?=.{1,64}\z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\z/]
