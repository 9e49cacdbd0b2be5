# @summary A size: a number of bytes, or a string with a K, M or G suffix (`512M`).
type Berth::Size = Variant[Integer[0], Pattern[/\A[0-9]+[KMG]?\z/]]
