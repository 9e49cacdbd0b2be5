# frozen_string_literal: true

require 'spec_helper'

HEADER = "# Managed by Puppet (module berth): local edits are overwritten.\n" \
         "# Desired state of berth on this host; check with `berth validate FILE`.\n"

WEB = {
  'image' => { 'url' => 'https://artifacts.example/web-1.4.2.tar.zst', 'digest' => DIGEST_A },
}.freeze

describe 'berth', type: :class do
  context 'with no services' do
    let(:params) { { 'services' => {} } }

    it 'renders the explicit empty state' do
      expect(rendered(catalogue)).to eq(HEADER + "version: 1\nservices: {}\n")
      save_rendered('empty', rendered(catalogue))
    end

    it 'validates the file with berth before it replaces the old one, with a diff' do
      is_expected.to contain_file('/etc/berth/services.yaml').with(
        'ensure' => 'file', 'owner' => 'root', 'group' => 'root', 'mode' => '0640',
        'validate_cmd' => '/usr/bin/berth validate %', 'show_diff' => true,
      )
      is_expected.to contain_file('/etc/berth').with_ensure('directory')
        .that_comes_before('File[/etc/berth/services.yaml]')
    end

    it 'tells the fact the root and the binary in /etc/berth/fact.json' do
      is_expected.to contain_file('/etc/berth/fact.json').with(
        'ensure' => 'file', 'mode' => '0644',
        'content' => %({"root": "/var/lib/berth", "binary": "/usr/bin/berth"}\n),
      ).that_requires('File[/etc/berth]')
    end

    it 'keeps the packaged agent unit running, without a drop-in, and no exec' do
      is_expected.to contain_service('berth-agent').with(
        'ensure' => 'running', 'enable' => true,
      ).that_requires('File[/etc/berth/services.yaml]')
      is_expected.to contain_file('/etc/systemd/system/berth-agent.service.d/puppet-berth.conf')
        .with_ensure('absent').that_notifies('Service[berth-agent]')
      is_expected.not_to contain_exec('berth apply')
      is_expected.not_to contain_package('berth')
    end
  end

  context 'Hiera, common level only' do
    it 'renders the fleet service' do
      expect(rendered(catalogue)).to eq(HEADER + <<~YAML)
        version: 1
        services:
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
      save_rendered('hiera-common', rendered(catalogue))
    end
  end

  context 'Hiera, canary node group deep-merged over common' do
    let(:facts) { { 'berth_group' => 'canary' } }

    it 'overrides single fields of web and adds a service of its own' do
      expect(rendered(catalogue)).to eq(HEADER + <<~YAML)
        version: 1
        services:
          api:
            image:
              digest: #{DIGEST_C}
              format: oci
              url: https://artifacts.example/api-2.0.0.tar.zst
            restart: on-failure
          web:
            command:
              - /usr/bin/web
              - --port=8080
            env:
              CANARY: "true"
              LOG_LEVEL: info
            image:
              digest: #{DIGEST_B}
              url: https://artifacts.example/web-1.4.2.tar.zst
      YAML
      save_rendered('hiera-canary', rendered(catalogue))
    end
  end

  context 'Hiera, a node level over the canary group' do
    let(:node) { 'web-03.example' }
    let(:facts) { { 'berth_group' => 'canary' } }

    it 'disables web on that node only' do
      expect(rendered(catalogue)).to match(/^  web:\n(    .*\n)*    enabled: false\n/)
      expect(rendered(catalogue)).to include("digest: #{DIGEST_B}")
      save_rendered('hiera-node', rendered(catalogue))
    end
  end

  context 'Hiera, a node level that sets an array' do
    let(:node) { 'web-04.example' }

    it 'replaces the array instead of appending to it' do
      expect(rendered(catalogue)).to include("    command:\n      - /usr/bin/web\n      - --port=9090\n    env:")
      expect(rendered(catalogue)).not_to include('--port=8080')
    end
  end

  context 'Hiera, every field of the schema' do
    let(:facts) { { 'berth_group' => 'full' } }

    it 'renders every field, sorted, quoting what YAML would not read as a string' do
      out = rendered(catalogue)
      save_rendered('hiera-full', out)
      expect(out).to include(<<-YAML)
  full:
    backoff:
      initial: 1s
      max: 5m
      reset_after: 10m
    capabilities:
      add:
        - NET_BIND_SERVICE
      drop:
        - NET_RAW
        - CAP_MKNOD
    command:
      - /usr/bin/web
      - --port=8080
      - "--greeting=hello, world"
    enabled: true
    env:
      DEBUG: false
      LOG_LEVEL: info
      QUOTED: "say \\"hi\\""
      RATIO: 0.5
      WORKERS: 4
    healthcheck:
      command:
        - /bin/check
        - --quick
      interval: 10s
      retries: 3
      timeout: 2s
    hostname: web.internal
    image:
      digest: #{DIGEST_A}
      format: rootfs
      mirrors:
        - https://mirror-1.example/web-1.4.2.tar.zst
        - http://mirror-2.example/web-1.4.2.tar.zst
      signature:
        public_key: #{PUBKEY}
        url: https://artifacts.example/web-1.4.2.tar.zst.minisig
      url: https://artifacts.example/web-1.4.2.tar.zst
    limits:
      cpus: 1.5
      memory: 512M
      nofile: 65536
      pids: 256
    log:
      max_files: 5
      max_size: 10M
    mounts:
      - readonly: true
        source: /etc/awesome/blah.xml
        target: /etc/awesome/blah.xml
      - source: /var/lib/web
        target: /data
        type: bind
      - size: 64M
        target: /tmp
        type: tmpfs
    network: none
    readonly_rootfs: true
    restart: always
    stop_signal: SIGTERM
    stop_timeout: 10s
    user: "1000:1000"
    workdir: /srv/web
  web:
      YAML
    end
  end

  context 'stable output' do
    # The same data in any insertion order gives the same bytes.
    expected = HEADER + <<~YAML
      version: 1
      services:
        a:
          env:
            A: "1"
            B: "2"
          image:
            digest: #{DIGEST_A}
            url: https://artifacts.example/web-1.4.2.tar.zst
          limits:
            cpus: 2
            memory: 1G
        b:
          image:
            digest: #{DIGEST_A}
            url: https://artifacts.example/web-1.4.2.tar.zst
          restart: never
    YAML
    forward = {
      'a' => WEB.merge('env' => { 'A' => '1', 'B' => '2' }, 'limits' => { 'memory' => '1G', 'cpus' => 2 }),
      'b' => WEB.merge('restart' => 'never'),
    }
    backward = {
      'b' => { 'restart' => 'never' }.merge(WEB),
      'a' => { 'limits' => { 'cpus' => 2, 'memory' => '1G' }, 'env' => { 'B' => '2', 'A' => '1' } }.merge(WEB),
    }
    { 'in one order' => forward, 'in the reverse order' => backward }.each do |desc, services|
      context desc do
        let(:params) { { 'services' => services } }

        it { expect(rendered(catalogue)).to eq(expected) }
      end
    end
  end

  context 'without the agent' do
    let(:params) { { 'services' => { 'web' => WEB }, 'manage_agent' => false, 'root' => '/srv/berth' } }

    it 'runs berth apply once after each change of the file' do
      is_expected.to contain_exec('berth apply').with(
        'command' => ['/usr/bin/berth', '--root', '/srv/berth', '--config', '/etc/berth/services.yaml', 'apply'],
        'refreshonly' => true, 'logoutput' => true, 'timeout' => 900,
      ).that_subscribes_to('File[/etc/berth/services.yaml]')
      is_expected.not_to contain_service('berth-agent')
    end
  end

  context 'with other paths, a package and no diff' do
    let(:params) do
      {
        'services' => {}, 'config_path' => '/opt/berth conf/services.yaml', 'root' => '/srv/berth',
        'binary_path' => '/opt/berth/bin/berth', 'show_diff' => false, 'package_name' => 'berth',
        'manage_config_dir' => false
      }
    end

    it 'validates with that binary and points the agent at those paths with a drop-in' do
      is_expected.to contain_package('berth').with_ensure('installed')
        .that_comes_before('File[/opt/berth conf/services.yaml]')
      is_expected.to contain_file('/opt/berth conf/services.yaml').with(
        'validate_cmd' => '/opt/berth/bin/berth validate %', 'show_diff' => false,
      )
      is_expected.not_to contain_file('/opt/berth conf')
      is_expected.to contain_file('/etc/systemd/system/berth-agent.service.d/puppet-berth.conf').with_content(
        "# Managed by Puppet (module berth)\n[Service]\nExecStart=\n" \
        "ExecStart=/opt/berth/bin/berth --root /srv/berth --config \"/opt/berth conf/services.yaml\" agent\n",
      ).that_notifies('Service[berth-agent]')
    end

    it 'tells the fact those paths, after the package' do
      is_expected.to contain_file('/etc/berth/fact.json').with_content(
        %({"root": "/srv/berth", "binary": "/opt/berth/bin/berth"}\n),
      ).that_requires('Package[berth]')
    end
  end

  # One bad value of each kind: each is a compile error that names the entry.
  bad = {
    'a digest that is not sha256:<64 hex>' => [{ 'image' => WEB['image'].merge('digest' => 'sha256:ABC') }, /entry 'digest' expects a match for Berth::Digest/],
    'an upper-case digest' => [{ 'image' => WEB['image'].merge('digest' => "sha256:#{'A' * 64}") }, /Berth::Digest/],
    'a URL that is not http(s)' => [{ 'image' => WEB['image'].merge('url' => 'ftp://x.example/a.tar') }, /entry 'url' expects a Berth::ImageUrl/],
    'a missing image' => [{ 'command' => ['/bin/true'] }, /expects a value for key 'image'/],
    'a missing digest' => [{ 'image' => { 'url' => 'https://a.example/x' } }, /expects a value for key 'digest'/],
    'an unknown image format' => [WEB.merge('image' => WEB['image'].merge('format' => 'zip')), /entry 'format' expects a match for Enum/],
    'a bad signature key' => [{ 'image' => WEB['image'].merge('signature' => { 'url' => 'https://a.example/s', 'public_key' => 'nope' }) }, /entry 'public_key' expects a match/],
    'a typo in a service key' => [WEB.merge('comand' => ['/bin/true']), /unrecognized key 'comand'/],
    'a typo in a nested key' => [WEB.merge('limits' => { 'memroy' => '1G' }), /unrecognized key 'memroy'/],
    'a size with a unit berth does not know' => [WEB.merge('limits' => { 'memory' => '1.5G' }), /entry 'memory' expects a Berth::Size = /],
    'a negative size' => [WEB.merge('log' => { 'max_size' => -1 }), /entry 'max_size'/],
    'a duration without a unit' => [WEB.merge('stop_timeout' => '10'), /entry 'stop_timeout' expects a match for Berth::Duration/],
    'a duration with a bad unit' => [WEB.merge('backoff' => { 'max' => '5min' }), /entry 'max' expects a match for Berth::Duration/],
    'an unknown signal' => [WEB.merge('stop_signal' => 'SIGFOO'), /entry 'stop_signal' expects a match for Berth::Signal/],
    'an unknown capability' => [WEB.merge('capabilities' => { 'add' => ['NET_BIND'] }), /Berth::Capability/],
    'a relative mount target' => [WEB.merge('mounts' => [{ 'source' => '/a', 'target' => 'b' }]), /entry 'mounts'/],
    'a tmpfs with a source' => [WEB.merge('mounts' => [{ 'type' => 'tmpfs', 'source' => '/a', 'target' => '/b' }]), /entry 'mounts'/],
    'a relative workdir' => [WEB.merge('workdir' => 'srv'), /entry 'workdir' expects a match for Berth::Path/],
    'an empty command' => [WEB.merge('command' => []), /entry 'command' expects size to be at least 1/],
    'a command as a string' => [WEB.merge('command' => '/bin/web --port 80'), /entry 'command' expects a Berth::Command = Array/],
    'an unknown restart policy' => [WEB.merge('restart' => 'sometimes'), /entry 'restart' expects a match for Enum/],
    'an unknown network' => [WEB.merge('network' => 'bridge'), /entry 'network' expects a match for Enum/],
    'a bad environment variable name' => [WEB.merge('env' => { 'BAD-NAME' => 'x' }), /key of entry 'BAD-NAME' expects a match/],
    'a nested environment value' => [WEB.merge('env' => { 'A' => { 'b' => 'c' } }), /entry 'A' expects a value of type String, Integer, Float, or Boolean/],
    'a bad user' => [WEB.merge('user' => 'root user'), /entry 'user' expects a Berth::User = Variant/],
    'a bad hostname' => [WEB.merge('hostname' => 'web_1'), /entry 'hostname' expects a match for Berth::Hostname/],
    'zero CPUs' => [WEB.merge('limits' => { 'cpus' => 0 }), /entry 'cpus'/],
    'a string where a boolean goes' => [WEB.merge('enabled' => 'yes'), /entry 'enabled' expects a Boolean value/],
    'a healthcheck without a command' => [WEB.merge('healthcheck' => { 'interval' => '5s' }), /expects a value for key 'command'/],
    'zero log files' => [WEB.merge('log' => { 'max_files' => 0 }), /entry 'max_files' expects an Integer\[1, 1000\] value/],
  }
  bad.each do |desc, (spec, message)|
    context "with #{desc}" do
      let(:params) { { 'services' => { 'web' => spec } } }

      it { is_expected.to compile.and_raise_error(message) }
    end
  end

  context 'with a bad service name' do
    let(:params) { { 'services' => { 'Web' => WEB } } }

    it { is_expected.to compile.and_raise_error(/key of entry 'Web' expects a match for Berth::Name/) }
  end

  {
    'root' => ['var/lib/berth', /parameter 'root' expects a match for Berth::Path/],
    'binary_path' => ['berth', /parameter 'binary_path' expects a match for Berth::Path/],
    'manage_agent' => ['yes', /parameter 'manage_agent' expects a Boolean value/],
    'show_diff' => ['no', /parameter 'show_diff' expects a Boolean value/],
    'config_mode' => ['0999', /parameter 'config_mode' expects a match for Pattern/],
    'agent_ensure' => ['started', /parameter 'agent_ensure' expects a match for Enum/],
    'apply_timeout' => [-1, /parameter 'apply_timeout' expects an Integer\[0\] value/],
    'services' => [['web'], /parameter 'services' expects a Berth::Services = Hash/],
  }.each do |param, (value, message)|
    context "with a bad #{param}" do
      let(:params) { { param => value } }

      it { is_expected.to compile.and_raise_error(message) }
    end
  end

  context 'with a relative config_path' do
    let(:params) { { 'config_path' => 'services.yaml' } }

    it { is_expected.to compile.and_raise_error(/parameter 'config_path' expects a match for Berth::Path/) }
  end

  context 'with prefetch' do
    let(:params) do
      { 'services' => { 'web' => WEB }, 'root' => '/srv/berth',
        'prefetch' => { 'web-1.5' => { 'url' => 'https://artifacts.example/web-1.5.tar.zst', 'digest' => DIGEST_B,
                                       'mirrors' => ['https://mirror.example/web-1.5.tar.zst'],
                                       'format' => 'rootfs' } } }
    end

    it 'fetches each image not in the store yet before the file changes' do
      is_expected.to contain_exec('berth fetch web-1.5').with(
        'command' => ['/usr/bin/berth', '--root', '/srv/berth', 'fetch', 'https://artifacts.example/web-1.5.tar.zst',
                      '--digest', DIGEST_B, '--mirror', 'https://mirror.example/web-1.5.tar.zst', '--format', 'rootfs'],
        'creates' => "/srv/berth/images/#{DIGEST_B.sub('sha256:', '')}",
      ).that_comes_before('File[/etc/berth/services.yaml]')
    end
  end

  context 'with an agent supervised by something else' do
    let(:params) { { 'services' => { 'web' => WEB }, 'manage_agent' => false, 'apply_on_change' => false } }

    it 'neither runs berth apply nor manages a unit' do
      is_expected.not_to contain_exec('berth apply')
      is_expected.not_to contain_service('berth-agent')
    end
  end

  context 'with a rollout group' do
    let(:params) { { 'services' => {}, 'group' => 'canary' } }

    it 'tells the fact the group' do
      is_expected.to contain_file('/etc/berth/fact.json').with_content(
        %({"root": "/var/lib/berth", "binary": "/usr/bin/berth", "group": "canary"}\n),
      )
    end
  end

end
