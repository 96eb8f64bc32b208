// Send a server event to DataLook: POST https://datalook.example/event
// .NET 8+: `dotnet new console`, replace Program.cs with this file, then `dotnet run`.
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Net.Http.Json;

// Move the key to a secrets manager and set DATALOOK_API_KEY from there;
// the fallback below only makes this file run as pasted.
var apiKey = Environment.GetEnvironmentVariable("DATALOOK_API_KEY") ?? "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12";

var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);

var payload = new
{
    event_name = "success",
    name = "paid-customer",
    page_path = "/checkout/success",
    success_value = 9.99,
    success_user_id = "user_42",
    properties = new Dictionary<string, string>
    {
        ["plan"] = "starter",
    },
};

var response = await client.PostAsJsonAsync("https://datalook.example/event", payload);
if (response.StatusCode != HttpStatusCode.NoContent)
{
    var error = await response.Content.ReadAsStringAsync();
    throw new HttpRequestException($"DataLook rejected the event: {(int)response.StatusCode} {error}");
}
Console.WriteLine("Event sent.");
