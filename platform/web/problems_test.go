package web_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/problem/problemtest"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// web's sentinels tell the caller what to do, and so does every problem web makes of Fiber's own errors.
func TestProblemsHaveDetails(t *testing.T) {
	t.Parallel()
	problemtest.RequireDetails(t, "auth.go", "body.go")

	app := web.New(web.Config{})
	for _, status := range []int{400, 404, 405, 408, 413, 415, 418, 500, 503} {
		app.Get("/fiber/"+itoa(status), func(c *fiber.Ctx) error { return fiber.NewError(status) })
	}
	app.Use(web.NotFound)
	for _, status := range []int{400, 404, 405, 408, 413, 415, 418, 500, 503} {
		res, err := app.Test(httptest.NewRequest("GET", "/fiber/"+itoa(status), nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if body["code"] == nil || body["detail"] == nil || body["detail"] == "" {
			t.Errorf("fiber error %d answered %v: a problem with a detail expected", status, body)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
