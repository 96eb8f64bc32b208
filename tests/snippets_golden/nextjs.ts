'use server';

// Send a server event to DataLook from a Server Action: POST https://datalook.example/event
// DATALOOK_API_KEY is a server-only variable: never prefix it with NEXT_PUBLIC_.
// Move the key to a secrets manager (or your host's environment settings);
// the fallback below only makes this file run as pasted.
const apiKey = process.env.DATALOOK_API_KEY ?? 'dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12';

export async function sendSuccessEvent(): Promise<void> {
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
}
