# @summary The user a service runs as: `uid[:gid]` or `name[:group]` from the image's /etc/passwd and /etc/group, or a bare uid.
type Berth::User = Variant[Integer[0], Pattern[/\A(?=.{1,65}\z)([a-z_][a-z0-9_.-]*|[0-9]+)(:([a-z_][a-z0-9_.-]*|[0-9]+))?\z/]]
