# @summary An absolute path.
type Berth::Path = Pattern[/\A\//]
