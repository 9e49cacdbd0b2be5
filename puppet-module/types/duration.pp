# @summary A duration: a number (at most 3 decimals) and a unit, ms, s, m or h (`250ms`, `10s`, `1.5m`, `1h`).
type Berth::Duration = Pattern[/\A(0|[1-9][0-9]{0,7})(\.[0-9]{1,3})?(ms|s|m|h)\z/]
