# @summary A Berth::Duration greater than zero.
type Berth::PositiveDuration = Pattern[/\A(?![0.]*(ms|s|m|h)\z)(0|[1-9][0-9]{0,7})(\.[0-9]{1,3})?(ms|s|m|h)\z/]
