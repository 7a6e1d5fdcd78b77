package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

type configValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (a *app) configCmd() *cobra.Command {
	load := func() (string, *node.Settings, error) {
		home, err := a.homeDir()
		if err != nil {
			return "", nil, err
		}
		s, err := node.LoadSettings(home)
		return home, s, err
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print every setting of config.toml as KEY VALUE",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, s, err := load()
			if err != nil {
				return err
			}
			m := map[string]string{}
			keys := node.SettingKeys()
			for _, k := range keys {
				v, err := s.Get(k)
				if err != nil {
					return err
				}
				m[k] = v
			}
			return a.print(m, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\n", k, m[k])
				}
				tw.Flush()
			})
		},
	}
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print one setting",
		Args:  args("KEY"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			_, s, err := load()
			if err != nil {
				return err
			}
			v, err := s.Get(argv[0])
			if err != nil {
				return err
			}
			return a.print(configValue{argv[0], v}, func(w io.Writer) { fmt.Fprintln(w, v) })
		},
	}
	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Change one setting (a running daemon applies it at restart)",
		Args:  args("KEY", "VALUE"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			home, s, err := load()
			if err != nil {
				return err
			}
			if err := s.Set(argv[0], argv[1]); err != nil {
				return err
			}
			if err := s.Save(home); err != nil {
				return err
			}
			v, _ := s.Get(argv[0])
			return a.print(configValue{argv[0], v}, func(w io.Writer) {
				fmt.Fprintf(w, "%s = %s\n", argv[0], v)
				if _, err := os.Stat(filepath.Join(home, api.APIFile)); err == nil {
					fmt.Fprintf(w, "a daemon is running on this home: restart it to apply the change\n")
				}
			})
		},
	}
	return group("config", "Show and change config.toml (dotted keys, e.g. api.listen)", show, get, set)
}
