# @summary A minisign signature of the artifact: where to get it, and the public key that must have made it.
type Berth::Signature = Struct[{
    url        => Berth::Url,
    public_key => Pattern[/\ARW[A-Za-z0-9+\/]{54}\z/],
}]
