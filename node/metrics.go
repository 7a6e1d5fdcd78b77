package node

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statTimeout bounds the store scan behind one scrape.
const statTimeout = 10 * time.Second

// metrics is the node's own Prometheus registry (never the global one, so
// two nodes in one process do not collide).
type metrics struct {
	n        *Node
	reg      *prometheus.Registry
	requests *prometheus.CounterVec

	blocks, bytes, pins, disk, peers, trafficIn, trafficOut, up *prometheus.Desc
	members, membersConnected, rosterVersion                    *prometheus.Desc
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		n:   n,
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pcnode_api_requests_total",
			Help: "API requests served, by route and HTTP status code.",
		}, []string{"route", "code"}),
		blocks:           prometheus.NewDesc("pcnode_store_blocks", "Blocks in the block store.", nil, nil),
		bytes:            prometheus.NewDesc("pcnode_store_bytes", "Sum of the sizes of the blocks in the store.", nil, nil),
		pins:             prometheus.NewDesc("pcnode_store_pins", "Pins (direct and recursive).", nil, nil),
		disk:             prometheus.NewDesc("pcnode_store_disk_bytes", "Bytes used on disk by the store's files.", nil, nil),
		peers:            prometheus.NewDesc("pcnode_p2p_peers", "Connected libp2p peers.", nil, nil),
		trafficIn:        prometheus.NewDesc("pcnode_p2p_received_bytes_total", "Bytes received on libp2p streams.", nil, nil),
		trafficOut:       prometheus.NewDesc("pcnode_p2p_sent_bytes_total", "Bytes sent on libp2p streams.", nil, nil),
		up:               prometheus.NewDesc("pcnode_online", "1 when the node runs with networking, 0 offline.", nil, nil),
		members:          prometheus.NewDesc("pcnode_cloud_members", "Live (not revoked) devices in the cloud's roster, this one included.", nil, nil),
		membersConnected: prometheus.NewDesc("pcnode_cloud_members_connected", "Other member devices connected now.", nil, nil),
		rosterVersion:    prometheus.NewDesc("pcnode_cloud_roster_version", "Version of the cloud's roster held by this device.", nil, nil),
	}
	m.reg.MustRegister(
		m.requests,
		(*nodeCollector)(m),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// nodeCollector reads the store and host at scrape time, so the values are
// current rather than sampled. The store figures cost a scan of the store.
type nodeCollector metrics

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.blocks, c.bytes, c.pins, c.disk, c.peers, c.trafficIn, c.trafficOut, c.up, c.members, c.membersConnected, c.rosterVersion} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st, _, h, err := c.n.parts()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
	defer cancel()
	if s, err := st.Stat(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.blocks, prometheus.GaugeValue, float64(s.Blocks))
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
		ch <- prometheus.MustNewConstMetric(c.pins, prometheus.GaugeValue, float64(s.Pins))
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(s.DiskBytes))
	} else {
		ch <- prometheus.NewInvalidMetric(c.blocks, err)
	}
	var peers int
	var in, out int64
	online := 0.0
	if h != nil {
		peers = len(h.Peers())
		t := h.Traffic()
		in, out = t.BytesIn, t.BytesOut
		online = 1
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(peers))
	ch <- prometheus.MustNewConstMetric(c.trafficIn, prometheus.CounterValue, float64(in))
	ch <- prometheus.MustNewConstMetric(c.trafficOut, prometheus.CounterValue, float64(out))
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, online)
	// Without a cloud the cloud series are absent rather than 0.
	if cs := c.n.members.state(); cs != nil {
		r := cs.Roster()
		live := r.Live()
		conn := 0
		if h != nil {
			if lh := h.Libp2p(); lh != nil {
				for _, m := range live {
					if m.Peer != c.n.id && lh.Network().Connectedness(m.Peer) == network.Connected {
						conn++
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(live)))
		ch <- prometheus.MustNewConstMetric(c.membersConnected, prometheus.GaugeValue, float64(conn))
		ch <- prometheus.MustNewConstMetric(c.rosterVersion, prometheus.GaugeValue, float64(r.Version))
	}
}
