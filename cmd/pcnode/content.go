package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
)

func (a *app) addCmd() *cobra.Command {
	var quiet, noPin bool
	c := &cobra.Command{
		Use:   "add PATH",
		Short: "Import a file or directory and print its CID",
		Long: `Import a file or a directory tree as UnixFS (CIDv1, raw leaves) into the
node's store and print its root CID. The result is pinned unless --no-pin.
-q prints only the CID. Through a daemon the path is read by the daemon,
which runs on this machine.`,
		Args: args("PATH"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			path, err := filepath.Abs(argv[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("add %s: %w", argv[0], unwrapPathError(err))
			}
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			fn, finish := a.progress("adding", true, quiet)
			res, err := b.Add(cmd.Context(), api.AddRequest{Path: path, NoPin: noPin}, fn)
			finish()
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				if quiet {
					fmt.Fprintln(w, res.CID)
					return
				}
				fmt.Fprintf(w, "added %s %s\n", res.CID, res.Name)
			})
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the CID")
	c.Flags().BoolVar(&noPin, "no-pin", false, "do not pin the result")
	return c
}

type catResult struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
	Data []byte `json:"data"` // base64 in JSON
}

func (a *app) catCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat CID",
		Short: "Write a file's content to stdout",
		Long: `Write the content of the UnixFS file CID to stdout. With --json the
content is returned base64-encoded in "data" (meant for small files).`,
		Args: args("CID"),
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
			rc, err := b.Cat(cmd.Context(), c)
			if err != nil {
				return err
			}
			defer rc.Close()
			if a.json {
				data, err := io.ReadAll(rc)
				if err != nil {
					return fmt.Errorf("cat %s: %w", c, err)
				}
				return a.print(catResult{CID: c.String(), Size: len(data), Data: data}, nil)
			}
			if _, err := io.Copy(a.stdout, rc); err != nil {
				return fmt.Errorf("cat %s: %w", c, err)
			}
			return nil
		},
	}
}

func (a *app) getCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "get CID|LINK [-o PATH]",
		Short: "Fetch a file or directory by CID or share link and write it to disk",
		Long: `Fetch the DAG under CID, from the local store or (through the daemon) from
connected peers, verify it and write it to PATH (default: ./CID). The
output appears atomically: it is complete or absent.

Given a share link (pcnode://share/..., see pcnode share), the daemon dials
the link's providers, refuses an expired link, checks the size, decrypts an
encrypted share, and writes it to PATH (default: the item's name). Blocks
already fetched stay in the store, so running it again after an
interruption continues where it stopped.`,
		Args: args("CID|LINK"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			req := api.GetRequest{}
			c, err := api.ParseCID(argv[0])
			if err != nil {
				l, lerr := share.Parse(argv[0])
				if lerr != nil {
					if strings.Contains(argv[0], "://") || strings.HasPrefix(argv[0], "/ipfs/") {
						return api.Errorf(api.ErrInvalid, "%w", lerr)
					}
					return err
				}
				c = l.Root
				if strings.Contains(argv[0], "://share/") {
					req.Link = argv[0]
				}
				if out == "" && l.Name != "" {
					out = l.Name
				}
			}
			req.CID = c.String()
			if out == "" {
				out = c.String()
			}
			// The daemon's working directory is not ours.
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			release, removed := cleanStaleTemps(abs)
			defer release()
			for _, r := range removed {
				fmt.Fprintf(a.stderr, "pcnode: removed %s, left by an interrupted get (the blocks it had fetched are kept in the store)\n", r)
			}
			fn, finish := a.progress("fetching", true, false)
			req.Output = abs
			res, err := b.Get(cmd.Context(), req, fn)
			finish()
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "saved %s to %s (%d bytes)\n", res.CID, res.Output, res.Size)
			})
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "where to write (default ./CID)")
	return c
}

type lsResult struct {
	CID     string      `json:"cid"`
	Entries []api.Entry `json:"entries"`
}

func (a *app) lsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls CID",
		Short: "List a directory's entries (CID, size, name)",
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
			ents, err := b.Ls(cmd.Context(), c)
			if err != nil {
				return err
			}
			if ents == nil {
				ents = []api.Entry{}
			}
			return a.print(lsResult{CID: c.String(), Entries: ents}, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
				for _, e := range ents {
					name := e.Name
					if e.Type == "dir" {
						name += "/"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\n", e.CID, e.Size, name)
				}
				tw.Flush()
			})
		},
	}
}

// tempInfix names the hidden staging files and directories in which an
// output NAME is written before it is renamed into place:
// ".NAME.pcnode-tmp-*" (blobstore's Export and StagedFile, share
// decryption).
const tempInfix = ".pcnode-tmp-"

// cleanStaleTemps removes what earlier gets of dst left beside it: the
// staging entries of dst (".NAME.pcnode-tmp-*") in its directory. A get
// killed in the middle, or whose daemon was killed, leaves one, never a
// partial NAME; the blocks it had fetched are in the store, so the get
// run again resumes from there and needs none of it. It returns the paths
// removed.
//
// While a get runs it holds an advisory lock (flock) on dst's directory,
// taken here and dropped by release. A get that cannot take the lock
// because another get into the same directory is running cleans nothing,
// so that it never removes the staging file of a get still in progress.
// Errors (no such directory, no flock) only mean nothing is cleaned.
func cleanStaleTemps(dst string) (release func(), removed []string) {
	dir, base := filepath.Dir(dst), filepath.Base(dst)
	d, err := os.Open(dir)
	if err != nil {
		return func() {}, nil
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		return func() {}, nil
	}
	release = func() { d.Close() } // closing the descriptor drops the lock
	ents, err := d.ReadDir(-1)
	if err != nil {
		return release, nil
	}
	prefix := "." + base + tempInfix
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return release, removed
}

// unwrapPathError drops the *fs.PathError wrapper whose path the caller
// already names.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
