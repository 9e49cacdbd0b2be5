# frozen_string_literal: true

require 'json'

# @summary A string as a JSON string literal, quotes and escapes included
#   (Puppet 7 has no to_json without stdlib; the fact's fact.json needs it).
Puppet::Functions.create_function(:'berth::json_string') do
  # @param value the string
  # @return [String] its JSON literal
  dispatch :json_string do
    param 'String', :value
  end

  def json_string(value)
    JSON.generate(value)
  end
end
