# @summary A size: a number of bytes, or a string with a K, M, G or T suffix (`512M`; powers of 1024; `i` and/or `B` may follow: `64MiB`, `10MB`).
type Berth::Size = Variant[Integer[1, 9007199254740992], Pattern[/\A[1-9][0-9]*([KMGTkmgt]i?)?[Bb]?\z/]]
