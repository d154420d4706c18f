package eventbus

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published *prometheus.CounterVec
	consumed  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tamarack_events_published_total", Help: "Events published, by subject and result.",
		}, []string{"subject", "result"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tamarack_events_consumed_total", Help: "Events consumed, by subject and result (ok, retry, poison).",
		}, []string{"subject", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published, m.consumed} {
			if err := reg.Register(c); err != nil {
				// A second bus in one process (tests) shares the first one's collectors.
				if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
					switch c {
					case m.published:
						m.published = are.ExistingCollector.(*prometheus.CounterVec)
					case m.consumed:
						m.consumed = are.ExistingCollector.(*prometheus.CounterVec)
					}
				}
			}
		}
	}
	return m
}
