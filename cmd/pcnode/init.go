package main

import (
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
)

type initResult struct {
	Home    string `json:"home"`
	ID      string `json:"id"`
	Profile string `json:"profile"`
}

func (a *app) initCmd() *cobra.Command {
	var opts node.InitOptions
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a node's home: device key, API token and config",
		Long: `Create a node's home: a new device key, an API token and config.toml.

--profile local keeps the node on loopback with no public bootstrap peers
(for tests and demos); --profile default is ready for the Internet.
Init refuses a home that is already initialised unless --force is given
(which replaces the key, token and config but keeps the data).`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			if err := node.Init(home, opts); err != nil {
				return err
			}
			key, err := node.LoadKey(home)
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			s, err := node.LoadSettings(home)
			if err != nil {
				return err
			}
			prof, _ := s.Get("profile")
			res := initResult{Home: home, ID: id.String(), Profile: prof}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "initialised pcnode home %s (profile %s)\n", res.Home, res.Profile)
				fmt.Fprintf(w, "peer ID %s\n", res.ID)
				fmt.Fprintf(w, "next: %s%s daemon\n", progName(), a.homeFlag())
			})
		},
	}
	c.Flags().StringVar(&opts.Profile, "profile", node.ProfileDefault, "local (loopback only) or default")
	c.Flags().StringVar(&opts.APIListen, "api-listen", "", "host:port of the HTTP API (default "+node.DefaultAPIListen+")")
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing key, token and config (data is kept)")
	return c
}

// homeFlag is " --home X" when the user gave --home, so printed hints
// can be pasted as they are.
func (a *app) homeFlag() string {
	if a.home == "" {
		return ""
	}
	return " --home " + shellQuote(a.home)
}
