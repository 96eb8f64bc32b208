# Send a server event to DataLook: POST https://datalook.example/event
require "json"
require "net/http"

# Move the key to a secrets manager and set DATALOOK_API_KEY from there;
# the fallback below only makes this file run as pasted.
api_key = ENV.fetch("DATALOOK_API_KEY", "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12")

uri = URI("https://datalook.example/event")
payload = {
  event_name: "success",
  name: "paid-customer",
  page_path: "/checkout/success",
  success_value: 9.99,
  success_user_id: "user_42",
  properties: {
    plan: "starter"
  }
}

response = Net::HTTP.start(uri.hostname, uri.port, use_ssl: uri.scheme == "https",
                           open_timeout: 5, read_timeout: 10) do |http|
  request = Net::HTTP::Post.new(uri)
  request["Authorization"] = "Bearer #{api_key}"
  request["Content-Type"] = "application/json"
  request.body = JSON.generate(payload)
  http.request(request)
end

abort "DataLook rejected the event: #{response.code} #{response.body}" unless response.code == "204"
puts "Event sent."
