package main

import (
	"os"
	"testing"
)

// TestMain keeps the commands under test from reaching for symbols on the network:
// no Debian -dbg package downloads (hundreds of MB) and no debuginfod servers.
func TestMain(m *testing.M) {
	os.Setenv("KCRASH_DBG_PACKAGES", "0")
	os.Unsetenv("DEBUGINFOD_URLS")
	os.Exit(m.Run())
}
