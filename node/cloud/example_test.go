package cloud_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/pcnode/pcnode/node/cloud"
)

// A laptop creates a cloud and invites a phone; the phone joins with the
// code. Both hosts listen on loopback only.
func Example() {
	ctx := context.Background()
	laptopKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	laptop, err := libp2p.New(libp2p.Identity(laptopKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		log.Fatal(err)
	}
	defer laptop.Close()
	phone, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		log.Fatal(err)
	}
	defer phone.Close()

	laptopDir, _ := os.MkdirTemp("", "laptop")
	defer os.RemoveAll(laptopDir)
	phoneDir, _ := os.MkdirTemp("", "phone")
	defer os.RemoveAll(phoneDir)

	// On the laptop: `pcnode init`, then `pcnode invite`.
	if _, err := cloud.Create(laptopDir, "laptop", laptopKey); err != nil {
		log.Fatal(err)
	}
	svc, err := cloud.New(cloud.Config{Host: laptop, Dir: laptopDir})
	if err != nil {
		log.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	_, code, err := svc.NewInvite(0, false) // 15 minutes, no admin
	if err != nil {
		log.Fatal(err)
	}
	// cloud.WriteQR(os.Stdout, code) would draw it for a phone's camera.

	// On the phone: `pcnode join CODE --name phone`.
	st, err := cloud.Join(ctx, phone, phoneDir, code, cloud.JoinOptions{Name: "phone"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same cloud:", st.ID() == svc.State().ID())
	fmt.Println("roster version:", st.Roster().Version)
	for _, m := range st.Roster().Live() {
		if m.Peer == phone.ID() {
			fmt.Println("phone is a member:", m.Name, m.Role)
		}
	}
	fmt.Println("phone is admin:", st.IsAdmin())
	// Output:
	// same cloud: true
	// roster version: 2
	// phone is a member: phone device
	// phone is admin: false
}
