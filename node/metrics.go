package node

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pcnode/pcnode/node/cloud"
	"github.com/pcnode/pcnode/p2p"
)

// hopProtocol is circuit relay v2's hop protocol: a relay holds one such
// stream open, inbound, for every circuit it carries.
const hopProtocol = "/libp2p/circuit/relay/0.2.0/hop"

// statTimeout bounds the store scan behind one scrape.
const statTimeout = 10 * time.Second

// metrics is the node's own Prometheus registry (never the global one, so
// two nodes in one process do not collide).
type metrics struct {
	n        *Node
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	dns      *prometheus.CounterVec

	blocks, bytes, pins, disk, peers, trafficIn, trafficOut, up *prometheus.Desc
	members, membersConnected, rosterVersion                    *prometheus.Desc
	folderState, folderNeedFiles, folderNeedBytes, folderFiles  *prometheus.Desc
	folderBytes, folderLastScan, folderPeersBehind              *prometheus.Desc
	folderStreamed                                              *prometheus.Desc
	peerBytes, conns, relayCircuits, relayReservations          *prometheus.Desc
	serverRole, serverMirrors, serverReplicas                   *prometheus.Desc
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
		dns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pcnode_dns_queries_total",
			Help: "Queries received by the authoritative DNS server (dns.listen), by transport.",
		}, []string{"transport"}),
		folderState:       prometheus.NewDesc("pcnode_folder_state", "1 for the state each synced folder is in (new, scanning, syncing, idle = in sync, held, stopped, error, offline).", []string{"folder", "state"}, nil),
		folderNeedFiles:   prometheus.NewDesc("pcnode_folder_need_files", "Sync lag: files the folder's last pull still had to fetch or apply.", []string{"folder"}, nil),
		folderNeedBytes:   prometheus.NewDesc("pcnode_folder_need_bytes", "Sync lag: bytes the folder's last pull still had to fetch.", []string{"folder"}, nil),
		folderFiles:       prometheus.NewDesc("pcnode_folder_files", "Files in the folder on this device.", []string{"folder"}, nil),
		folderBytes:       prometheus.NewDesc("pcnode_folder_bytes", "Bytes of the folder's files on this device.", []string{"folder"}, nil),
		folderLastScan:    prometheus.NewDesc("pcnode_folder_last_scan_timestamp_seconds", "When the folder was last scanned (Unix time).", []string{"folder"}, nil),
		folderStreamed:    prometheus.NewDesc("pcnode_folder_streamed_bytes_total", "Block bytes the folder received over the members' DAG stream since it started (files of several blocks and single-block files alike; what bitswap brought is in pcnode_peer_block_bytes_total).", []string{"folder"}, nil),
		folderPeersBehind: prometheus.NewDesc("pcnode_folder_devices_disconnected", "Devices that share the folder and are not connected now (their changes wait).", []string{"folder"}, nil),
		peerBytes:         prometheus.NewDesc("pcnode_peer_block_bytes_total", "Block bytes exchanged by bitswap with each member device, by direction (sent, received) and the path of the connection at scrape time (direct, relayed, none).", []string{"peer", "name", "direction", "path"}, nil),
		conns:             prometheus.NewDesc("pcnode_p2p_connections", "Open libp2p connections by path: direct, or relayed through a circuit relay.", []string{"path"}, nil),
		relayCircuits:     prometheus.NewDesc("pcnode_relay_circuits", "Circuits this node relays for members now (role server; open hop streams).", nil, nil),
		relayReservations: prometheus.NewDesc("pcnode_relay_reservations", "Relays that hold a reservation for this node (its /p2p-circuit addresses).", nil, nil),
		serverRole:        prometheus.NewDesc("pcnode_server", "1 when the node runs as a home server (role server), else 0.", nil, nil),
		serverMirrors:     prometheus.NewDesc("pcnode_server_mirrored_shares", "Members' shares this home server has mirrored (revoked ones included).", nil, nil),
		serverReplicas:    prometheus.NewDesc("pcnode_server_replica_folders", "Folders this home server replicates receive-only under server.replica_dir.", nil, nil),
	}
	m.reg.MustRegister(
		m.dns,
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

// dnsQuery counts one query of the authoritative DNS server (its
// ServerConfig.OnQuery).
func (m *metrics) dnsQuery(transport string) {
	m.dns.WithLabelValues(transport).Inc()
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// nodeCollector reads the store and host at scrape time, so the values are
// current rather than sampled. The store figures cost a scan of the store.
type nodeCollector metrics

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.blocks, c.bytes, c.pins, c.disk, c.peers, c.trafficIn, c.trafficOut, c.up, c.members, c.membersConnected, c.rosterVersion,
		c.folderState, c.folderNeedFiles, c.folderNeedBytes, c.folderFiles, c.folderBytes, c.folderLastScan, c.folderPeersBehind, c.folderStreamed,
		c.peerBytes, c.conns, c.relayCircuits, c.relayReservations, c.serverRole, c.serverMirrors, c.serverReplicas} {
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
		if h != nil {
			c.collectPeers(ch, h, live)
		}
	}
	c.collectFolders(ch)
	if h != nil {
		c.collectRelay(ch, h)
	}
	isServer, mirrored, replicas := c.n.serverStats()
	ch <- prometheus.MustNewConstMetric(c.serverRole, prometheus.GaugeValue, b2f(isServer))
	if isServer {
		ch <- prometheus.MustNewConstMetric(c.serverMirrors, prometheus.GaugeValue, float64(mirrored))
		ch <- prometheus.MustNewConstMetric(c.serverReplicas, prometheus.GaugeValue, float64(replicas))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectFolders reports each folder's state and sync lag.
func (c *nodeCollector) collectFolders(ch chan<- prometheus.Metric) {
	n := c.n
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	if n.folders.running == nil {
		return
	}
	for _, fc := range n.folders.conf {
		fi := folderInfo(fc, n.folders.running[fc.ID])
		ch <- prometheus.MustNewConstMetric(c.folderState, prometheus.GaugeValue, 1, fc.ID, fi.State)
		ch <- prometheus.MustNewConstMetric(c.folderNeedFiles, prometheus.GaugeValue, float64(fi.NeedFiles), fc.ID)
		ch <- prometheus.MustNewConstMetric(c.folderNeedBytes, prometheus.GaugeValue, float64(fi.NeedBytes), fc.ID)
		ch <- prometheus.MustNewConstMetric(c.folderFiles, prometheus.GaugeValue, float64(fi.Files), fc.ID)
		ch <- prometheus.MustNewConstMetric(c.folderBytes, prometheus.GaugeValue, float64(fi.Bytes), fc.ID)
		ch <- prometheus.MustNewConstMetric(c.folderPeersBehind, prometheus.GaugeValue, float64(fi.Devices-fi.Connected), fc.ID)
		if f := n.folders.running[fc.ID]; f != nil {
			st := f.Status()
			if !st.LastScan.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.folderLastScan, prometheus.GaugeValue, float64(st.LastScan.UnixNano())/1e9, fc.ID)
			}
			ch <- prometheus.MustNewConstMetric(c.folderStreamed, prometheus.CounterValue, float64(st.StreamedBytes), fc.ID)
		}
	}
}

