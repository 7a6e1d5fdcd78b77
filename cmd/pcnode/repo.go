package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node/api"
)

func (a *app) gcCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Remove blocks that no pin reaches",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			res, err := b.GC(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "removed %d blocks, freed %d bytes\n", res.Removed, res.FreedBytes)
			})
		},
	}
}

// verifyOutput is what `repo verify --json` prints: the result, and an
// error message when corrupt blocks were found (the exit status is 1).
type verifyOutput struct {
	api.VerifyResult
	Error string `json:"error,omitempty"`
}

func (a *app) repoCmd() *cobra.Command {
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every block; report and quarantine corrupt ones",
		Long: `Re-hash every block in the store. Blocks whose bytes no longer hash to
their CID are listed and moved aside (quarantined) so they can be fetched
again. The exit status is 1 when any corrupt block was found.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			fn, finish := a.progress("verifying", false, false)
			res, err := b.Verify(cmd.Context(), fn)
			finish()
			if err != nil {
				return err
			}
			if res.Corrupt == nil {
				res.Corrupt = []string{}
			}
			out := verifyOutput{VerifyResult: res}
			if len(res.Corrupt) > 0 {
				out.Error = fmt.Sprintf("%d corrupt block(s) found", len(res.Corrupt))
			}
			if err := a.print(out, func(w io.Writer) {
				for _, c := range res.Corrupt {
					fmt.Fprintf(w, "corrupt %s\n", c)
				}
				fmt.Fprintf(w, "checked %d blocks: %d corrupt, %d quarantined\n", res.Checked, len(res.Corrupt), res.Quarantined)
			}); err != nil {
				return err
			}
			if out.Error != "" {
				return reportedError{fmt.Errorf("repo verify: %s", out.Error)}
			}
			return nil
		},
	}
	stat := &cobra.Command{
		Use:   "stat",
		Short: "Show the store's size: blocks, bytes, pins, disk use",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, done, err := a.backend(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer done()
			st, err := b.RepoStat(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) {
				fmt.Fprintf(w, "blocks      %d\n", st.Blocks)
				fmt.Fprintf(w, "bytes       %d\n", st.Bytes)
				fmt.Fprintf(w, "pins        %d\n", st.Pins)
				fmt.Fprintf(w, "disk bytes  %d\n", st.DiskBytes)
				fmt.Fprintf(w, "path        %s\n", st.Path)
			})
		},
	}
	return group("repo", "Maintain the block store", verify, stat)
}
