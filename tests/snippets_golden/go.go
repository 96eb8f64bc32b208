// Send a server event to DataLook: POST https://datalook.example/event
// Run with `go run main.go`.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	// Move the key to a secrets manager and set DATALOOK_API_KEY from there;
	// the fallback below only makes this file run as pasted.
	apiKey := os.Getenv("DATALOOK_API_KEY")
	if apiKey == "" {
		apiKey = "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12"
	}

	body, err := json.Marshal(map[string]any{
		"event_name":      "success",
		"name":            "paid-customer",
		"page_path":       "/checkout/success",
		"success_value":   9.99,
		"success_user_id": "user_42",
		"properties":      map[string]string{"plan": "starter"},
	})
	if err != nil {
		log.Fatal(err)
	}

	req, err := http.NewRequest(http.MethodPost, "https://datalook.example/event", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(resp.Body)
		log.Fatalf("DataLook rejected the event: %s %s", resp.Status, msg)
	}
	fmt.Println("Event sent.")
}
