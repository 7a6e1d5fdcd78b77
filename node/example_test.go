package node_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

// A node opened offline, as the CLI does when no daemon runs: add a file
// and read it back by CID.
func Example() {
	ctx := context.Background()
	home, err := os.MkdirTemp("", "pcnode-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(home)

	if err := node.Init(home, node.InitOptions{Profile: node.ProfileLocal}); err != nil {
		panic(err)
	}
	n, err := node.New(node.Config{Home: home, Offline: true})
	if err != nil {
		panic(err)
	}
	if err := n.Start(ctx); err != nil {
		panic(err)
	}
	defer n.Close()

	f := filepath.Join(home, "hello.txt")
	if err := os.WriteFile(f, []byte("hello, pcnode\n"), 0o644); err != nil {
		panic(err)
	}
	res, err := n.Add(ctx, api.AddRequest{Path: f}, nil)
	if err != nil {
		panic(err)
	}
	c, err := api.ParseCID(res.CID)
	if err != nil {
		panic(err)
	}
	r, err := n.Cat(ctx, c)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	io.Copy(os.Stdout, r)
	fmt.Println(res.Size, "bytes")
	// Output:
	// hello, pcnode
	// 14 bytes
}
