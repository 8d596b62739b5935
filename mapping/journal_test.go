package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// crashCopy copies the files of dir to a new directory, as a kill -9 at
// this instant leaves them: what write(2) returned for is in them,
// nothing else happens (no Close, no last state file). It reports
// errors with t.Errorf (it may run outside the test's goroutine) and
// returns "" then.
func crashCopy(t *testing.T, dir string) string {
	to := t.TempDir()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("crash copy: %v", err)
		return ""
	}
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile (a compaction)
			}
			t.Errorf("crash copy: %v", err)
			return ""
		}
		if err := os.WriteFile(filepath.Join(to, de.Name()), b, 0o600); err != nil {
			t.Errorf("crash copy: %v", err)
			return ""
		}
	}
	return to
}

// shmDir returns a new directory on tmpfs (/dev/shm) when there is one,
// removed at the end of the test, else t.TempDir(): fsync is free on
// tmpfs (as on the router's /var), which fuzzing many starts needs.
func shmDir(t testing.TB) string {
	if d, err := os.MkdirTemp("/dev/shm", "pcpgw-mapping-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// crashStart starts a core with cfg (a fresh kernel) on dir as a restart
// finds it, runs it, and stops it at the end of the test.
func crashStart(t *testing.T, dir string, cfg Config) (*Core, *firewalltest.Fake) {
	t.Helper()
	cfg.StateDir = dir
	return newCore(t, cfg)
}

// crashLoad returns what a core with cfg loads from a crash copy of dir,
// after checking that the kernel was made to hold exactly that.
func crashLoad(t *testing.T, dir string, cfg Config) []Mapping {
	t.Helper()
	fw := firewalltest.New()
	cfg.Firewall, cfg.StateDir = fw, crashCopy(t, dir)
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms := c.Find(Selector{})
	if k, n := len(fw.Forwards())+len(fw.Pinholes()), len(ms); k != n {
		t.Errorf("after the restart the kernel holds %d entries for %d mappings", k, n)
	}
	return ms
}

// durableView is what a restart must keep of a mapping.
type durableView struct {
	Origin      Origin
	Proto       Proto
	Internal    netip.AddrPort
	Port        uint16 // WAN port, or the pinhole's
	Description string
	Nonce       Nonce
	Permanent   bool
}

func viewOf(ms []Mapping) []durableView {
	var out []durableView
	for _, m := range ms {
		p := m.WANPort
		if m.IsPinhole() {
			p = m.Internal.Port()
		}
		out = append(out, durableView{m.Origin, m.Proto, m.Internal, p, m.Description, m.Nonce, m.Expires.IsZero()})
	}
	slices.SortFunc(out, func(a, b durableView) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

// TestCrashKeepsAnswered: after each answered request, a crash (the
// state directory as it is, no Close) and a restart give back exactly
// what was answered: new mappings, replaced ones, renewed lease ends (to
// the second above), new descriptions and nonces, deletions, pinholes.
func TestCrashKeepsAnswered(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub, Pinholes: true}
	c, _ := crashStart(t, dir, cfg)
	ctx := context.Background()
	pcpReq := req(OriginPCP, host, UDP, 7000, 0, time.Hour)
	pcpReq.Nonce = Nonce{1}
	igd := req(OriginUPnP, host, TCP, 8080, 18080, 0)
	igd.Description = "a"
	steps := []struct {
		name string
		do   func() (Mapping, error)
	}{
		{"igd", func() (Mapping, error) { return c.Map(ctx, igd) }},
		{"natpmp", func() (Mapping, error) { return c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)) }},
		{"pcp", func() (Mapping, error) { return c.Map(ctx, pcpReq) }},
		{"igd replaced", func() (Mapping, error) {
			r := req(OriginUPnP, host, TCP, 8081, 18080, 0)
			r.Description = "b"
			return c.Map(ctx, r)
		}},
		{"natpmp renewed longer", func() (Mapping, error) { return c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, 3*time.Hour)) }},
		{"pcp new nonce", func() (Mapping, error) { r := pcpReq; r.Nonce = Nonce{2}; return c.Map(ctx, r) }},
		{"pinhole", func() (Mapping, error) {
			return c.Map(ctx, Request{Origin: OriginPCP, Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, 443), Lifetime: time.Hour})
		}},
		{"natpmp deleted", func() (Mapping, error) {
			_, err := c.Delete(ctx, Selector{Client: host, Origin: OriginNATPMP, Proto: UDP, Internal: netip.AddrPortFrom(host, 9000)})
			return Mapping{}, err
		}},
		{"renewal made permanent", func() (Mapping, error) { r := pcpReq; r.Nonce, r.Lifetime = Nonce{2}, 0; return c.Map(ctx, r) }},
	}
	for _, st := range steps {
		m, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want := c.Find(Selector{})
		got := crashLoad(t, dir, cfg)
		if d := cmp.Diff(viewOf(want), viewOf(got), netipCmp); d != "" {
			t.Errorf("%s: after a crash (-answered +restored):\n%s", st.name, d)
		}
		for _, g := range got {
			if g.ID == m.ID && m.ID != 0 && !m.Expires.IsZero() &&
				(g.Expires.Before(m.Expires) || g.Expires.After(m.Expires.Add(time.Second))) {
				t.Errorf("%s: lease restored to %v, answered %v", st.name, g.Expires, m.Expires)
			}
		}
	}
}

