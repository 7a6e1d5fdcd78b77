package blobstore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/pcnode/pcnode/blobstore"
)

// Import a file, pin it, read it back and export it.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "blobstore-example")
	defer os.RemoveAll(dir)

	s, err := blobstore.Open(ctx, blobstore.Config{Dir: filepath.Join(dir, "blocks")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	src := filepath.Join(dir, "hello.txt")
	_ = os.WriteFile(src, []byte("hello, world\n"), 0o644)
	res, err := s.Import(ctx, src, blobstore.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Pin(ctx, res.Root, true); err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Root, res.Name, res.Size)

	dag := blobstore.NewDAG(s, nil) // offline: no exchange
	r, err := blobstore.Cat(ctx, dag, res.Root)
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	fmt.Print(string(b))

	n, err := blobstore.Export(ctx, dag, res.Root, filepath.Join(dir, "copy.txt"), nil)
	fmt.Println(n, err)
	// Output:
	// bafkreiefh74toyvanxn7oiwe5pu53vtnr5r53lvjp5jbypwmednhzf3aea hello.txt 13
	// hello, world
	// 13 <nil>
}
