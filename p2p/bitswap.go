package p2p

import "github.com/ipfs/boxo/bitswap"

// Bitswap tuning. The defaults (8 task workers, 1 MiB outstanding per peer,
// 16 KiB target messages) are sized for a node serving many strangers a
// little each. pcnode mostly moves a whole folder between two of the
// person's own devices, so it lets one peer keep more data in flight and
// sends fewer, larger messages. BenchmarkFetch compares these with boxo's
// defaults ("exchange-boxo-defaults").
const (
	// bitswapMaxOutstandingBytesPerPeer is how much the server queues for
	// one peer before it stops taking more of that peer's wants: enough to
	// keep a loopback or LAN link busy with 1 MiB blocks.
	bitswapMaxOutstandingBytesPerPeer = 16 << 20

	// bitswapEngineTaskWorkers and bitswapTaskWorkers run the server's
	// decision engine and message senders.
	bitswapEngineTaskWorkers = 8
	bitswapTaskWorkers       = 8

	// bitswapTargetMessageSize is the size the server aims for when it
	// bundles blocks into one message.
	bitswapTargetMessageSize = 1 << 20
)

func bitswapOptions() []bitswap.Option {
	return []bitswap.Option{
		bitswap.MaxOutstandingBytesPerPeer(bitswapMaxOutstandingBytesPerPeer),
		bitswap.EngineTaskWorkerCount(bitswapEngineTaskWorkers),
		bitswap.TaskWorkerCount(bitswapTaskWorkers),
		bitswap.WithTargetMessageSize(bitswapTargetMessageSize),
	}
}
