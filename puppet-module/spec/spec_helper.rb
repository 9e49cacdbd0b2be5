# frozen_string_literal: true

# rspec-puppet setup for the berth module. Run from puppet-module/ with
# `rspec spec` (tests/puppet/suite does). Puppet's module path is a temporary
# directory holding a `berth` link to this module, so the module compiles
# under its real name whatever the checkout's directory is called.
require 'fileutils'
require 'tmpdir'
require 'rspec-puppet'

MODULE_ROOT = File.expand_path('..', __dir__)
FIXTURES = File.join(__dir__, 'fixtures')
MODULEPATH = Dir.mktmpdir('berth-modulepath-')
File.symlink(MODULE_ROOT, File.join(MODULEPATH, 'berth'))
File.symlink(File.join(FIXTURES, 'modules', 'profile'), File.join(MODULEPATH, 'profile'))
MANIFEST_DIR = Dir.mktmpdir('berth-manifests-')
File.write(File.join(MANIFEST_DIR, 'site.pp'), '')
at_exit { FileUtils.rm_rf([MODULEPATH, MANIFEST_DIR]) }

RSpec.configure do |c|
  c.setup_fixtures = false # no links or directories made in the checkout
  c.module_path = MODULEPATH
  c.manifest = File.join(MANIFEST_DIR, 'site.pp')
  c.hiera_config = File.join(FIXTURES, 'hiera', 'hiera.yaml')
  c.default_facts = {
    'os' => { 'family' => 'Debian', 'name' => 'Debian', 'release' => { 'major' => '12' } },
    'networking' => { 'fqdn' => 'testhost.example' },
  }
  c.strict_variables = true
end

CONFIG = '/etc/berth/services.yaml'

# The rendered desired-state file of a compiled catalogue.
def rendered(cat, path = CONFIG)
  res = cat.resource('File', path)
  raise "no File[#{path}] in the catalogue" unless res
  res[:content]
end

# Keep a rendered file for `berth validate` (tests/puppet/suite sets the
# directory): every shape the specs render is checked by berth itself too.
def save_rendered(name, content)
  dir = ENV['BERTH_RENDER_DIR']
  return unless dir && !dir.empty?
  File.write(File.join(dir, "#{name}.yaml"), content)
end

DIGEST_A = "sha256:#{'a' * 64}"
DIGEST_B = "sha256:#{'b' * 64}"
DIGEST_C = "sha256:#{'c' * 64}"
PUBKEY = 'RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3'
