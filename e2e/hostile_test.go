package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// probe is markup a host controls, in a form that, unescaped, makes an element
// with id="xss-NAME" (HTML parses "<b/id=x>" as <b id="x">).
func probe(name string) string { return "<b/id=xss-" + name + ">" }

// hostileCrash is the lab's ACCESS_NULL capture as a hostile host would send it:
// markup in the release prefix, the hostname userdata, the task's comm, the
// faulting function (so the title), the module names and an ordinary line.
func hostileCrash(t *testing.T) [][]byte {
	t.Helper()
	data, err := os.ReadFile(sampleDir + "ACCESS_NULL.netconsole-ext")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"Comm: sh ", "Comm: "+probe("comm")+" ",
		"lkdtm_ACCESS_NULL", "lkdtm_"+probe("func"),
		"[lkdtm]", "["+probe("mod")+"]",
		"Modules linked in: lkdtm(OE)", "Modules linked in: "+probe("modlist")+"(OE)",
		"lkdtm: Performing direct entry", probe("line")+" Performing direct entry",
	)
	var out [][]byte
	for _, l := range strings.Split(strings.TrimSpace(r.Replace(string(data))), "\n") {
		out = append(out, []byte("6.1.0-"+probe("release")+","+l+"\n hostname="+probe("host")))
	}
	return out
}

func sendDatagrams(t *testing.T, to string, from *net.UDPAddr, ds [][]byte) {
	t.Helper()
	ua, _ := net.ResolveUDPAddr("udp", to)
	c, err := net.DialUDP("udp", from, ua)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, d := range ds {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
		if i%32 == 31 {
			time.Sleep(time.Millisecond)
		}
	}
}

// injected finds an element Chromium made of a probe (escaped, a probe stays text).
var injected = regexp.MustCompile(`<[a-z]+ id="xss-`)

// panicProbe is a plain console panic whose message (so the report's title) holds
// a probe.
const panicProbe = "[    1.000000] Kernel panic - not syncing: <b/id=xss-title> and more\n" +
	"[    1.000001] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0 #1\n[    1.000002] Call Trace:\n[    1.000003]  <TASK>\n" +
	"[    1.000004]  dump_stack_lvl+0x1/0x2\n[    1.000005]  panic+0x1/0x2\n" +
	"[    1.000006] ---[ end Kernel panic - not syncing: <b/id=xss-title> and more ]---\n"

// TestServeXSS sends a crash whose every host-controlled field holds markup and
// loads each page showing it in headless Chromium: the DOM Chromium built must
// hold no element the markup would make, while the probes' text is shown. The live
// tail gets a probe line while the host's page is open.
func TestServeXSS(t *testing.T) {
	browser := needChromium(t)
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"))
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 7, 1), Port: 6665}
	sendDatagrams(t, s.udp, from, hostileCrash(t))
	sendDatagrams(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 7, 2), Port: 6665}, [][]byte{[]byte(panicProbe)})
	waitFor(t, "the hostile reports", 10*time.Second, func() bool { return len(s.reports(t)) == 2 })
	reps := s.reports(t)
	rep, titled := reps[0], reps[1]
	if rep.Host != from.String() {
		rep, titled = titled, rep
	}
	if !strings.Contains(titled.Title, probe("title")) {
		t.Errorf("the title %q does not carry the probe: the test would not test it", titled.Title)
	}
	pages := map[string]string{
		"dashboard": "/",
		"report":    fmt.Sprintf("/reports/%d", rep.ID),
		"report2":   fmt.Sprintf("/reports/%d", titled.ID),
		"group":     "/groups/" + url.PathEscape(rep.Signature),
		"host":      "/hosts/" + url.PathEscape(rep.Host),
	}
	shown := ""
	for name, path := range pages {
		args := []string{"--dump-dom"}
		if name == "host" {
			// While the host page is open, the host sends a probe line: it reaches
			// the page through the live tail.
			stop := make(chan struct{})
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					sendDatagrams(t, s.udp, from, [][]byte{[]byte(fmt.Sprintf("6,%d,9000000,-;%s live line", 1000+i, probe("tail")))})
				}
			}()
			defer close(stop)
			args = append(args, "--timeout=3000") // dump the DOM after 3 s of live tail
		}
		dom := string(chromium(t, browser, append(args, "http://"+s.http+path)...))
		if m := injected.FindString(dom); m != "" {
			i := strings.Index(dom, m)
			t.Errorf("%s page (%s): host markup became an element: …%s…", name, path, dom[max(0, i-80):min(len(dom), i+80)])
		}
		shown += dom
	}
	for _, p := range []string{"comm", "func", "mod", "modlist", "line", "tail", "host", "release", "title"} {
		esc := "&lt;b/id=xss-" + p + "&gt;"
		if !strings.Contains(shown, esc) {
			t.Errorf("probe %q shown on no page (escaped as %s): the test does not reach that field", p, esc)
		}
	}
}

// TestServeTokensTLS: kcrash serve over HTTPS (--tls-cert/--tls-key) with a write
// token and a read token: the dashboard and API need the read token, the ingest
// endpoint the write token, in the Authorization header only.
func TestServeTokensTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	s := startServe(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"),
		"--token", "w-secret", "--read-token", "r-secret", "--tls-cert", cert, "--tls-key", key)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method, path, auth, body string) int {
		req, _ := http.NewRequest(method, "https://"+s.http+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	crash, _ := os.ReadFile(sampleDir + "ACCESS_NULL.netconsole")
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/", "", 401},
		{"GET", "/", "Bearer r-secret", 200},
		{"GET", "/api/reports", "Bearer nope", 401},
		{"GET", "/api/reports?token=r-secret", "", 401},
		{"GET", "/metrics", "", 401},
		{"POST", "/api/ingest?host=up", "Bearer r-secret", 401},
		{"POST", "/api/ingest?host=up&token=w-secret", "", 401},
		{"POST", "/api/ingest?host=up", "Bearer w-secret", 202},
		{"GET", "/healthz", "", 200},
	} {
		if got := do(tc.method, tc.path, tc.auth, string(crash)); got != tc.want {
			t.Errorf("%s %s (%q): %d, want %d", tc.method, tc.path, tc.auth, got, tc.want)
		}
	}
	// Plain HTTP to the HTTPS port is refused.
	if resp, err := http.Get("http://" + s.http + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200 on the TLS port")
		}
		resp.Body.Close()
	}
	waitFor(t, "the ingested report", 10*time.Second, func() bool {
		req, _ := http.NewRequest("GET", "https://"+s.http+"/api/reports", nil)
		req.Header.Set("Authorization", "Bearer r-secret")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return strings.Contains(b.String(), `"host": "up"`)
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kcrash-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}
