package api

import (
	"bytes"
	"fmt"

	"rsc.io/qr"
)

// MaxQRText bounds the text of GET /api/v1/qr: a QR code at the lowest
// error correction holds at most 2,953 bytes, and invite codes and share
// links are far shorter.
const MaxQRText = 2048

// qrQuiet is the blank margin around the code, in modules, that scanners
// need (the standard asks for 4).
const qrQuiet = 4

// QRSVG renders text as a QR code (error correction L, like the CLI's
// terminal code) in SVG: black modules on white, one unit per module, no
// script and no text of the input in the document. Empty or over-long
// text is ErrInvalid.
func QRSVG(text string) ([]byte, error) {
	if text == "" {
		return nil, Errorf(ErrInvalid, `missing "text" parameter`)
	}
	if len(text) > MaxQRText {
		return nil, Errorf(ErrInvalid, "text of %d bytes is too long for a QR code: at most %d", len(text), MaxQRText)
	}
	c, err := qr.Encode(text, qr.L)
	if err != nil {
		return nil, Errorf(ErrInvalid, "qr: encode: %w", err)
	}
	n := c.Size + 2*qrQuiet
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges">`, n, n, n*4, n*4)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := range c.Size {
		for x := 0; x < c.Size; {
			if !c.Black(x, y) {
				x++
				continue
			}
			// One rectangle per horizontal run keeps the document small.
			run := 1
			for x+run < c.Size && c.Black(x+run, y) {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x+qrQuiet, y+qrQuiet, run, run)
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return b.Bytes(), nil
}
