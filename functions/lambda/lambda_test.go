package lambda

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// echo answers with what it was asked, to check the translation both ways.
func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c, _ := r.Cookie("herd_session")
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Query", r.URL.Query().Get("range"))
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.Header().Set("X-Host", r.Host)
		if c != nil {
			w.Header().Set("X-Cookie", c.Value)
		}
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("Vary", "Accept")
		w.Header().Add("Vary", "Cookie")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	})
}

func TestHandlerTranslatesBothWays(t *testing.T) {
	ev := events.APIGatewayV2HTTPRequest{
		RawPath:         "/api/v1/nodes/node%20x",
		RawQueryString:  "range=node%5B1-4%5D",
		Cookies:         []string{"theme=dark", "herd_session=hs_abc"},
		Headers:         map[string]string{"host": "herd.example.org", "content-type": "application/json"},
		Body:            base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 'x'}),
		IsBase64Encoded: true,
	}
	ev.RequestContext.HTTP.Method = "PATCH"
	ev.RequestContext.HTTP.SourceIP = "198.51.100.7"
	resp, err := Handler(echo())(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-Method": "PATCH", "X-Path": "/api/v1/nodes/node x", "X-Query": "node[1-4]",
		"X-Remote": "198.51.100.7:0", "X-Host": "herd.example.org", "X-Cookie": "hs_abc", "Vary": "Accept, Cookie"}
	for k, v := range want {
		if resp.Headers[k] != v {
			t.Errorf("%s = %q, want %q", k, resp.Headers[k], v)
		}
	}
	if resp.StatusCode != http.StatusAccepted || len(resp.Cookies) != 2 || resp.Headers["Set-Cookie"] != "" {
		t.Errorf("status %d cookies %v", resp.StatusCode, resp.Cookies)
	}
	// A binary body goes back base64-encoded, as API Gateway expects.
	got, err := base64.StdEncoding.DecodeString(resp.Body)
	if !resp.IsBase64Encoded || err != nil || string(got) != "\xff\x00x" {
		t.Errorf("binary body: base64=%v %q", resp.IsBase64Encoded, resp.Body)
	}

	ev.Body, ev.IsBase64Encoded = "%%%", true
	resp, _ = Handler(echo())(context.Background(), ev)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad base64 body: %d", resp.StatusCode)
	}
}

// BenchmarkAdapter isolates what the adapter costs per request: the same
// trivial handler through the Lambda translation and through net/http's
// recorder.
func BenchmarkAdapter(b *testing.B) {
	ev := events.APIGatewayV2HTTPRequest{RawPath: "/api/v1/whoami", Headers: map[string]string{"authorization": "Bearer x"}, Body: `{"name":"node001"}`}
	ev.RequestContext.HTTP.Method = "POST"
	h := echo()
	b.Run("lambda", func(b *testing.B) {
		f := Handler(h)
		for b.Loop() {
			if _, err := f(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		for b.Loop() {
			req := httptest.NewRequest("POST", "/api/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer x")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		}
	})
}