// TestNonceSavedBeforeRequest: the nonce of an upstream request is the
// core's, on disk with the mapping before the request leaves. A crash
// while the upstream has the request (the LAN client not answered)
// undoes the mapping at restart: not in the table, not in the kernel,
// deleted at the upstream with that nonce. Its port is kept from new
// mappings until the upstream answers the delete (retried meanwhile), and
// once answered a later restart does not ask again.
func TestNonceSavedBeforeRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		up := newFakeUp()
		up.block = make(chan struct{})
		var mu sync.Mutex
		var image string
		var sent upstream.MapRequest
		up.onMap = func(r upstream.MapRequest) {
			mu.Lock()
			defer mu.Unlock()
			if image == "" {
				image, sent = crashCopy(t, dir), r
			}
		}
		cfg := Config{Mode: ModeNAT444, WANAddr: wanCGN, UpstreamTimeout: time.Hour}
		c, _ := newCore(t, Config{Mode: cfg.Mode, WANAddr: cfg.WANAddr, UpstreamTimeout: cfg.UpstreamTimeout, Upstream: up, StateDir: dir})
		go c.Map(context.Background(), req(OriginNATPMP, host, TCP, 8080, 18080, time.Hour))
		synctest.Wait() // the request is at the upstream, the client waits
		mu.Lock()
		img, r := image, sent
		mu.Unlock()
		if img == "" {
			t.Fatal("no request reached the upstream")
		}
		if r.Nonce == (pcp.Nonce{}) {
			t.Fatal("the request left without a nonce of the core's")
		}

		up2 := newFakeUp()
		up2.deleteErr = errors.New("no answer")
		cfg2 := cfg
		cfg2.Upstream = up2
		c2, fw2 := crashStart(t, img, cfg2)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := c2.Find(Selector{}); len(got) != 0 || len(fw2.Forwards()) != 0 {
			t.Fatalf("an unanswered mapping came back: table %+v, kernel %v", got, fw2.Forwards())
		}
		_, dels := up2.counts()
		if dels != 1 || up2.deletes[0].Nonce != r.Nonce || up2.deletes[0].Internal != r.Internal || up2.deletes[0].Lifetime != 0 {
			t.Fatalf("upstream deletes %+v, want one for %v with nonce %x", up2.deletes, r.Internal, r.Nonce)
		}
		// Unanswered: its port is not given to another mapping, and the
		// delete is asked again.
		m, err := c2.Map(context.Background(), req(OriginNATPMP, other, TCP, 8080, 18080, time.Hour))
		if err != nil || m.WANPort == 18080 {
			t.Fatalf("a new mapping while 18080 is being undone: %+v %v", m, err)
		}
		up2.mu.Lock()
		up2.deleteErr = &upstream.Error{Kind: upstream.KindPCP, Op: "delete", Code: pcp.NoResources}
		up2.mu.Unlock()
		time.Sleep(retryAfterTimeout + time.Second)
		synctest.Wait()
		if _, dels := up2.counts(); dels != 2 {
			t.Fatalf("%d upstream deletes, want the retry", dels)
		}
		if m, err := c2.Map(context.Background(), req(OriginNATPMP, other, TCP, 8081, 18080, time.Hour)); err != nil || m.WANPort != 18080 {
			t.Fatalf("18080 not free once undone: %+v %v", m, err)
		}
		// Answered: recorded, not asked again after another crash.
		img3 := crashCopy(t, img)
		up3 := newFakeUp()
		cfg3 := cfg
		cfg3.Upstream = up3
		crashStart(t, img3, cfg3)
		time.Sleep(time.Second)
		synctest.Wait()
		if _, dels := up3.counts(); dels != 0 {
			t.Fatalf("undone again after another restart: %+v", up3.deletes)
		}
		close(up.block)
	})
}

