package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node/api"
)

type pinResult struct {
	CID    string `json:"cid"`
	Type   string `json:"type,omitempty"`
	Pinned bool   `json:"pinned"`
}

type pinList struct {
	Pins []api.Pin `json:"pins"`
}

func (a *app) pinCmd() *cobra.Command {
	var direct bool
	add := &cobra.Command{
		Use:   "add CID",
		Short: "Pin CID (and, unless --direct, everything under it)",
		Args:  args("CID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := api.ParseCID(argv[0])
			if err != nil {
				return err
			}
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			if err := b.PinAdd(cmd.Context(), c, !direct); err != nil {
				return err
			}
			res := pinResult{CID: c.String(), Type: "recursive", Pinned: true}
			if direct {
				res.Type = "direct"
			}
			return a.print(res, func(w io.Writer) { fmt.Fprintf(w, "pinned %s %s\n", res.CID, res.Type) })
		},
	}
	add.Flags().BoolVar(&direct, "direct", false, "pin only the root block")
	rm := &cobra.Command{
		Use:   "rm CID",
		Short: "Unpin CID; its blocks go at the next gc unless pinned otherwise",
		Args:  args("CID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := api.ParseCID(argv[0])
			if err != nil {
				return err
			}
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			if err := b.PinRm(cmd.Context(), c); err != nil {
				return err
			}
			res := pinResult{CID: c.String(), Pinned: false}
			return a.print(res, func(w io.Writer) { fmt.Fprintf(w, "unpinned %s\n", res.CID) })
		},
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List pins (CID and type)",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			pins, err := b.PinLs(cmd.Context())
			if err != nil {
				return err
			}
			if pins == nil {
				pins = []api.Pin{}
			}
			return a.print(pinList{Pins: pins}, func(w io.Writer) {
				for _, p := range pins {
					fmt.Fprintf(w, "%s %s\n", p.CID, p.Type)
				}
			})
		},
	}
	return group("pin", "Keep content from garbage collection", add, rm, ls)
}
