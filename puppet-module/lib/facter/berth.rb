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
#     "source"   => "/var/lib/berth/status.json" or "berth status --json",
#     "services" => { "web" => { "state", "image", "health", "pid",
#                                "restarts", "manual_restarts", "started_at",
#                                "last_exit", "start_error", "last_check", ... } },
#     "summary"  => { "total" => 2, "running" => 2, ... one count per state },
#     ... any other top-level key of the status document, as is
#   }
# or { "error" => "..." } when berth is there but its status cannot be read,
# and no fact at all on hosts without berth.
#
# Source: `<root>/status.json`, which `berth apply` and `berth agent` keep up
# to date (shape of `berth status --json`); when it is missing or unreadable,
# `berth status --json` itself. Environment: BERTH_ROOT (default
# /var/lib/berth) and BERTH_BINARY (default: /usr/bin/berth,
# /usr/local/bin/berth, then PATH) for hosts with other paths, and for tests.
require 'json'
require 'open3'

# Helpers of the berth fact (a module so that nothing leaks into Facter).
module BerthFact
  module_function

  # seconds `berth status --json` may take (a method: this file may be loaded twice)
  def status_timeout
    20
  end

  def root
    r = ENV['BERTH_ROOT']
    r.nil? || r.empty? ? '/var/lib/berth' : r
  end

  def binary
    b = ENV['BERTH_BINARY']
    return (File.executable?(b) ? b : nil) unless b.nil? || b.empty?

    ['/usr/bin/berth', '/usr/local/bin/berth'].find { |p| File.executable?(p) } ||
      Facter::Core::Execution.which('berth')
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

  def shape(doc, source)
    services = {}
    summary = Hash.new(0)
    doc['services'].each do |s|
      services[s['name']] = s.reject { |k, _| k == 'name' }
      summary[s['state'].to_s] += 1 if s['state']
    end
    extra = doc.reject { |k, _| k == 'services' }
    extra.merge('source' => source, 'services' => services,
                'summary' => { 'total' => services.size }.merge(summary))
  end

  def from_file(path)
    shape(parse(File.read(path), path), path)
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

  def resolve
    path = File.join(root, 'status.json')
    bin = binary
    errors = []
    if File.exist?(path)
      begin
        return from_file(path)
      rescue StandardError => e
        errors << e.message
      end
    end
    return errors.empty? ? nil : { 'error' => errors.join('; ') } unless bin

    begin
      from_command(bin)
    rescue StandardError => e
      { 'error' => (errors << e.message).join('; ') }
    end
  end
end

Facter.add(:berth) do
  confine kernel: 'Linux'
  setcode { BerthFact.resolve }
end
