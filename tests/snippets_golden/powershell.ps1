# Send a server event to DataLook: POST https://datalook.example/event
# Windows PowerShell 5.1 or PowerShell 7+.

# Move the key to a secrets manager and set $env:DATALOOK_API_KEY from there;
# the fallback below only makes this script run as pasted.
$apiKey = if ($env:DATALOOK_API_KEY) { $env:DATALOOK_API_KEY } else { 'dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12' }

$payload = [ordered]@{
    event_name      = 'success'
    name            = 'paid-customer'
    page_path       = '/checkout/success'
    success_value   = 9.99
    success_user_id = 'user_42'
    properties      = [ordered]@{
        plan = 'starter'
    }
}

$request = @{
    Uri         = 'https://datalook.example/event'
    Method      = 'Post'
    Headers     = @{ Authorization = "Bearer $apiKey" }
    ContentType = 'application/json'
    Body        = $payload | ConvertTo-Json -Depth 5
    TimeoutSec  = 10
}

try {
    Invoke-RestMethod @request | Out-Null
    Write-Output 'Event sent.'
} catch {
    Write-Error "DataLook rejected the event: $($_.Exception.Message) $($_.ErrorDetails.Message)"
    exit 1
}
