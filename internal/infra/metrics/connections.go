package metrics

import "github.com/prometheus/client_golang/prometheus"

// ObserveConnections exports the listener's connections, read at scrape
// time: nexus_http_open_connections, those accepted and not yet closed,
// and nexus_http_max_connections, the cap (server.max_connections) they
// never exceed. Past the cap new connections wait in the kernel's accept
// queue, so open == max means clients are waiting.
func (m *Metrics) ObserveConnections(open func() int64, limit int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nexus_http_open_connections",
			Help: "HTTP connections accepted and not yet closed; never above nexus_http_max_connections.",
		}, func() float64 { return float64(open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nexus_http_max_connections",
			Help: "The cap on open HTTP connections (server.max_connections); past it new connections wait to be accepted.",
		}, func() float64 { return float64(limit) }),
	)
}
