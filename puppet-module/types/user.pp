# @summary The user a service runs as: `uid[:gid]` or a name (and group) from the image's /etc/passwd.
type Berth::User = Pattern[/\A[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?\z/]
