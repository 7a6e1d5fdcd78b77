package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
)

// sharing returns the backend's sharing side.
func sharing(b api.Backend) (api.Sharing, error) {
	s, ok := b.(api.Sharing)
	if !ok {
		return nil, errors.New("this node does not share items")
	}
	return s, nil
}

func (a *app) shareCmd() *cobra.Command {
	var req api.ShareRequest
	c := &cobra.Command{
		Use:   "share PATH|CID",
		Short: "Share a file or folder with anyone holding the link; share ls, share revoke ID",
		Long: `Share a file or folder (a path, imported first, or a CID already in the
store) with people outside the cloud, and print its link (with a QR code on a
terminal) and, unless encrypted, the plain ipfs:// form that any IPFS client
opens. The friend runs: pcnode get LINK. docs/SHARE.md describes the link.

Until the share is revoked (pcnode share revoke ID) or expires (--expires
7d, 36h, 90m or an RFC 3339 time), anyone may fetch its blocks from this
node, and nothing else. --encrypt stores the item encrypted with a new key
that only the link carries. --name NAME publishes _dnslink.NAME.<dns.zone>.
--unlisted keeps it out of the DHT. Needs the daemon.`,
		Args: args("PATH|CID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			if c, err := api.ParseCID(argv[0]); err == nil {
				if _, serr := os.Stat(argv[0]); serr != nil {
					req.CID = c.String()
				}
			}
			if req.CID == "" {
				path, err := filepath.Abs(argv[0])
				if err != nil {
					return err
				}
				if _, err := os.Stat(path); err != nil {
					return fmt.Errorf("share %s: %w (neither a path nor a CID)", argv[0], unwrapPathError(err))
				}
				req.Path = path
			}
			b, done, err := a.backend(ctx, true)
			if errors.Is(err, errNeedsDaemon) {
				return fmt.Errorf("share needs the daemon running (the link carries its addresses, and it serves the item): start it with %s%s daemon", progName(), a.homeFlag())
			}
			if err != nil {
				return err
			}
			defer done()
			s, err := sharing(b)
			if err != nil {
				return err
			}
			fn, finish := a.progress("sharing", true, false)
			res, err := s.Share(ctx, req, fn)
			finish()
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n", res.Link)
				if isTerminal(a.stdout) {
					if err := cloud.WriteQR(w, res.Link); err != nil {
						fmt.Fprintf(a.stderr, "pcnode: no QR: %v\n", err)
					}
				}
				if res.IPFS != "" {
					fmt.Fprintf(w, "ipfs: %s\n", res.IPFS)
				}
				if res.DNSName != "" {
					fmt.Fprintf(w, "name: %s (ipns://%s)\n", res.DNSName, res.DNSName)
				}
				if res.Gateway != "" {
					fmt.Fprintf(w, "gateway: %s\n", res.Gateway)
				}
				exp := "never expires"
				if res.Expires != "" {
					exp = "expires " + res.Expires
				}
				fmt.Fprintf(w, "share %s: %s, %d bytes, %s; revoke with: pcnode share revoke %s\n", res.ID, res.CID, res.Size, exp, res.ID)
			})
		},
	}
	c.Flags().StringVar(&req.Expires, "expires", "", "stop serving after this long (7d, 36h, 90m) or at this RFC 3339 time; default never")
	c.Flags().BoolVar(&req.Encrypt, "encrypt", false, "store the item encrypted; the key travels only in the link")
	c.Flags().StringVar(&req.Name, "name", "", "publish the share as _dnslink.NAME.<dns.zone>")
	c.Flags().BoolVar(&req.Unlisted, "unlisted", false, "do not announce the share in the DHT")
	c.AddCommand(a.shareLsCmd(), a.shareRevokeCmd())
	return c
}

type shareList struct {
	Shares []api.ShareInfo `json:"shares"`
}

func (a *app) shareLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List shares with their state and downloads",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			s, err := sharing(b)
			if err != nil {
				return err
			}
			ss, err := s.Shares(cmd.Context())
			if err != nil {
				return err
			}
			if ss == nil {
				ss = []api.ShareInfo{}
			}
			return a.print(shareList{Shares: ss}, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tDOWNLOADS\tSIZE\tNAME\tCID")
				for _, s := range ss {
					name := s.Name
					if s.Encrypted {
						name += " (encrypted)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", s.ID, s.State, s.Downloads, s.Size, name, s.CID)
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) shareRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Stop serving a share at once",
		Args:  args("ID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			s, err := sharing(b)
			if err != nil {
				return err
			}
			res, err := s.ShareRevoke(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "revoked share %s (%s)\n", res.ID, res.CID)
			})
		},
	}
}
