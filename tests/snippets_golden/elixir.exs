# Send a server event to DataLook: POST https://datalook.example/event
# Run with `elixir send_event.exs`.
Mix.install([{:req, "~> 0.5"}])

# Move the key to a secrets manager and set DATALOOK_API_KEY from there;
# the fallback below only makes this script run as pasted.
api_key = System.get_env("DATALOOK_API_KEY", "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12")

response =
  Req.post!("https://datalook.example/event",
    auth: {:bearer, api_key},
    json: %{
      event_name: "success",
      name: "paid-customer",
      page_path: "/checkout/success",
      success_value: 9.99,
      success_user_id: "user_42",
      properties: %{
        plan: "starter"
      }
    },
    receive_timeout: 10_000
  )

if response.status != 204 do
  raise "DataLook rejected the event: #{response.status} #{inspect(response.body)}"
end

IO.puts("Event sent.")
