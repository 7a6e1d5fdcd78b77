package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pcnode/pcnode/node/api"
)

// The dashboard tests drive headless Chromium (scripts/install-browser.sh)
// against running daemons. Each step saves a screenshot in the test's
// artifact directory (go test -artifacts keeps them; see
// docs/DASHBOARD.md).

// uiWait bounds one step in the browser: a page showing what the daemon
// knows, which it polls every 2 s. Generous for 2 loaded cores.
const uiWait = 90 * time.Second

// chromiumPath finds Chromium. Without one the test skips, except in CI
// (CI=true), where a missing browser is a broken setup and fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PCNODE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must install it (scripts/install-browser.sh)")
	}
	t.Skip("chromium not found: run scripts/install-browser.sh")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile that does not
// reach for the network on its own, and returns the context of its first
// tab. It is stopped when the test ends.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 1000),
		// Without these Chromium fetches updates, safe-browsing lists,
		// field trials and more from the internet.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// Names never resolve: the tests use loopback IP literals only.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelA()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	return ctx
}

// newTab opens another tab in the browser of ctx.
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return tab
}

// screenshot saves the whole page as <name>.png in the test's artifact
// directory.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(buf))
}

// eval evaluates a JavaScript expression in tab.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript expression until it is true, and fails with a
// screenshot when it is not within uiWait.
func waitJS(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(uiWait)
	for {
		ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			screenshot(t, tab, "timeout")
			msg, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: not within %v (last error %v); page:\n%s", what, uiWait, err, msg)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

func click(t *testing.T, tab context.Context, css string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(css))); err != nil {
		t.Fatalf("click %s: %v", css, err)
	}
}

func typeInto(t *testing.T, tab context.Context, css, text string) {
	t.Helper()
	clear := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ''`, css))
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(css)), clear, chromedp.SendKeys(chromedp.CSS(css), text)); err != nil {
		t.Fatalf("type into %s: %v", css, err)
	}
}

func (p *proc) token() string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.home, api.TokenFile))
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// signInUI opens the dashboard of p in tab and signs in with p's token.
func signInUI(t *testing.T, tab context.Context, p *proc, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	typeInto(t, tab, "#token", p.token())
	click(t, tab, "#signin-btn")
	waitJS(t, tab, "signed in to "+p.name, `!document.getElementById('app').hidden && document.getElementById('status').children.length > 0`)
}

// rowText is the text of the table row matching css, or "" when none.
func rowText(t *testing.T, tab context.Context, css string) string {
	t.Helper()
	return eval[string](t, tab, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ''}).innerText`, css))
}

