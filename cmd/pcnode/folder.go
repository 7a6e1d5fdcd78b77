package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcnode/pcnode/node/api"
)

// folders returns the backend's folder side.
func folders(b api.Backend) (api.Folders, error) {
	f, ok := b.(api.Folders)
	if !ok {
		return nil, errors.New("this node does not sync folders")
	}
	return f, nil
}

// withFolders runs fn with the folder side of the backend; needDaemon
// asks for the running daemon.
func (a *app) withFolders(ctx context.Context, needDaemon bool, what string, fn func(api.Folders) error) error {
	b, done, err := a.backend(ctx, needDaemon)
	if errors.Is(err, errNeedsDaemon) {
		return fmt.Errorf("%s needs the daemon running (folders sync while it runs): start it with %s%s daemon", what, progName(), a.homeFlag())
	}
	if err != nil {
		return err
	}
	defer done()
	f, err := folders(b)
	if err != nil {
		return err
	}
	return fn(f)
}

func (a *app) folderCmd() *cobra.Command {
	return group("folder", "Sync folders among the cloud's devices: add, ls, join, leave, status, confirm, versions, restore",
		a.folderAddCmd(), a.folderLsCmd("ls", "List synced folders with their state"),
		a.folderLsCmd("status", "Show each folder's sync state and progress"),
		a.folderJoinCmd(), a.folderIDCmd("leave", "Stop syncing a folder here (its files stay)", api.Folders.FolderLeave),
		a.folderIDCmd("confirm", "Apply the deletes held by the mass-delete guard", api.Folders.FolderConfirm),
		a.folderVersionsCmd(), a.folderRestoreCmd())
}

func printFolder(w io.Writer, fi api.FolderInfo) {
	fmt.Fprintf(w, "folder %s at %s: %s\n", fi.ID, fi.Path, describeFolder(fi))
}

func describeFolder(fi api.FolderInfo) string {
	s := fi.State
	switch fi.State {
	case "idle":
		s = "in sync"
	case "syncing":
		s = fmt.Sprintf("syncing, %d files (%d bytes) to go", fi.NeedFiles, fi.NeedBytes)
	case "held":
		s = fmt.Sprintf("%d deletes held: pcnode folder confirm %s", fi.HeldDeletes+fi.HeldLocalDeletes, fi.ID)
	}
	if fi.Error != "" {
		s += ": " + fi.Error
	}
	return s
}

func (a *app) folderAddCmd() *cobra.Command {
	var req api.FolderAddRequest
	c := &cobra.Command{
		Use:   "add PATH",
		Short: "Sync a directory as a new folder; prints its ID for folder join on other devices",
		Args:  args("PATH"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := filepath.Abs(argv[0])
			if err != nil {
				return err
			}
			req.Path = p
			return a.withFolders(cmd.Context(), true, "folder add", func(f api.Folders) error {
				fi, err := f.FolderAdd(cmd.Context(), req)
				if err != nil {
					return err
				}
				return a.print(fi, func(w io.Writer) {
					printFolder(w, fi)
					fmt.Fprintf(w, "on another device: pcnode folder join %s PATH\n", fi.ID)
				})
			})
		},
	}
	c.Flags().BoolVar(&req.ReceiveOnly, "receive-only", false, "apply other devices' changes but send none (a backup)")
	return c
}

type folderList struct {
	Folders []api.FolderInfo `json:"folders"`
}

func (a *app) folderLsCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withFolders(cmd.Context(), false, "folder "+use, func(f api.Folders) error {
				fs, err := f.Folders(cmd.Context())
				if err != nil {
					return err
				}
				if fs == nil {
					fs = []api.FolderInfo{}
				}
				return a.print(folderList{Folders: fs}, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tPATH\tFILES\tBYTES\tDEVICES\tSTATE")
					for _, fi := range fs {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d/%d\t%s\n", fi.ID, fi.Path, fi.Files, fi.Bytes, fi.Connected, fi.Devices, describeFolder(fi))
					}
					tw.Flush()
				})
			})
		},
	}
}

