# @summary A service name: what `berth ps` shows and the key under `services:`.
#
# Lower case letters, digits, `_`, `.` and `-`; starts with a letter or a
# digit; at most 63 characters.
type Berth::Name = Pattern[/\A[a-z0-9][a-z0-9_.-]{0,62}\z/]
