// Send a server event to DataLook: POST https://datalook.example/event
// Node.js 18+: save as send_event.mjs and run `node send_event.mjs`.

// Move the key to a secrets manager and set DATALOOK_API_KEY from there;
// the fallback below only makes this file run as pasted.
const apiKey = process.env.DATALOOK_API_KEY ?? 'dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12';

const response = await fetch('https://datalook.example/event', {
  method: 'POST',
  headers: {
    Authorization: `Bearer ${apiKey}`,
    'Content-Type': 'application/json',
  },
  body: JSON.stringify({
    event_name: 'success',
    name: 'paid-customer',
    page_path: '/checkout/success',
    success_value: 9.99,
    success_user_id: 'user_42',
    properties: {
      plan: 'starter',
    },
  }),
  signal: AbortSignal.timeout(10_000),
});

if (response.status !== 204) {
  throw new Error(`DataLook rejected the event: ${response.status} ${await response.text()}`);
}
console.log('Event sent.');