// TestKernelFailureNotRestored: a new mapping whose kernel batch fails
// is refused; its record may already be in the journal (another
// request's group took it), but once the refusal is sent a restart does
// not bring it back, nor does a crash during the batch of one that was
// to go upstream (not answered yet: undone).
func TestKernelFailureNotRestored(t *testing.T) {
	for _, mode := range []Mode{ModeLocal, ModeNAT444} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Mode: mode, WANAddr: wanPub}
			if mode == ModeNAT444 {
				cfg.WANAddr, cfg.Upstream = wanCGN, newFakeUp()
			}
			c, fw := crashStart(t, dir, cfg)
			ctx := context.Background()
			if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, 0)); err != nil {
				t.Fatal(err)
			}
			var image string
			var inJournal bool
			fw.SetErr(func(op firewalltest.Op) error {
				if op != firewalltest.OpApply || image != "" {
					return nil
				}
				if err := c.flushJournal(); err != nil {
					t.Errorf("flush: %v", err)
				}
				image = crashCopy(t, dir)
				b, _ := os.ReadFile(journalName(dir, c.jr.gen))
				inJournal = bytes.Contains(b, []byte(`"192.0.2.100:9000"`))
				return errors.New("netlink: injected")
			})
			if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)); CodeOf(err) != CodeNoResources {
				t.Fatalf("Map with a failing kernel: %v", err)
			}
			fw.SetErr(nil)
			if !inJournal {
				t.Fatal("the refused mapping's record was not in the journal: the test proves nothing")
			}
			images := map[string]string{"after the refusal": dir}
			if mode == ModeNAT444 {
				images["during the batch"] = image
			}
			for name, d := range images {
				cfg := cfg
				if mode == ModeNAT444 {
					cfg.Upstream = newFakeUp()
				}
				got := crashLoad(t, d, cfg)
				if len(got) != 1 || got[0].WANPort != 18080 {
					t.Errorf("crash %s: restored %+v, want only 18080", name, got)
				}
			}
		})
	}
}

