# frozen_string_literal: true

# @summary Renders the one desired-state file of this host and keeps the
#   catalog's File resource for it up to date.
#
# Returns the YAML of schema version 1 for `services` (the class parameter
# `berth::services`) together with every `berth::service` declared in the
# catalog so far, with keys sorted at every level so that the same data gives
# the same bytes whatever the declaration order. As a side effect it sets the
# `content` of `File[config_path]` when that resource is already in the
# catalog.
#
# Why a side effect: a class cannot read resources that are declared after
# it is evaluated, and Puppet has no hook that runs once all of them are
# declared. But every `berth::service` calls this function from its body,
# and a defined type's body is evaluated after its declaration; so the last
# `berth::service` body to run sees every declaration, and its rendering is
# the one that stays in the catalog. This gives one file, rendered at compile
# time (visible in the catalog, in rspec-puppet and in `puppet agent --noop`
# diffs), without puppetlabs-concat.
#
# A name declared both in `berth::services` and by a present `berth::service`
# is a compile error naming both places; a `berth::service` with
# `ensure => absent` removes that name, from Hiera's services too. Two
# `berth::service` with the same title are Puppet's own duplicate declaration
# error, which also names both.
Puppet::Functions.create_function(:'berth::render_config', Puppet::Functions::InternalFunction) do
  # @param services the class parameter berth::services (name => Berth::Service)
  # @param config_path the title of the File resource that holds the file
  # @return [String] the file's content
  dispatch :render do
    scope_param
    param 'Hash', :services
    param 'String', :config_path
    return_type 'String'
  end

  # (Methods, not constants: a constant in this block would land in Object.)
  def fields
    %w[
      image command workdir user env network hostname mounts readonly_rootfs
      restart backoff log stop_signal stop_timeout limits capabilities
      seccomp healthcheck enabled
    ]
  end

  def header
    "# Managed by Puppet (module berth): local edits are overwritten.\n" \
      "# Desired state of berth on this host; check with `berth validate FILE`.\n"
  end

  def render(scope, services, config_path)
    all = {}
    services.each { |name, spec| all[name.to_s] = clean(spec) }
    declared(scope).each do |res|
      name = res.title.to_s
      if param(res, :ensure) == 'absent'
        all.delete(name) # this service only, wherever it was declared
        next
      end
      if services.key?(name)
        klass = scope.catalog.resource('Class', 'Berth')
        where = klass && klass.file ? " (class berth declared at #{loc(klass)})" : ''
        raise Puppet::ParseError, "berth: service '#{name}' is declared twice: by " \
                                  "berth::service { '#{name}': } at #{loc(res)} and in the " \
                                  "berth::services parameter (Hiera key berth::services)#{where}; " \
                                  'remove one of them'
      end
      spec = {}
      fields.each do |f|
        v = param(res, f.to_sym)
        spec[f] = clean(v) unless v.nil?
      end
      all[name] = spec
    end
    content = header + "version: 1\n" + (all.empty? ? "services: {}\n" : "services:\n" + block(all, 2))
    file = scope.catalog.resource('File', config_path)
    file[:content] = content if file
    content
  end

  # Berth::Service resources that will be in the catalog: realized, not exported.
  def declared(scope)
    scope.catalog.resources.select do |r|
      r.type == 'Berth::Service' && !r.virtual && !r.exported
    end
  end

  def param(res, name)
    v = res[name]
    v == :undef ? nil : v
  end

  def loc(res)
    res.line ? "#{res.file}:#{res.line}" : res.file.to_s
  end

  # Plain data: string keys, no undef values.
  def clean(v)
    case v
    when Hash
      v.each_with_object({}) { |(k, x), h| h[k.to_s] = clean(x) unless x.nil? || x == :undef }
    when Array
      v.map { |x| clean(x) }
    else
      v
    end
  end

  # Block-style YAML of a Hash at `indent`, keys sorted bytewise.
  def block(hash, indent)
    out = +''
    pad = ' ' * indent
    hash.keys.sort_by(&:b).each do |k|
      v = hash[k]
      if v.is_a?(Hash) && !v.empty?
        out << "#{pad}#{scalar(k)}:\n" << block(v, indent + 2)
      elsif v.is_a?(Array) && !v.empty?
        out << "#{pad}#{scalar(k)}:\n" << seq(v, indent + 2)
      else
        out << "#{pad}#{scalar(k)}: #{scalar(v)}\n"
      end
    end
    out
  end

  def seq(array, indent)
    out = +''
    pad = ' ' * indent
    array.each do |v|
      if v.is_a?(Hash) && !v.empty?
        out << "#{pad}- " << block(v, indent + 2).sub(/\A */, '')
      elsif v.is_a?(Array) && !v.empty?
        out << "#{pad}-\n" << seq(v, indent + 2)
      else
        out << "#{pad}- #{scalar(v)}\n"
      end
    end
    out
  end

  def plain
    %r{\A(?:-(?=\S)|[A-Za-z0-9/_.~])[A-Za-z0-9/_.:=@+,~-]*\z}
  end

  # Strings a YAML 1.1 or 1.2 reader could take for something else than a
  # string: booleans, null, numbers, sexagesimals, timestamps.
  def not_a_string
    [
    /\A(?:true|false|yes|no|on|off|y|n|null|~)\z/i,
    /\A[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?\z/,
    /\A[-+]?\.(?:inf|nan)\z/i,
    /\A[-+]?0(?:x[0-9a-fA-F_]+|o?[0-7_]+|b[01_]+)\z/,
    /\A[-+]?[0-9][0-9_]*(?::[0-9_]+)+/,
      /\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/,
    ]
  end

  def scalar(v)
    case v
    when true, false, Integer then v.to_s
    when Float then v.finite? ? v.to_s : raise(Puppet::ParseError, "berth: #{v} is not a number berth accepts")
    when nil then 'null'
    when Hash then '{}'
    when Array then '[]'
    else
      s = v.to_s
      return s if plain.match?(s) && not_a_string.none? { |re| re.match?(s) }
      quote(s)
    end
  end

  def quote(s)
    body = s.each_char.map do |c|
      case c
      when '"' then '\\"'
      when '\\' then '\\\\'
      when "\n" then '\\n'
      when "\t" then '\\t'
      when "\r" then '\\r'
      else c.ord < 0x20 || c.ord == 0x7f ? format('\\u%04x', c.ord) : c
      end
    end
    "\"#{body.join}\""
  end
end
