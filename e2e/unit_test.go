package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks dist/kcrash-serve.service with systemd-analyze verify
// (the kcrash binary under test standing in for /usr/local/bin/kcrash), and that
// it keeps its hardening options.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../dist/kcrash-serve.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, opt := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=kcrash",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes", "LimitNOFILE="} {
		if !strings.Contains(unit, "\n"+opt) {
			t.Errorf("unit lacks %s", opt)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is not installed (apt-get install systemd)")
		}
		t.Skip("systemd-analyze is not installed")
	}
	path := filepath.Join(t.TempDir(), "kcrash-serve.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/kcrash", kcrashBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
