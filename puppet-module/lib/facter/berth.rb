# frozen_string_literal: true

# The `berth` fact: the state of this host's berth services, so that
# PuppetDB can answer "which hosts run web at this digest" and "which hosts
# rolled back", e.g.
#
#   inventory[certname] { facts.berth.services.web.image = "sha256:..." }
#   inventory[certname] { facts.berth.services.web.state = "rolled-back" }
#
# Value:
#   {
#     "source"   => "berth status --json", or "/var/lib/berth/status.json"
#                   when berth cannot be run (then "age": the file's age in
#                   seconds: it is only as fresh as the last apply or agent),
#     "root"     => the state directory read,
#     "agent"    => { "running" => true|false, "running_pid", "pid", "file",
#                     "file_valid", "errors", "last_converge" => "ok"|... }: whether
#                   an agent serves the root now (it holds <root>/agent.lock),
#                   and what it last wrote,
#     "group"    => the rollout group that class berth's `group` names, if any,
#     "services" => { "web" => { "state", "image", "spec_hash", "health",
#                                "restarts", "last_exit", "start_error",
#                                "rejected" => { "spec_hash", "image" }
#                                (what berth rolled back from); members
#                                without a value are left out } },
#     "summary"  => { "total" => 2, "running" => 2, ... one count per state },
#     ... any other top-level key of the status document, as is
#   }
# or { "error" => "..." } when berth is there but its status cannot be read,
# and no fact at all on hosts without berth.
#
# Live first: `berth status --json` reads the services' records and checks
# each keeper (no daemon needed). The root and the binary come from
# /etc/berth/fact.json ({"root": ..., "binary": ...}), which the class berth
# writes from its `root` and `binary_path`; BERTH_ROOT and BERTH_BINARY
# override it, and BERTH_FACT_CONFIG names another such file (tests). The
# defaults: /var/lib/berth; /usr/bin/berth, /usr/local/bin/berth, then PATH.
require 'json'
require 'open3'

# Helpers of the berth fact (a module so that nothing leaks into Facter).
module BerthFact
  module_function

  # seconds `berth status --json` may take (a method: this file may be loaded twice)
  def status_timeout
    20
  end

  def config_path
    c = ENV['BERTH_FACT_CONFIG']
    c.nil? || c.empty? ? '/etc/berth/fact.json' : c
  end

  # What the class berth wrote: {"root", "binary"}; {} when absent or bad
  # (the defaults then hold).
  def config
    @config ||= begin
      c = JSON.parse(File.read(config_path))
      c.is_a?(Hash) ? c : {}
    rescue StandardError
      {}
    end
  end

  def reset
    @config = nil
  end

  def setting(env, key)
    v = ENV[env]
    return v unless v.nil? || v.empty?

    v = config[key]
    v.is_a?(String) && !v.empty? ? v : nil
  end

  def root
    setting('BERTH_ROOT', 'root') || '/var/lib/berth'
  end

  def binary
    b = setting('BERTH_BINARY', 'binary')
    return (File.executable?(b) ? b : nil) unless b.nil?

    ['/usr/bin/berth', '/usr/local/bin/berth'].find { |p| File.executable?(p) } ||
      Facter::Core::Execution.which('berth')
  end

  # Whether an agent holds <root>/agent.lock (a flock for its whole life),
  # from /proc/locks as `berth status` does; nil when that cannot be told.
  def agent_running(dir)
    st = File.stat(File.join(dir, 'agent.lock'))
    want = format('%<maj>02x:%<min>02x:%<ino>d', maj: st.dev_major, min: st.dev_minor, ino: st.ino)
    File.foreach('/proc/locks').any? do |line|
      f = line.split
      f[1] == 'FLOCK' && f[5] == want
    end
  rescue Errno::ENOENT
    File.exist?('/proc/locks') ? false : nil
  rescue StandardError
    nil
  end

  # The status document, or raises with a message naming the source.
  def parse(text, source)
    doc = JSON.parse(text)
    raise "#{source}: not an object with a 'services' list" unless doc.is_a?(Hash) && doc['services'].is_a?(Array)

    doc['services'].each do |s|
      raise "#{source}: a service without a name" unless s.is_a?(Hash) && s['name'].is_a?(String)
    end
    doc
  rescue JSON::ParserError => e
    raise "#{source}: not JSON (#{e.message.lines.first.to_s.strip})"
  end

  # What a service reports: what it runs and how it fares, nothing that
  # changes without a change of state (a service's pids and start time, its
  # last check's output, the agent's counters and times stay in `berth status
  # --json`), so that PuppetDB stores a new fact set only when something
  # happened.
  def service_keys
    %w[state image spec_hash health restarts last_exit rejected start_error]
  end

  def agent_keys
    %w[running running_pid pid file file_valid errors]
  end

  def slim_agent(agent)
    return agent unless agent.is_a?(Hash)

    out = agent.select { |k, _| agent_keys.include?(k) }
    last = agent['last_converge']
    out['last_converge'] = last['result'] if last.is_a?(Hash) && last.key?('result')
    out
  end

  def shape(doc, source)
    services = {}
    summary = Hash.new(0)
    doc['services'].each do |s|
      # nothing null: Facter would turn it into "" in PuppetDB
      services[s['name']] = s.select { |k, v| service_keys.include?(k) && !v.nil? }
      summary[s['state'].to_s] += 1 if s['state']
    end
    extra = doc.reject { |k, _| k == 'services' }
    extra['agent'] = slim_agent(extra['agent']) if extra.key?('agent')
    extra['group'] = config['group'] if config['group'].is_a?(String)
    extra.merge('source' => source, 'root' => root, 'services' => services,
                'summary' => { 'total' => services.size }.merge(summary))
  end

  def from_file(path)
    doc = parse(File.read(path), path)
    agent = doc['agent'].is_a?(Hash) ? doc['agent'] : {}
    begin
      agent = JSON.parse(File.read(File.join(root, 'agent.json'))).merge(agent)
    rescue StandardError
      nil
    end
    doc['agent'] = agent.merge('running' => agent_running(root))
    doc['age'] = (Time.now - File.mtime(path)).round
    shape(doc, path)
  end

  # `berth status --json`, bounded in time; raises naming the command.
  def from_command(bin)
    argv = [bin, '--root', root, 'status', '--json']
    name = argv.join(' ')
    out, err, status = Open3.popen3(*argv) do |stdin, stdout, stderr, wait|
      stdin.close
      readers = [Thread.new { stdout.read }, Thread.new { stderr.read }]
      unless wait.join(status_timeout)
        begin
          Process.kill('KILL', wait.pid)
        rescue SystemCallError
          nil
        end
        raise "#{name}: no answer in #{status_timeout} s"
      end
      [readers[0].value, readers[1].value, wait.value]
    end
    unless status.success?
      raise "#{name}: exit status #{status.exitstatus}: #{err.strip.lines.last.to_s.strip}"
    end

    shape(parse(out, 'berth status --json'), 'berth status --json')
  rescue SystemCallError => e
    raise "#{name}: #{e.message}"
  end

  # Live status first; the file (with its age) when berth cannot be run.
  def resolve
    reset
    path = File.join(root, 'status.json')
    bin = binary
    errors = []
    if bin
      begin
        return from_command(bin)
      rescue StandardError => e
        errors << e.message
      end
    end
    if File.exist?(path)
      begin
        return from_file(path)
      rescue StandardError => e
        errors << e.message
      end
    end
    errors.empty? ? nil : { 'error' => errors.join('; ') }
  end
end

Facter.add(:berth) do
  confine kernel: 'Linux'
  setcode { BerthFact.resolve }
end
