package web

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Probe is one readiness probe (database, NATS).
type Probe func(ctx context.Context) error

// Health mounts /healthz (the process runs) and /readyz (every check passes, else 503 naming the failures).
func Health(app fiber.Router, checks map[string]Probe) {
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
		defer cancel()
		out := fiber.Map{}
		failed := false
		for name, check := range checks {
			if err := check(ctx); err != nil {
				out[name] = err.Error()
				failed = true
			} else {
				out[name] = "ok"
			}
		}
		if failed {
			c.Status(fiber.StatusServiceUnavailable)
			return c.JSON(fiber.Map{"status": "unavailable", "checks": out})
		}
		return c.JSON(fiber.Map{"status": "ok", "checks": out})
	})
}

// Metrics mounts /metrics with the Prometheus text exposition of g.
func Metrics(app fiber.Router, g prometheus.Gatherer) {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	app.Get("/metrics", func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	})
}
