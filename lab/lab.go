// Package lab holds the crash lab's shell parts, embedded so that the kcrash binary
// carries them: the host's package installer and the guest's /init. The Go driver
// that uses them is internal/lab.
package lab

import "embed"

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

// Modules is lab/modules: the lab's own kernel modules (netrace.c, hwfault.c and
// their Kbuild), built per kernel ABI against its headers.
//
//go:embed modules
var Modules embed.FS
