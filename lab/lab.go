// Package lab holds the crash lab's shell parts, embedded so that the kcrash binary
// carries them: the host's package installer and the guest's /init. The Go driver
// that uses them is internal/lab.
package lab

import _ "embed"

// InstallPackages is lab/install-packages.sh: it installs the host's Debian packages
// (qemu, busybox-static, makedumpfile, the build tools and the arguments it is given)
// and does nothing when they are already present.
//
//go:embed install-packages.sh
var InstallPackages []byte

// GuestInit is lab/init.sh, the guest's /init, steered by lab_* kernel parameters.
//
//go:embed init.sh
var GuestInit []byte
