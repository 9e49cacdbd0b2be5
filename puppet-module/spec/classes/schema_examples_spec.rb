# frozen_string_literal: true

require 'spec_helper'
require 'yaml'

# The module's types and berth's validator must agree: every valid example of
# manifests-schema/ compiles (and renders a file that `berth validate`
# accepts, see tests/puppet/suite), and every invalid example whose mistake
# Puppet data can carry is a compile error.
EXAMPLES = File.expand_path('../../../manifests-schema/examples', __dir__)

# Invalid examples whose mistake lives in the YAML text itself, which Puppet
# never writes: the module always renders `version: 1`, a `services`
# mapping, unique keys, no aliases, tags or tabs.
YAML_LEVEL = %w[
  alias-bomb comments-only deep-nesting duplicate-key duplicate-service empty
  merge-key services-list services-missing services-null tabs top-level-list
  top-unknown-key two-documents undefined-alias version-missing version-string
  version-wrong yaml-syntax-indent yaml-syntax-unclosed
].freeze

# Invalid examples about the host, not the data: Puppet's types cannot know
# whether a seccomp profile file exists there (berth validate, the file's
# validate_cmd, does).
HOST_LEVEL = %w[seccomp-missing-file].freeze

# Invalid examples whose mistake is between two fields of an image, which a
# Struct type cannot relate (the digest in a registry URL, the kinds of its
# mirrors, a signature or an archive format for a registry image): berth
# validate, the file's validate_cmd, refuses them.
CROSS_FIELD = %w[
  registry-digest-mismatch registry-mirror-http registry-signature
].freeze

# YAML data as Hiera hands it to Puppet: null is undef (rspec-puppet would
# write Ruby's nil as the bare word nil, a string).
def undefs(value)
  case value
  when nil then :undef
  when Hash then value.transform_values { |v| undefs(v) }
  when Array then value.map { |v| undefs(v) }
  else value
  end
end

describe 'berth', type: :class do
  it 'has the schema examples to compare with' do
    expect(Dir.glob("#{EXAMPLES}/valid/*.yaml")).not_to be_empty
    expect(Dir.glob("#{EXAMPLES}/invalid/*.yaml").size).to be >= 40
  end

  Dir.glob("#{EXAMPLES}/valid/*.yaml").sort.each do |path|
    name = File.basename(path, '.yaml')
    context "with valid example #{name}" do
      let(:params) { { 'services' => undefs(YAML.safe_load(File.read(path), aliases: true)['services']) } }

      it 'compiles' do
        is_expected.to compile
        save_rendered("example-#{name}", rendered(catalogue))
      end
    end
  end

  Dir.glob("#{EXAMPLES}/invalid/*.yaml").sort.each do |path|
    name = File.basename(path, '.yaml')
    next if YAML_LEVEL.include?(name) || HOST_LEVEL.include?(name) || CROSS_FIELD.include?(name)

    context "with invalid example #{name}" do
      let(:params) { { 'services' => undefs(YAML.safe_load(File.read(path), aliases: true)['services']) } }

      it 'does not compile' do
        is_expected.to compile.and_raise_error(/parameter 'services'/)
      end
    end
  end
end