func (a *app) folderJoinCmd() *cobra.Command {
	var req api.FolderJoinRequest
	c := &cobra.Command{
		Use:   "join ID PATH",
		Short: "Sync a folder that another device has into PATH (created if missing)",
		Args:  args("ID", "PATH"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := filepath.Abs(argv[1])
			if err != nil {
				return err
			}
			req.ID, req.Path = argv[0], p
			return a.withFolders(cmd.Context(), true, "folder join", func(f api.Folders) error {
				fi, err := f.FolderJoin(cmd.Context(), req)
				if err != nil {
					return err
				}
				return a.print(fi, func(w io.Writer) { printFolder(w, fi) })
			})
		},
	}
	c.Flags().BoolVar(&req.ReceiveOnly, "receive-only", false, "apply other devices' changes but send none (a backup)")
	return c
}

func (a *app) folderIDCmd(use, short string, op func(api.Folders, context.Context, string) (api.FolderInfo, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  args("ID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withFolders(cmd.Context(), use == "confirm", "folder "+use, func(f api.Folders) error {
				fi, err := op(f, cmd.Context(), argv[0])
				if err != nil {
					return err
				}
				return a.print(fi, func(w io.Writer) { printFolder(w, fi) })
			})
		},
	}
}

type versionList struct {
	Versions []api.FolderVersion `json:"versions"`
}

func (a *app) folderVersionsCmd() *cobra.Command {
	var folder string
	c := &cobra.Command{
		Use:   "versions PATH",
		Short: "List the kept old versions of a file in a synced folder",
		Args:  args("PATH"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p := argv[0]
			if folder == "" {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				p = abs
			}
			return a.withFolders(cmd.Context(), true, "folder versions", func(f api.Folders) error {
				vs, err := f.FolderVersions(cmd.Context(), folder, p)
				if err != nil {
					return err
				}
				if vs == nil {
					vs = []api.FolderVersion{}
				}
				return a.print(versionList{Versions: vs}, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "TIME\tSIZE\tPATH")
					for _, v := range vs {
						fmt.Fprintf(tw, "%s\t%d\t%s\n", v.Time, v.Size, v.Path)
					}
					tw.Flush()
				})
			})
		},
	}
	c.Flags().StringVar(&folder, "folder", "", "folder ID, when PATH is relative to its root")
	return c
}

func (a *app) folderRestoreCmd() *cobra.Command {
	var req api.FolderRestoreRequest
	var at string
	c := &cobra.Command{
		Use:   "restore PATH",
		Short: "Put back a kept version of a file (the newest, or the newest not after --at)",
		Args:  args("PATH"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			req.Path = argv[0]
			if req.Folder == "" {
				abs, err := filepath.Abs(argv[0])
				if err != nil {
					return err
				}
				req.Path = abs
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return usageErrorf("--at %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", at)
				}
				req.At = t.UTC().Format(time.RFC3339Nano)
			}
			return a.withFolders(cmd.Context(), true, "folder restore", func(f api.Folders) error {
				v, err := f.FolderRestore(cmd.Context(), req)
				if err != nil {
					return err
				}
				return a.print(v, func(w io.Writer) {
					fmt.Fprintf(w, "restored %s as of %s (%d bytes)\n", v.Path, v.Time, v.Size)
				})
			})
		},
	}
	c.Flags().StringVar(&req.Folder, "folder", "", "folder ID, when PATH is relative to its root")
	c.Flags().StringVar(&at, "at", "", "restore the newest version not after this RFC 3339 time")
	return c
}

type conflictList struct {
	Conflicts []api.FolderConflict `json:"conflicts"`
}

func (a *app) conflictsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "conflicts",
		Short: "List conflict copies in the synced folders",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withFolders(cmd.Context(), true, "conflicts", func(f api.Folders) error {
				cs, err := f.Conflicts(cmd.Context())
				if err != nil {
					return err
				}
				if cs == nil {
					cs = []api.FolderConflict{}
				}
				return a.print(conflictList{Conflicts: cs}, func(w io.Writer) {
					for _, c := range cs {
						fmt.Fprintln(w, c.Abs)
					}
				})
			})
		},
	}
}
