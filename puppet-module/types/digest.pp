# @summary The identity of an image artifact: `sha256:` and 64 lower-case hex digits.
#
# `berth pin URL` prints it. Nothing runs unless the artifact's sha256 matches.
type Berth::Digest = Pattern[/\Asha256:[0-9a-f]{64}\z/]
