package web_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/web"
)

func ipApp(t *testing.T, trusted string) *fiber.App {
	t.Helper()
	prefixes, err := web.ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	app := web.New(web.Config{TrustedProxies: prefixes})
	app.Get("/ip", func(c *fiber.Ctx) error { return c.SendString(web.ClientIP(c)) })
	return app
}

func clientIPOf(t *testing.T, app *fiber.App, xff ...string) string {
	t.Helper()
	req := httptest.NewRequest("GET", "/ip", nil)
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	res, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestClientIPTrustsForwardedForOnlyFromTrustedProxies: app.Test's peer is 0.0.0.0, so trusting 0.0.0.0/32
// makes it a proxy; nothing else does.
func TestClientIPTrustsForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, trusted string
		xff           []string
		want          string
	}{
		{"no proxy trusted: header ignored", "", []string{"203.0.113.9"}, "0.0.0.0"},
		{"another proxy trusted: header ignored", "10.0.0.0/8", []string{"203.0.113.9"}, "0.0.0.0"},
		{"trusted peer, no header", "0.0.0.0", nil, "0.0.0.0"},
		{"trusted peer: the client it saw", "0.0.0.0/32", []string{"203.0.113.9"}, "203.0.113.9"},
		// The client wrote 1.2.3.4 itself; the proxy appended the address it saw.
		{"spoofed leftmost entry skipped", "0.0.0.0/32", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "0.0.0.0/32,10.0.0.0/8", []string{"1.2.3.4, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"several header lines", "0.0.0.0/32,10.0.0.0/8", []string{"1.2.3.4", "203.0.113.9", "10.1.2.3"}, "203.0.113.9"},
		{"port and IPv4-mapped IPv6", "0.0.0.0/32", []string{"[::ffff:203.0.113.9]:4711"}, "203.0.113.9"},
		{"IPv6 client", "0.0.0.0/32", []string{"2001:db8::7"}, "2001:db8::7"},
		{"garbage stops at the last trusted hop", "0.0.0.0/32,10.0.0.0/8", []string{"203.0.113.9, not-an-ip, 10.1.2.3"}, "10.1.2.3"},
		{"all hops trusted: the farthest", "0.0.0.0/32,10.0.0.0/8", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := clientIPOf(t, ipApp(t, tc.trusted), tc.xff...); got != tc.want {
				t.Fatalf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClientIPOverRealConnection: a real peer (127.0.0.1) is trusted only when listed.
func TestClientIPOverRealConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ trusted, want string }{{"", "127.0.0.1"}, {"::1,127.0.0.0/8", "198.51.100.4"}} {
		app := ipApp(t, tc.trusted)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = app.Listener(ln) }()
		t.Cleanup(func() { _ = app.Shutdown() })
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/ip", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.4")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if string(b) != tc.want {
			t.Fatalf("trusted %q: ClientIP = %q, want %q", tc.trusted, b, tc.want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := web.ParseTrustedProxies(" 10.0.0.1/8, 192.0.2.7 ,::1,")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if _, err := web.ParseTrustedProxies("10.0.0.0/33,proxy.local"); err == nil {
		t.Fatal("bad entries accepted")
	}
	if p, err := web.ParseTrustedProxies(""); err != nil || len(p) != 0 {
		t.Fatalf("empty list: %v %v", p, err)
	}
}
