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
	ID      string `json:"id"` // peer ID
	Profile string `json:"profile"`
	Cloud   string `json:"cloud,omitempty"`  // the new cloud's ID; absent with --no-cloud
	Device  string `json:"device,omitempty"` // this device's name in the cloud
	Role    string `json:"role"`
}

func (a *app) initCmd() *cobra.Command {
	var opts node.InitOptions
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a node's home: device key, API token, config and a new cloud",
		Long: `Create a node's home: a new device key, an API token and config.toml,
and a new cloud (the set of your devices) with this device as its first
member and admin. On a device that will join an existing cloud instead,
use --no-cloud, then 'pcnode join CODE' (or run 'pcnode join CODE' alone:
it creates the home when there is none).

--name is this device's name in the cloud (default: the host name);
--role server marks an always-on home server (it relays for the cloud's
devices). Both are saved in the config as name and role.

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
			role, _ := s.Get("role")
			res := initResult{Home: home, ID: id.String(), Profile: prof, Role: role}
			if !opts.NoCloud {
				n, err := a.openOffline(cmd.Context(), home)
				if err != nil {
					return err
				}
				ci, err := n.Cloud(cmd.Context())
				n.Close()
				if err != nil {
					return err
				}
				res.Cloud, res.Device, res.Role = ci.ID, ci.Device, ci.Role
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "initialised pcnode home %s (profile %s)\n", res.Home, res.Profile)
				fmt.Fprintf(w, "peer ID %s\n", res.ID)
				if res.Cloud != "" {
					fmt.Fprintf(w, "new cloud %s; this device is %q (%s, admin)\n", res.Cloud, res.Device, res.Role)
					fmt.Fprintf(w, "next: %s%s daemon, then %s%s invite to add a device\n", progName(), a.homeFlag(), progName(), a.homeFlag())
				} else {
					fmt.Fprintf(w, "no cloud yet: %s%s join CODE (from pcnode invite on a device of the cloud)\n", progName(), a.homeFlag())
				}
			})
		},
	}
	c.Flags().StringVar(&opts.Profile, "profile", node.ProfileDefault, "local (loopback only) or default")
	c.Flags().StringVar(&opts.APIListen, "api-listen", "", "host:port of the HTTP API (default "+node.DefaultAPIListen+")")
	c.Flags().StringVar(&opts.Name, "name", "", "this device's name in its cloud (default: the host name)")
	c.Flags().StringVar(&opts.Role, "role", "", `"device" (default) or "server" (an always-on home server)`)
	c.Flags().BoolVar(&opts.NoCloud, "no-cloud", false, "create no cloud: this device will join one with pcnode join")
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