// TestDashboardBrowser walks the dashboard in a real browser against two
// daemons of one cloud: sign in, devices, a folder reaching "in sync", a
// conflict resolved and a version restored, a share created, copied and
// revoked, a device invited, and the refusals of forged requests.
func TestDashboardBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons and Chromium")
	}
	exe := chromiumPath(t)
	a := newProc(t, "a")
	b := newDevice(t, "b")
	a.start()
	b.start()
	var inv api.InviteResult
	a.mustJSON(&inv, "invite", "--ttl", "5m")
	b.must("join", inv.Code)
	a.waitDevices("b online", connected("b"))
	aURL, bURL := a.status().API, b.status().API

	ctx := newBrowser(t, exe)
	tabA := newTab(t, ctx)
	// Let the page use the clipboard, as a person's click would, and
	// treat the headless page as focused (the clipboard needs both).
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm},
			Setting:    browser.PermissionSettingGranted,
			Origin:     aURL,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	if _, err := chromedp.Call(tabA, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}

	if !t.Run("sign in", func(t *testing.T) {
		if err := chromedp.Do(tabA, chromedp.Navigate(aURL+"/"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
			t.Fatal(err)
		}
		typeInto(t, tabA, "#token", strings.Repeat("0", 64))
		click(t, tabA, "#signin-btn")
		waitJS(t, tabA, "wrong token refused", `document.getElementById('signin-error').textContent.includes('wrong API token')`)
		screenshot(t, tabA, "signin-refused")
		signInUI(t, tabA, a, aURL)
		// The session survives a reload: the cookie, not the page, holds it.
		if err := chromedp.Do(tabA, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitJS(t, tabA, "still signed in after reload", `!document.getElementById('app').hidden`)
		if got := eval[string](t, tabA, `document.cookie`); got != "" {
			t.Errorf("the session cookie is readable by scripts: %q", got)
		}
		waitJS(t, tabA, "sign-in in the recent logs", `document.getElementById('logs').textContent.includes('dashboard sign-in')`)
		screenshot(t, tabA, "signed-in")
	}) {
		return
	}

	t.Run("devices", func(t *testing.T) {
		row := `#devices tr[data-device="b"]`
		waitJS(t, tabA, "b online and direct", fmt.Sprintf(`(() => { const r = document.querySelector(%q); return !!r && r.cells[2].textContent === 'online' && r.cells[4].textContent.startsWith('direct'); })()`, row))
		txt := rowText(t, tabA, row)
		var self api.Device
		for _, d := range a.devices() {
			if d.Name == "b" {
				self = d
			}
		}
		for _, src := range self.Sources {
			if !strings.Contains(txt, src) {
				t.Errorf("row of b %q does not say it was found via %s", txt, src)
			}
		}
		if n := eval[int](t, tabA, `[...document.querySelectorAll('#devices tr.device')].filter(r => r.cells[2].textContent === 'this device').length`); n != 1 {
			t.Errorf("%d rows say this device, want 1", n)
		}
		screenshot(t, tabA, "devices")
	})

	// A folder on a, joined by b; b's dashboard shows it reach "in sync".
	ra := filepath.Join(t.TempDir(), "docs-a")
	rb := filepath.Join(t.TempDir(), "docs-b")
	t0 := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	writeAt(t, ra, "notes.txt", "the original notes", t0)
	writeAt(t, ra, "sub/b.txt", "bee", t0)
	writeRandom(t, ra, 3<<20, 7)
	var fi api.FolderInfo
	a.mustJSON(&fi, "folder", "add", ra)
	tabB := newTab(t, ctx)
	t.Run("folder in sync", func(t *testing.T) {
		signInUI(t, tabB, b, bURL)
		b.must("folder", "join", fi.ID, rb)
		row := fmt.Sprintf(`#folders tr[data-folder=%q]`, fi.ID)
		waitJS(t, tabB, "folder row on b", fmt.Sprintf(`!!document.querySelector(%q)`, row))
		screenshot(t, tabB, "folder-joined")
		waitJS(t, tabB, "folder in sync with 3 files", fmt.Sprintf(`(() => { const r = document.querySelector(%q); return !!r && r.cells[2].textContent === 'in sync' && r.cells[4].textContent.startsWith('3 files') && r.cells[3].textContent.includes('100%%'); })()`, row))
		waitSame(t, nil, ra, rb)
		screenshot(t, tabB, "folder-in-sync")
	})

	t.Run("conflict and version", func(t *testing.T) {
		// A conflict copy, as a clash of edits leaves one; a keeps it.
		cp := "notes.sync-conflict-20260203-040506-ABCDEFG.txt"
		writeAt(t, ra, cp, "the notes from the other device", t0.Add(time.Hour))
		row := fmt.Sprintf(`#conflicts tr[data-path=%q]`, cp)
		waitJS(t, tabA, "conflict listed on a", fmt.Sprintf(`!!document.querySelector(%q)`, row))
		screenshot(t, tabA, "conflict")
		click(t, tabA, row+" button.keep-copy")
		waitJS(t, tabA, "conflict gone", fmt.Sprintf(`!document.querySelector(%q) && document.getElementById('message').textContent.includes('replaced')`, row))
		if got, err := os.ReadFile(filepath.Join(ra, "notes.txt")); err != nil || string(got) != "the notes from the other device" {
			t.Fatalf("notes.txt on a after keep-copy: %q, %v", got, err)
		}
		waitSame(t, nil, ra, rb)

		// A second copy, this time dropped in favour of the original.
		cp2 := "sub/b.sync-conflict-20260203-040507-ABCDEFG.txt"
		writeAt(t, ra, cp2, "another bee", t0.Add(time.Hour))
		row2 := fmt.Sprintf(`#conflicts tr[data-path=%q]`, cp2)
		waitJS(t, tabA, "second conflict listed on a", fmt.Sprintf(`!!document.querySelector(%q)`, row2))
		click(t, tabA, row2+" button.keep-original")
		waitJS(t, tabA, "second conflict gone", fmt.Sprintf(`!document.querySelector(%q) && document.getElementById('message').textContent.includes('deleted')`, row2))
		if _, err := os.Stat(filepath.Join(ra, cp2)); !os.IsNotExist(err) {
			t.Fatalf("conflict copy still there after keep-original: %v", err)
		}
		if got, err := os.ReadFile(filepath.Join(ra, "sub/b.txt")); err != nil || string(got) != "bee" {
			t.Fatalf("sub/b.txt after keep-original: %q, %v", got, err)
		}
		waitSame(t, nil, ra, rb)

		// b kept the replaced notes as a version; restore it from b's page.
		if err := chromedp.Do(tabB, chromedp.SetValue(chromedp.ID("versions-folder"), fi.ID)); err != nil {
			t.Fatal(err)
		}
		typeInto(t, tabB, "#versions-path", "notes.txt")
		click(t, tabB, "#versions-btn")
		waitJS(t, tabB, "a version of notes.txt", `document.querySelectorAll('#versions tr.version').length >= 1`)
		screenshot(t, tabB, "versions")
		click(t, tabB, "#versions tr.version button.restore")
		waitJS(t, tabB, "restored", `document.getElementById('message').textContent.startsWith('Restored notes.txt')`)
		deadline := time.Now().Add(uiWait)
		for {
			ga, _ := os.ReadFile(filepath.Join(ra, "notes.txt"))
			gb, _ := os.ReadFile(filepath.Join(rb, "notes.txt"))
			if string(ga) == "the original notes" && string(gb) == "the original notes" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after restore: a has %q, b has %q", ga, gb)
			}
			time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
		}
	})

	t.Run("share", func(t *testing.T) {
		item := filepath.Join(t.TempDir(), "report.txt")
		if err := os.WriteFile(item, []byte("quarterly report"), 0o644); err != nil {
			t.Fatal(err)
		}
		typeInto(t, tabA, "#share-path", item)
		typeInto(t, tabA, "#share-expires", "7d")
		click(t, tabA, "#share-btn")
		waitJS(t, tabA, "share created", `document.querySelectorAll('#shares tr.share[data-state="active"]').length === 1`)
		id := eval[string](t, tabA, `document.querySelector('#shares tr.share').dataset.share`)
		cl, err := api.DialHome(a.home)
		if err != nil {
			t.Fatal(err)
		}
		shares, err := cl.Shares(t.Context())
		if err != nil || len(shares) != 1 || shares[0].ID != id {
			t.Fatalf("shares of a: %+v, %v; page shows %s", shares, err, id)
		}
		link := shares[0].Link

		click(t, tabA, `#shares tr.share button.copy`)
		waitJS(t, tabA, "link copied", `document.getElementById('message').textContent.startsWith('Link copied')`)
		got, err := chromedp.Run(tabA, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil || got != link {
			t.Errorf("clipboard holds %q (%v), want the link %q", got, err, link)
		}
		click(t, tabA, `#shares tr.share button.qr`)
		waitJS(t, tabA, "share QR shown", `(() => { const i = document.getElementById('share-qr'); return !document.getElementById('share-qr-box').hidden && i.complete && i.naturalWidth > 100; })()`)
		screenshot(t, tabA, "share-created")

		// The link works for someone outside the cloud until revoked.
		out := filepath.Join(t.TempDir(), "got.txt")
		friend := newProc(t, "friend")
		friend.start()
		friend.must("get", link, "-o", out)
		if b, err := os.ReadFile(out); err != nil || string(b) != "quarterly report" {
			t.Fatalf("friend got %q, %v", b, err)
		}
		waitJS(t, tabA, "download counted", `document.querySelector('#shares tr.share td.downloads').textContent !== '0'`)

		click(t, tabA, `#shares tr.share button.revoke`)
		waitJS(t, tabA, "revoke asks first", `document.querySelector('#shares tr.share button.revoke').textContent.includes('again')`)
		click(t, tabA, `#shares tr.share button.revoke`)
		waitJS(t, tabA, "share revoked", `(() => { const r = document.querySelector('#shares tr.share'); return !!r && r.dataset.state === 'revoked' && !r.querySelector('button.revoke'); })()`)
		shares, err = cl.Shares(t.Context())
		if err != nil || shares[0].State != "revoked" {
			t.Errorf("after revoke: %+v, %v", shares, err)
		}
		screenshot(t, tabA, "share-revoked")
	})

	t.Run("invite", func(t *testing.T) {
		click(t, tabA, "#invite-btn")
		waitJS(t, tabA, "invite shown", `(() => { const i = document.getElementById('invite-qr'); return !document.getElementById('invite-result').hidden && document.getElementById('invite-code').value.startsWith('pcnode1') && i.complete && i.naturalWidth > 100; })()`)
		code := eval[string](t, tabA, `document.getElementById('invite-code').value`)
		screenshot(t, tabA, "invite")
		// The code the page shows lets a new device join.
		c := newDevice(t, "c")
		var ci api.CloudInfo
		c.mustJSON(&ci, "join", code)
		if ci.Device != "c" || ci.ID == "" {
			t.Fatalf("join with the page's code: %+v", ci)
		}
		waitJS(t, tabA, "c listed", `!!document.querySelector('#devices tr[data-device="c"]')`)
		screenshot(t, tabA, "invited-device-listed")
	})

	t.Run("refusals", func(t *testing.T) {
		dashboardRefusals(t, ctx, a, aURL)
	})

	t.Run("sign out", func(t *testing.T) {
		click(t, tabA, "#signout")
		waitJS(t, tabA, "signed out", `!document.getElementById('signin-view').hidden && document.getElementById('app').hidden`)
		if err := chromedp.Do(tabA, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitJS(t, tabA, "still signed out after reload", `!document.getElementById('signin-view').hidden`)
		screenshot(t, tabA, "signed-out")
	})
}

// dashboardRefusals checks the daemon refuses what a session must not
// allow: no session (401), a foreign Host (403), a flood of 1,000
// concurrent clients (only 200/503 for authorised ones, 401/403 for the
// rest, and the daemon stays up), and a forged POST from another origin
// in the same browser, which carries the session cookie (403, nothing
// done).
func dashboardRefusals(t *testing.T, ctx context.Context, p *proc, url string) {
	cl, err := api.DialHome(p.home)
	if err != nil {
		t.Fatal(err)
	}
	before, err := cl.Cloud(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		host   string
		hdr    map[string]string
		want   int
	}{
		{name: "no session", method: "GET", path: "/api/v1/devices", want: 401},
		{name: "no session post", method: "POST", path: "/api/v1/devices/invite", want: 401},
		{name: "foreign host", method: "GET", path: "/", host: "evil.example", want: 403},
		{name: "foreign host with token", method: "GET", path: "/api/v1/status", host: "rebind.example:80", hdr: map[string]string{"Authorization": "Bearer " + p.token()}, want: 403},
		{name: "page", method: "GET", path: "/", want: 200},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, strings.NewReader(`{}`))
		if tc.host != "" {
			req.Host = tc.host
		}
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}

	// A flood of clients, authorised and not, at once: the daemon answers
	// every one with an allowed code and stays up (429: over the per-client
	// limit, all from 127.0.0.1 here; 503: over the global one).
	const flood = 1000
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	fc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	var mu sync.Mutex
	got := map[string]map[int]int{}
	var wg sync.WaitGroup
	tok := p.token()
	for i := range flood {
		kind := []string{"token", "token", "none", "rebind"}[i%4]
		wg.Go(func() {
			req, _ := http.NewRequest("GET", url+"/api/v1/status", nil)
			switch kind {
			case "token":
				req.Header.Set("Authorization", "Bearer "+tok)
			case "rebind":
				req.Host = "rebind.example"
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			code := -1
			if resp, err := fc.Do(req); err == nil {
				code = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			if got[kind] == nil {
				got[kind] = map[int]int{}
			}
			got[kind][code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("flood of %d: %v", flood, got)
	for kind, allowed := range map[string][]int{"token": {200, 429, 503}, "none": {401}, "rebind": {403}} {
		for code, n := range got[kind] {
			if !slices.Contains(allowed, code) {
				t.Errorf("flood: %d × %d for %s requests, want only %v", n, code, kind, allowed)
			}
		}
	}
	if got["token"][200] == 0 {
		t.Errorf("flood: no authorised request served: %v", got["token"])
	}
	if _, err := cl.Status(t.Context()); err != nil {
		t.Fatalf("daemon after the flood: %v\n%s", err, p.logs())
	}

	// A page of another origin (another port on the same host, so the
	// browser does send the SameSite=Strict cookie) posts a form and
	// fires a fetch at the daemon.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body>
<form id="f" method="POST" action="%[1]s/api/v1/devices/invite" enctype="text/plain"><input name='{"ttl":"5m","x":"' value='"}'></form>
<script>
fetch(%[1]q + '/api/v1/devices/invite', {method: 'POST', credentials: 'include', mode: 'no-cors', body: '{}'})
  .finally(() => { document.title = 'fetched'; document.getElementById('f').submit(); });
</script></body>`, url)
	}))
	defer evil.Close()
	tab := newTab(t, ctx)
	if err := chromedp.Do(tab, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "forged form answered", `location.href.includes('/api/v1/devices/invite') && document.body.innerText.includes('cross-site request refused')`)
	screenshot(t, tab, "cross-site-refused")
	after, err := cl.Cloud(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.PendingInvites != before.PendingInvites {
		t.Errorf("forged requests made invites: pending %d → %d", before.PendingInvites, after.PendingInvites)
	}
	var e api.Error
	body := eval[string](t, tab, `document.body.innerText`)
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != 403 {
		t.Errorf("forged form got %q (%v), want a 403 error", body, err)
	}
}
