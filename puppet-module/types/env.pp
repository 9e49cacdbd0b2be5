# @summary Environment variables: NAME => value (a string, a number or a boolean, written as given).
type Berth::Env = Hash[Pattern[/\A[A-Za-z_][A-Za-z0-9_]*\z/], Variant[String, Integer, Float, Boolean]]
