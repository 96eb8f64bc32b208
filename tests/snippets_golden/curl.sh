# Send a server event to DataLook: POST https://datalook.example/event
# Move the key to a secrets manager and export DATALOOK_API_KEY from there;
# the fallback below only makes this command run as pasted.
curl --silent --show-error --fail-with-body --max-time 10 \
  --request POST 'https://datalook.example/event' \
  --header "Authorization: Bearer ${DATALOOK_API_KEY:-dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12}" \
  --header 'Content-Type: application/json' \
  --data '{
  "event_name": "success",
  "name": "paid-customer",
  "page_path": "/checkout/success",
  "success_value": 9.99,
  "success_user_id": "user_42",
  "properties": {
    "plan": "starter"
  }
}'