// TestTornJournal: a journal cut anywhere (a write interrupted by the
// kill, a power loss) or corrupt loads the records before the cut or the
// corruption and ignores the rest; the start writes a clean state again.
func TestTornJournal(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub}
	c, _ := crashStart(t, dir, cfg)
	ctx := context.Background()
	for i := range 6 {
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, uint16(9000+i), 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, Selector{Client: host, Proto: UDP, Internal: netip.AddrPortFrom(host, 9001)}); err != nil {
		t.Fatal(err)
	}
	image := crashCopy(t, dir)
	jn := journalName(image, c.jr.gen)
	full, err := os.ReadFile(jn)
	if err != nil || bytes.Count(full, []byte("\n")) < 7 {
		t.Fatalf("journal %q: %v", full, err)
	}
	ports := func(ms []Mapping) []uint16 {
		var ps []uint16
		for _, m := range ms {
			ps = append(ps, m.WANPort)
		}
		slices.Sort(ps)
		return ps
	}
	// Cuts at and around every record's end, and every 11th byte.
	wants := map[int][]uint16{} // by the length of the whole records kept
	for cut := 0; cut <= len(full); cut++ {
		end := bytes.IndexByte(full[cut:], '\n') // to this record's end
		if cut%11 != 0 && end > 2 && bytes.LastIndexByte(full[:cut], '\n') < cut-3 {
			continue
		}
		whole := bytes.LastIndexByte(full[:cut], '\n') + 1
		if _, ok := wants[whole]; !ok {
			os.WriteFile(jn, full[:whole], 0o600)
			wants[whole] = ports(crashLoad(t, image, cfg))
		}
		if err := os.WriteFile(jn, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		if got := ports(crashLoad(t, image, cfg)); !slices.Equal(got, wants[whole]) {
			t.Fatalf("cut at %d: restored %v, want %v (the whole records before the cut)", cut, got, wants[whole])
		}
	}
	// Corrupt records: a flipped byte in the third, garbage at the end.
	lines := bytes.SplitAfter(full, []byte("\n"))
	bad := bytes.Clone(full)
	bad[len(lines[0])+len(lines[1])+20] ^= 0x20
	os.WriteFile(jn, bad, 0o600)
	got := ports(crashLoad(t, image, cfg))
	os.WriteFile(jn, bytes.Join(lines[:2], nil), 0o600)
	if want := ports(crashLoad(t, image, cfg)); !slices.Equal(got, want) {
		t.Errorf("a corrupt third record: restored %v, want %v", got, want)
	}
	os.WriteFile(jn, append(bytes.Clone(full), "0badc0de {\"op\":\"del\",\"id\":1}\n\x00\x00"...), 0o600)
	if got := ports(crashLoad(t, image, cfg)); !slices.Equal(got, []uint16{9000, 9002, 9003, 9004, 9005}) {
		t.Errorf("garbage after the records: restored %v", got)
	}
}

// TestCompactionCrash: the journal is compacted into the state file as it
// grows; a crash at any step of a compaction (new journal open, state file
// renamed) loses nothing answered and brings back nothing deleted.
func TestCompactionCrash(t *testing.T) {
	// Restored after the core's own cleanup (registered later, run first).
	n0 := compactMin
	t.Cleanup(func() { compactMin, compactHook = n0, nil })
	compactMin = 2 << 10
	dir := t.TempDir()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub, Quota: 1000}
	type image struct {
		dir               string
		mustHave, mustNot []uint16
	}
	var mu sync.Mutex
	var images []image
	var done bool
	have, gone := map[uint16]bool{}, map[uint16]bool{}
	compactHook = func(string) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return // the checks' own starts
		}
		img := image{dir: crashCopy(t, dir)}
		for p := range have {
			img.mustHave = append(img.mustHave, p)
		}
		for p := range gone {
			img.mustNot = append(img.mustNot, p)
		}
		images = append(images, img)
	}
	c, _ := crashStart(t, dir, cfg)
	ctx := context.Background()
	for i := range 300 {
		p := uint16(10000 + i)
		if _, err := c.Map(ctx, req(OriginNATPMP, host, TCP, p, 0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		have[p] = true
		if i%3 == 0 {
			delete(have, p) // being deleted: either way until answered
		}
		n := len(images)
		mu.Unlock()
		if i%3 == 0 {
			if _, err := c.Delete(ctx, Selector{Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, p)}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			gone[p] = true
			mu.Unlock()
		}
		if i%40 == 39 {
			if err := c.compact(); err != nil { // besides the state writer's own
				t.Fatal(err)
			}
		}
		if n >= 6 && i > 100 {
			break
		}
	}
	mu.Lock()
	imgs := slices.Clone(images)
	done = true
	mu.Unlock()
	if len(imgs) < 6 {
		t.Fatalf("%d compaction steps seen, want at least 6", len(imgs))
	}
	imgs = append(imgs, image{dir: dir})
	for p := range have {
		imgs[len(imgs)-1].mustHave = append(imgs[len(imgs)-1].mustHave, p)
	}
	for p := range gone {
		imgs[len(imgs)-1].mustNot = append(imgs[len(imgs)-1].mustNot, p)
	}
	for i, img := range imgs {
		got := map[uint16]bool{}
		for _, m := range crashLoad(t, img.dir, cfg) {
			got[m.WANPort] = true
		}
		for _, p := range img.mustHave {
			if !got[p] {
				t.Errorf("crash image %d: answered mapping %d lost", i, p)
			}
		}
		for _, p := range img.mustNot {
			if got[p] {
				t.Errorf("crash image %d: deleted mapping %d back", i, p)
			}
		}
	}
}

// TestStateUpgrade: a state file from before the journal loads as
// before, and is written again with the journal it starts.
func TestStateUpgrade(t *testing.T) {
	dir := t.TempDir()
	st := `{"version":1,"epoch_start":"2026-01-01T00:00:00Z","mappings":[
	{"id":4,"origin":"upnp","client":"192.0.2.100","proto":"tcp","internal":"192.0.2.100:8080","wan_port":18080,"created":"2026-01-01T00:00:00Z","lifetime_s":0}]}`
	os.WriteFile(filepath.Join(dir, StateFile), []byte(st), 0o600)
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub}
	c, _ := crashStart(t, dir, cfg)
	if got := c.Find(Selector{}); len(got) != 1 || got[0].ID != 4 {
		t.Fatalf("loaded %+v", got)
	}
	if _, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	s := readState(t, filepath.Join(dir, StateFile))
	if s.Journal != 1 || len(s.Mappings) != 1 || !s.EpochStart.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("state file after the start: journal %d, %d mappings, epoch %v", s.Journal, len(s.Mappings), s.EpochStart)
	}
	if got := crashLoad(t, dir, cfg); len(got) != 2 {
		t.Errorf("after a crash: %+v", got)
	}
}

