# @summary A command line as a list: the program, then its arguments (no shell).
type Berth::Command = Array[String, 1]
