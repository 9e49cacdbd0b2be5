# @summary A duration: a number with a unit, ms, s, m or h (`500ms`, `10s`, `1.5m`, `2h`).
type Berth::Duration = Pattern[/\A[0-9]+(\.[0-9]+)?(ms|s|m|h)\z/]