// TestJournalWriteFails: when the journal cannot be written, requests are
// answered with a failure (nothing unsaved is told a success); the state
// writer heals it by writing the whole state file, and answers are saved
// again.
func TestJournalWriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := Config{Mode: ModeLocal, WANAddr: wanPub}
		c, _ := crashStart(t, dir, cfg)
		ctx := context.Background()
		c.jr.wmu.Lock()
		c.jr.f.Close() // every write fails from now on
		c.jr.wmu.Unlock()
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, time.Hour)); CodeOf(err) != CodeNoResources {
			t.Fatalf("Map with a broken journal: %v, want CodeNoResources", err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 9001, 0, time.Hour)); err != nil {
			t.Fatalf("after the state writer's compaction: %v", err)
		}
		got := crashLoad(t, dir, cfg)
		if len(got) != 2 {
			t.Errorf("after a crash: %+v, want both (the first is in the state file)", got)
		}
	})
}

// TestGroupCommit: requests that come together share journal writes, and
// every one of them is durable when answered.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub, Quota: 10000}
	c, _ := crashStart(t, dir, cfg)
	c.fw = slowFirewall{}
	const n = 400
	w0 := c.jr.writes.Load()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Map(context.Background(), req(OriginNATPMP, host, UDP, uint16(10000+i), 0, time.Hour)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	writes := c.jr.writes.Load() - w0
	t.Logf("%d new mappings at once: %d journal writes", n, writes)
	if writes >= n {
		t.Errorf("%d journal writes for %d requests at once: no group commit", writes, n)
	}
	if got := crashLoad(t, dir, cfg); len(got) != n {
		t.Errorf("after a crash %d mappings, want %d", len(got), n)
	}
}

// slowFirewall takes a little time per batch (a real kernel's round
// trip), so that requests overlap.
type slowFirewall struct{ nopFirewall }

func (slowFirewall) Apply(context.Context, firewall.Change) error {
	time.Sleep(100 * time.Microsecond)
	return nil
}

