package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node/api"
)

type peerList struct {
	Peers []api.Peer `json:"peers"`
}

func (a *app) peersCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List connected peers (needs the daemon)",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer done()
			ps, err := b.PeerList(cmd.Context())
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []api.Peer{}
			}
			return a.print(peerList{Peers: ps}, func(w io.Writer) {
				for _, p := range ps {
					fmt.Fprintf(w, "%s %s %s\n", p.ID, p.Direction, strings.Join(p.Addrs, ","))
				}
			})
		},
	}
	connect := &cobra.Command{
		Use:   "connect MULTIADDR",
		Short: "Connect to a peer, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo... (needs the daemon)",
		Args:  args("MULTIADDR"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ma, err := multiaddr.NewMultiaddr(argv[0])
			if err != nil {
				return api.Errorf(api.ErrInvalid, "invalid multiaddr %q: %w", argv[0], err)
			}
			b, done, err := a.backend(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer done()
			p, err := b.Connect(cmd.Context(), ma)
			if err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) { fmt.Fprintf(w, "connected %s\n", p.ID) })
		},
	}
	return group("peers", "List and connect libp2p peers", ls, connect)
}
