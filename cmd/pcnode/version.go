package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// buildVersion reads the version the Go toolchain stamped into the binary.
func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pcnode's version",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "pcnode %s", v.Version)
				if v.Revision != "" {
					fmt.Fprintf(w, " (%s", v.Revision)
					if v.Modified {
						fmt.Fprint(w, ", modified")
					}
					fmt.Fprint(w, ")")
				}
				fmt.Fprintf(w, " %s\n", v.Go)
			})
		},
	}
}