// collectPeers reports bitswap's byte counts with each member, labelled
// with the path of the connection now. Only members are labelled, so the
// series stay as few as the cloud's devices.
func (c *nodeCollector) collectPeers(ch chan<- prometheus.Metric, h *p2p.Host, live []cloud.Member) {
	bs, _ := h.Exchange().(*bitswap.Bitswap)
	paths := map[peer.ID]string{}
	for _, s := range h.Siblings() {
		if s.Connected && s.Path != "" {
			paths[s.ID] = s.Path
		}
	}
	for _, m := range live {
		if m.Peer == c.n.id || bs == nil {
			continue
		}
		r := bs.LedgerForPeer(m.Peer)
		if r == nil {
			continue
		}
		path := paths[m.Peer]
		if path == "" {
			path = "none"
		}
		ch <- prometheus.MustNewConstMetric(c.peerBytes, prometheus.CounterValue, float64(r.Sent), m.Peer.String(), m.Name, "sent", path)
		ch <- prometheus.MustNewConstMetric(c.peerBytes, prometheus.CounterValue, float64(r.Recv), m.Peer.String(), m.Name, "received", path)
	}
}

// collectRelay reports connections by path, the circuits this node
// relays and the reservations it holds.
func (c *nodeCollector) collectRelay(ch chan<- prometheus.Metric, h *p2p.Host) {
	lh := h.Libp2p()
	if lh == nil {
		return
	}
	var direct, relayed, circuits int
	for _, conn := range lh.Network().Conns() {
		if isCircuit(conn.RemoteMultiaddr()) {
			relayed++
		} else {
			direct++
		}
		for _, s := range conn.GetStreams() {
			if s.Protocol() == hopProtocol && s.Stat().Direction == network.DirInbound {
				circuits++
			}
		}
	}
	relays := map[string]bool{}
	for _, a := range h.Addrs() {
		if !isCircuit(a) {
			continue
		}
		// /…/p2p/<relay>/p2p-circuit/p2p/<self>: the first /p2p/ is the relay.
		if v, err := a.ValueForProtocol(multiaddr.P_P2P); err == nil {
			relays[v] = true
		}
	}
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(direct), "direct")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(relayed), "relayed")
	ch <- prometheus.MustNewConstMetric(c.relayCircuits, prometheus.GaugeValue, float64(circuits))
	ch <- prometheus.MustNewConstMetric(c.relayReservations, prometheus.GaugeValue, float64(len(relays)))
}

func isCircuit(a multiaddr.Multiaddr) bool {
	_, err := a.ValueForProtocol(multiaddr.P_CIRCUIT)
	return err == nil
}
