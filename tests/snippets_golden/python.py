# Send a server event to DataLook: POST https://datalook.example/event
# Needs requests: pip install requests
import os

import requests

# Move the key to a secrets manager and set DATALOOK_API_KEY from there;
# the fallback below only makes this file run as pasted.
API_KEY = os.environ.get("DATALOOK_API_KEY", "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12")

response = requests.post(
    "https://datalook.example/event",
    headers={"Authorization": f"Bearer {API_KEY}"},
    json={
        "event_name": "success",
        "name": "paid-customer",
        "page_path": "/checkout/success",
        "success_value": 9.99,
        "success_user_id": "user_42",
        "properties": {
            "plan": "starter",
        },
    },
    timeout=10,
)
if response.status_code != 204:
    raise SystemExit(f"DataLook rejected the event: {response.status_code} {response.text}")
print("Event sent.")
