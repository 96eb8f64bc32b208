// Send a server event to DataLook: POST https://datalook.example/event
// Java 17+: run with `java Main.java`.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Objects;

public class Main {
    public static void main(String[] args) throws Exception {
        // Move the key to a secrets manager and set DATALOOK_API_KEY from there;
        // the fallback below only makes this file run as pasted.
        String apiKey = Objects.requireNonNullElse(
                System.getenv("DATALOOK_API_KEY"), "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12");

        String json = """
                {
                  "event_name": "success",
                  "name": "paid-customer",
                  "page_path": "/checkout/success",
                  "success_value": 9.99,
                  "success_user_id": "user_42",
                  "properties": {
                    "plan": "starter"
                  }
                }
                """;

        HttpClient client = HttpClient.newBuilder()
                .connectTimeout(Duration.ofSeconds(5))
                .build();
        HttpRequest request = HttpRequest.newBuilder(URI.create("https://datalook.example/event"))
                .timeout(Duration.ofSeconds(10))
                .header("Authorization", "Bearer " + apiKey)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json))
                .build();

        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 204) {
            throw new IllegalStateException(
                    "DataLook rejected the event: " + response.statusCode() + " " + response.body());
        }
        System.out.println("Event sent.");
    }
}
