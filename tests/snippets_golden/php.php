<?php
// Send a server event to DataLook: POST https://datalook.example/event
// Needs the curl extension (php-curl).

// Move the key to a secrets manager and set DATALOOK_API_KEY from there;
// the fallback below only makes this file run as pasted.
$apiKey = getenv('DATALOOK_API_KEY') ?: 'dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12';

$payload = [
    'event_name' => 'success',
    'name' => 'paid-customer',
    'page_path' => '/checkout/success',
    'success_value' => 9.99,
    'success_user_id' => 'user_42',
    'properties' => [
        'plan' => 'starter',
    ],
];

$ch = curl_init('https://datalook.example/event');
curl_setopt_array($ch, [
    CURLOPT_POST => true,
    CURLOPT_HTTPHEADER => [
        'Authorization: Bearer ' . $apiKey,
        'Content-Type: application/json',
    ],
    CURLOPT_POSTFIELDS => json_encode($payload, JSON_THROW_ON_ERROR),
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_CONNECTTIMEOUT => 5,
    CURLOPT_TIMEOUT => 10,
]);
$body = curl_exec($ch);
if ($body === false) {
    throw new RuntimeException('DataLook request failed: ' . curl_error($ch));
}
$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
if ($status !== 204) {
    throw new RuntimeException("DataLook rejected the event: $status $body");
}
echo "Event sent.\n";