// FuzzJournal: whatever a journal holds after a valid state file, a start
// does not panic, loads only valid mappings, makes the kernel hold
// exactly them, and a journal cut short loads a prefix of what the whole
// one does (the records are replayed in order, up to the first bad one).
func FuzzJournal(f *testing.F) {
	dir := f.TempDir()
	c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: firewalltest.New(), StateDir: dir, Pinholes: true})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, time.Hour))
	c.Map(ctx, req(OriginUPnP, host, TCP, 8080, 18080, 0))
	c.Map(ctx, Request{Origin: OriginPCP, Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, 443), Lifetime: time.Hour})
	c.Map(ctx, req(OriginNATPMP, host, UDP, 9000, 0, 2*time.Hour))
	c.Delete(ctx, Selector{Client: host, Proto: TCP})
	seed, err := os.ReadFile(journalName(dir, c.jr.gen))
	if err != nil || len(seed) == 0 {
		f.Fatalf("seed journal %q: %v", seed, err)
	}
	c.Close()
	f.Add(seed)
	f.Add([]byte(`0badc0de {"op":"put"}` + "\n"))
	f.Add(append(bytes.Clone(seed), seed[:len(seed)/2]...))
	base := `{"version":1,"journal":1,"mappings":[{"id":7,"origin":"natpmp","client":"192.0.2.100","proto":"tcp","internal":"192.0.2.100:7000","wan_port":7000,"created":"2026-01-01T00:00:00Z","lifetime_s":0}]}`
	f.Fuzz(func(t *testing.T, b []byte) {
		load := func(journal []byte) []Mapping {
			d := shmDir(t)
			os.WriteFile(filepath.Join(d, StateFile), []byte(base), 0o600)
			os.WriteFile(journalName(d, 1), journal, 0o600)
			fw := firewalltest.New()
			c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: fw, StateDir: d, Pinholes: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ms := c.Find(Selector{})
			seen := map[uint32]bool{}
			for _, m := range ms {
				if m.ID == 0 || m.ID > maxEntries || seen[m.ID] || !m.Internal.IsValid() || !m.Client.IsValid() ||
					(m.Proto != TCP && m.Proto != UDP) || m.Description != SanitizeDescription(m.Description) {
					t.Fatalf("invalid mapping loaded: %+v", m)
				}
				seen[m.ID] = true
			}
			if got := len(fw.Forwards()) + len(fw.Pinholes()); got != len(ms) {
				t.Fatalf("kernel holds %d entries for %d mappings", got, len(ms))
			}
			return ms
		}
		load(b)
		// The same lines with their checksums right: the records' JSON
		// itself fuzzed.
		var signed []byte
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(line) > 9 && line[8] == ' ' {
				line = line[9:] // a seed's record: its JSON
			}
			signed = fmt.Appendf(signed, "%08x %s\n", crc32.ChecksumIEEE(line), line)
		}
		load(signed)
		// Replay of a prefix: the records before the first bad one.
		var st stateFile
		json.Unmarshal([]byte(base), &st)
		r := newReplayer(&st)
		n, left, _ := replayJournal(b, r)
		if left > len(b) || left < 0 {
			t.Fatalf("replay left %d of %d bytes", left, len(b))
		}
		var st2 stateFile
		json.Unmarshal([]byte(base), &st2)
		r2 := newReplayer(&st2)
		if n2, left2, err := replayJournal(b[:len(b)-left], r2); n2 != n || left2 != 0 || err != nil {
			t.Fatalf("replaying the good prefix: %d records, %d left, %v; the whole gave %d", n2, left2, err, n)
		}
	})
}

// TestWantWraps: an entry keeps the low 32 bits of its journal group;
// the group is found again across the wrap of the low bits.
func TestWantWraps(t *testing.T) {
	c := &Core{jr: &journal{}}
	for _, tc := range []struct{ collected, want uint64 }{
		{5, 6}, {5, 3}, {1<<32 + 5, 1<<32 + 6}, {1<<32 + 5, 1<<32 + 1}, {1<<32 + 5, 1<<32 - 1}, {1<<32 - 1, 1 << 32}, {7<<32 + 2, 6<<32 + 9},
	} {
		c.jr.collected = tc.collected
		e := &entry{jwant: uint32(tc.want)}
		if got := c.wantLocked(e); got != tc.want {
			t.Errorf("collected %#x, group %#x: want %#x", tc.collected, tc.want, got)
		}
	}
}
