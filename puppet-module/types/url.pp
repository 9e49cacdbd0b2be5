# @summary An http:// or https:// URL with a host and no white space.
type Berth::Url = Pattern[/\Ahttps?:\/\/[^\s\/?#]+([\/?#]\S*)?\z/]
