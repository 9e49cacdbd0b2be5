# frozen_string_literal: true

require 'spec_helper'

IMG_B = "{ url => 'https://artifacts.example/b.tar', digest => '#{DIGEST_B}' }"
IMG_C = "{ url => 'https://artifacts.example/c.tar', digest => '#{DIGEST_C}' }"

describe 'berth::service', type: :define do
  let(:title) { 'api' }
  let(:params) do
    {
      'image' => { 'url' => 'https://artifacts.example/api.tar', 'digest' => DIGEST_C },
      'command' => ['/usr/bin/api', '--listen=:9000'],
      'user' => 'api',
      'env' => { 'PORT' => 9000, 'FEATURE_X' => 'on' },
      'limits' => { 'memory' => '256M' },
    }
  end

  context 'next to the Hiera services' do
    it 'lands in the same single file, merged and sorted' do
      is_expected.to contain_class('berth')
      expect(rendered(catalogue)).to eq(<<~YAML)
        # Managed by Puppet (module berth): local edits are overwritten.
        # Desired state of berth on this host; check with `berth validate FILE`.
        version: 1
        services:
          api:
            command:
              - /usr/bin/api
              - --listen=:9000
            env:
              FEATURE_X: "on"
              PORT: 9000
            image:
              digest: #{DIGEST_C}
              url: https://artifacts.example/api.tar
            limits:
              memory: 256M
            user: api
          web:
            command:
              - /usr/bin/web
              - --port=8080
            env:
              LOG_LEVEL: info
            image:
              digest: #{DIGEST_A}
              url: https://artifacts.example/web-1.4.2.tar.zst
      YAML
      save_rendered('define-and-hiera', rendered(catalogue))
      files = catalogue.resources.select { |r| r.type == 'File' }.map(&:title)
      expect(files).to contain_exactly('/etc/berth', '/etc/berth/services.yaml', '/etc/berth/fact.json',
                                       '/etc/systemd/system/berth-agent.service.d/puppet-berth.conf')
    end
  end

  # The file must hold every berth::service however and whenever it is
  # declared: before or after the class, from classes, from other defined
  # types evaluated later, and realized virtual ones.
  context 'declared from everywhere in any order' do
    let(:pre_condition) do
      <<~PUPPET
        define wrapper::thing () {
          berth::service { "nested-${title}": image => #{IMG_B}, enabled => false }
        }
        class profile::late {
          berth::service { 'zz-late': image => #{IMG_C} }
          wrapper::thing { 'deep': }
        }
        berth::service { 'aa-early': image => #{IMG_B} }
        include berth
        include profile::late
        @berth::service { 'virtual-kept': image => #{IMG_B} }
        @berth::service { 'virtual-dropped': image => #{IMG_B} }
        realize(Berth::Service['virtual-kept'])
        @@berth::service { 'exported': image => #{IMG_B} }
        berth::service { 'gone': ensure => absent, image => #{IMG_B} }
      PUPPET
    end

    it 'renders each realized, present one exactly once, sorted by name' do
      names = rendered(catalogue).scan(/^  (\S+):$/).flatten
      expect(names).to eq(%w[aa-early api nested-deep virtual-kept web zz-late])
      save_rendered('define-everywhere', rendered(catalogue))
    end
  end

  context 'declared in the opposite order' do
    let(:pre_condition) do
      <<~PUPPET
        class profile::late {
          berth::service { 'zz-late': image => #{IMG_C} }
        }
        include profile::late
        berth::service { 'aa-early': image => #{IMG_B} }
      PUPPET
    end
    let(:post_condition) { "berth::service { 'mid': image => #{IMG_B} }" }

    it 'renders the same file as any other order' do
      expect(rendered(catalogue).scan(/^  (\S+):$/).flatten).to eq(%w[aa-early api mid web zz-late])
    end
  end

  context 'with strings YAML would misread' do
    let(:params) do
      super().merge('env' => {
                      'MULTI' => "line 1\nline 2\t\"quoted\" back\\slash caf\u00e9 \u0001",
                      'EMPTY' => '', 'COMMENT' => 'a #b', 'COLON' => 'a: b', 'DASH' => '-', 'ALIAS' => '*x',
                      'ANCHOR' => '&a', 'YES' => 'yes', 'NULL' => 'null', 'TILDE' => '~', 'OCTAL' => '0o17',
                      'FLOAT' => '1e3', 'TIME' => '12:30', 'DATE' => '2024-01-01', 'BRACE' => '{a}', 'SPACE' => ' x '
                    })
    end

    it 'quotes and escapes them' do
      out = rendered(catalogue)
      save_rendered('define-quoting', out)
      {
        'MULTI' => '"line 1\\nline 2\\t\\"quoted\\" back\\\\slash café \\u0001"',
        'EMPTY' => '""', 'COMMENT' => '"a #b"', 'COLON' => '"a: b"', 'DASH' => '"-"', 'ALIAS' => '"*x"',
        'ANCHOR' => '"&a"', 'YES' => '"yes"', 'NULL' => '"null"', 'TILDE' => '"~"', 'OCTAL' => '"0o17"',
        'FLOAT' => '"1e3"', 'TIME' => '"12:30"', 'DATE' => '"2024-01-01"', 'BRACE' => '"{a}"', 'SPACE' => '" x "'
      }.each do |k, v|
        key = %w[YES NULL].include?(k) ? "\"#{k}\"" : k # keys too
        expect(out).to include("      #{key}: #{v}\n")
      end
    end
  end

  context 'with ensure => absent' do
    let(:params) { super().merge('ensure' => 'absent') }

    it 'leaves the service out, so berth removes it' do
      expect(rendered(catalogue)).not_to include('  api:')
      expect(rendered(catalogue)).to include('  web:')
    end
  end

  context 'with ensure => absent and no image' do
    let(:params) { { 'ensure' => 'absent' } }

    it { is_expected.to compile }
  end

  context 'with ensure => absent for a service Hiera declares' do
    let(:title) { 'web' }
    let(:params) { { 'ensure' => 'absent' } }

    it 'removes that service only: a node can drop what a lower Hiera level declares' do
      expect(rendered(catalogue)).to end_with("version: 1\nservices: {}\n")
    end
  end

  context 'present without an image' do
    let(:params) { { 'command' => ['/bin/true'] } }

    it { is_expected.to compile.and_raise_error(/berth::service \{ 'api': \} needs an image/) }
  end

  context 'with a title that is not a service name' do
    let(:title) { 'My Service' }

    it { is_expected.to compile.and_raise_error(/berth::service \{ 'My Service': \} the title is the service name/) }
  end

  context 'with a seccomp profile' do
    let(:params) { super().merge('seccomp' => 'unconfined') }

    it 'writes the field' do
      expect(rendered(catalogue)).to match(/^    seccomp: unconfined$/)
    end
  end

  context 'with an unknown parameter' do
    let(:params) { super().merge('comand' => ['/bin/true']) }

    it { is_expected.to compile.and_raise_error(/no parameter named 'comand'/) }
  end

  {
    'a bad digest' => [{ 'image' => { 'url' => 'https://a.example/x', 'digest' => 'md5:0' } }, /parameter 'image' entry 'digest' expects a match for Berth::Digest/],
    'a bad URL' => [{ 'image' => { 'url' => 'file:///x', 'digest' => DIGEST_A } }, /parameter 'image' entry 'url' expects a Berth::ImageUrl/],
    'a bad size' => [{ 'limits' => { 'memory' => '1.5G' } }, /parameter 'limits' entry 'memory'/],
    'a bad duration' => [{ 'stop_timeout' => '1 s' }, /parameter 'stop_timeout' expects a match for Berth::Duration/],
    'a bad signal' => [{ 'stop_signal' => 'SIGTERMINATE' }, /parameter 'stop_signal' expects a match for Berth::Signal/],
    'a bad capability' => [{ 'capabilities' => { 'drop' => ['cap_net_raw'] } }, /Berth::Capability/],
    'a bad mount' => [{ 'mounts' => [{ 'type' => 'tmpfs', 'target' => '/tmp', 'size' => '64 MB' }] }, /parameter 'mounts' index 0/],
    'a bad env' => [{ 'env' => { '1X' => 'a' } }, /parameter 'env' key of entry '1X' expects a match/],
    'a bad seccomp' => [{ 'seccomp' => 'strict' }, /parameter 'seccomp' expects/],
    'a relative seccomp profile' => [{ 'seccomp' => 'profiles/web.json' }, /parameter 'seccomp' expects/],
    'a bad restart' => [{ 'restart' => 'always-ish' }, /parameter 'restart' expects an undef value or a match for Enum/],
  }.each do |desc, (override, message)|
    context "with #{desc}" do
      let(:params) { super().merge(override) }

      it { is_expected.to compile.and_raise_error(message) }
    end
  end
end

# Duplicates, declared in real manifest files so that the messages carry
# file names as they do on a Puppet server.
describe 'profile::web', type: :class do
  it 'fails when Hiera also declares the name, naming both places' do
    is_expected.to compile.and_raise_error(
      %r{berth: service 'web' is declared twice: by berth::service \{ 'web': \} at \S*/profile/manifests/web\.pp:3 and in the berth::services parameter \(Hiera key berth::services\); remove one of them},
    )
  end
end

describe 'profile::api_again', type: :class do
  let(:pre_condition) { 'include profile::api' }

  it "fails with Puppet's duplicate declaration error, naming both files" do
    is_expected.to compile.and_raise_error(
      %r{Duplicate declaration: Berth::Service\[api\] is already declared at \(file: \S*/profile/manifests/api\.pp, line: 3\); cannot redeclare \(file: \S*/profile/manifests/api_again\.pp, line: 3\)},
    )
  end
end
