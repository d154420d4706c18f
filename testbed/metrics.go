package testbed

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// metrics of the testbed, registered on Deps.Registry when one is given.
type metrics struct {
	launches  *prometheus.CounterVec
	toRunning prometheus.Histogram
	samples   prometheus.Counter
	stops     *prometheus.CounterVec
	// agentRefused counts agents' messages about what they do not own (an alert: NATS permissions should
	// have prevented them).
	agentRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		launches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tamarack_testbed_launches_total",
			Help: "Sandbox launch requests by result (accepted or the problem code)."}, []string{"result"}),
		toRunning: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tamarack_testbed_accept_to_running_seconds",
			Help:    "Time from a launch's acceptance to the backend-observed start.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "tamarack_testbed_usage_samples_total",
			Help: "Usage samples written to the outbox."}),
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tamarack_testbed_sandboxes_ended_total",
			Help: "Sandboxes that reached stopped or failed, by reason."}, []string{"state", "reason"}),
		agentRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tamarack_testbed_agent_messages_refused_total",
			Help: "Site agents' messages refused because they concern what the agent does not own (alert on any)."}, []string{"message"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.launches, m.toRunning, m.samples, m.stops, m.agentRefused} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err) // a programming error: two different metrics with one name
				}
			}
		}
	}
	return m
}

func (m *metrics) launched(err error) {
	result := "accepted"
	if err != nil {
		result = "error"
		if p, ok := problem.From(err); ok {
			result = p.Code
		}
	}
	m.launches.WithLabelValues(result).Inc()
}
