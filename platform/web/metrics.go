package web

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

func metricsMiddleware(reg prometheus.Registerer) fiber.Handler {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tamarack_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route", "status"})
	if err := reg.Register(dur); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			dur = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			status = statusOf(err)
		}
		// The route pattern, not the path: IDs would explode the label set.
		dur.WithLabelValues(c.Method(), c.Route().Path, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		return err
	}
}
