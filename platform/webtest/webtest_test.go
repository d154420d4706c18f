package webtest_test

import (
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/platform/webtest"
)

// TestSignerDoAndGolden: a signed token passes the platform's authentication, a request without one is anonymous, a
// forged one gets the problem, and the answer matches its golden file.
func TestSignerDoAndGolden(t *testing.T) {
	t.Parallel()
	sign := webtest.NewSigner()
	app := web.New(web.Config{})
	app.Get("/me", web.Auth(sign.Authenticator()), func(c *fiber.Ctx) error {
		p := web.PrincipalOf(c)
		return c.JSON(map[string]any{"user": p.UserID, "org": p.OrgID, "staff": p.Staff})
	})
	tok := sign.Token(t, webtest.Principal{User: "u-1", Org: "o-1", OrgKind: "sme", Role: "admin", Staff: true})
	r := webtest.Do(t, app, "GET", "/me", tok, nil)
	webtest.Expect(t, r, 200, "")
	var me struct{ User, Org string }
	r.JSON(t, &me)
	if me.User != "u-1" || me.Org != "o-1" {
		t.Fatalf("principal %+v", me)
	}
	webtest.Golden(t, "me", webtest.IndentJSON(t, r.Body))
	if anon := sign.Token(t, webtest.Principal{}); anon != "" {
		t.Fatalf("anonymous token %q", anon)
	}
	r = webtest.Do(t, app, "GET", "/me", "", nil)
	me.User = "unchanged"
	if r.JSON(t, &me); r.Status != 200 || me.User != "" {
		t.Fatalf("without a token: %d %s", r.Status, r.Body)
	}
	r = webtest.Do(t, app, "GET", "/me", tok+"x", nil)
	if r.Status != 401 || r.Code() == "" {
		t.Fatalf("with a forged token: %d %q %s", r.Status, r.Code(), r.Body)
	}
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	webtest.Eventually(t, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times", n)
	}
}
