package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Flavors are the Debian kernel flavours the lab boots. The cloud flavour is the
// default; the generic amd64 flavour is the one with machine-check support
// (CONFIG_X86_MCE, absent from cloud kernels), used by the hardware scenario.
var Flavors = []string{"cloud-amd64", "amd64"}

// DefaultFlavor is the flavour of the default kernel.
const DefaultFlavor = "cloud-amd64"

// KernelInfo is one installable kernel ABI of the host's package lists.
type KernelInfo struct {
	ABI     string `json:"abi"`     // uname -r, e.g. 6.1.0-57-cloud-amd64
	Release string `json:"release"` // the upstream release the package carries, e.g. 6.1.192
	Version string `json:"version"` // the Debian package version, e.g. 6.1.192-3
	Flavor  string `json:"flavor"`
	Cached  bool   `json:"cached"`          // prepared under the lab cache (setup.json complete)
	Light   bool   `json:"light,omitempty"` // cached without the -dbg vmlinux and LKDTM
}

// Series is the kernel series of an ABI: "6.1" for 6.1.0-57-cloud-amd64.
func Series(abi string) string {
	parts := strings.SplitN(abi, ".", 3)
	if len(parts) < 2 {
		return abi
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	return parts[0] + "." + minor
}

// FlavorOf returns the flavour suffix of an ABI ("cloud-amd64" or "amd64").
func FlavorOf(abi string) string {
	if strings.HasSuffix(abi, "-cloud-amd64") {
		return "cloud-amd64"
	}
	if strings.HasSuffix(abi, "-amd64") {
		return "amd64"
	}
	return ""
}

// abiRE matches the ABI part of a signed kernel image package of a known flavour.
var abiRE = regexp.MustCompile(`^linux-image-(\d+\.\d+\.\d+(?:-\d+|\+[a-z0-9]+)-(?:cloud-amd64|amd64))$`)

// ListKernels lists the kernel ABIs of one flavour ("" for all) that the host's
// package lists offer, in version order (oldest first), each with whether the lab
// cache under dir holds it. It runs apt-cache twice.
func ListKernels(ctx context.Context, dir, flavor string) ([]KernelInfo, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "search", "--names-only", `^linux-image-[0-9].*-amd64$`).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache search linux-image: %w", err)
	}
	var pkgs []string
	abis := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), " ")
		m := abiRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		f := FlavorOf(m[1])
		if flavor != "" && f != flavor {
			continue
		}
		pkgs = append(pkgs, name)
		abis[name] = m[1]
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("apt-cache knows no linux-image-*-%s package (run apt-get update?)", flavor)
	}
	versions, err := candidateVersions(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	var list []KernelInfo
	for _, p := range pkgs {
		v := versions[p]
		if v == "" {
			continue
		}
		abi := abis[p]
		ki := KernelInfo{ABI: abi, Version: v, Release: upstreamOf(v), Flavor: FlavorOf(abi)}
		if k, err := loadKernel(filepath.Join(dir, abi, "setup.json")); err == nil && k.complete() {
			ki.Cached, ki.Light = true, k.Light
		}
		list = append(list, ki)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if c := CompareDebianVersions(list[i].Version, list[j].Version); c != 0 {
			return c < 0
		}
		return CompareABIs(list[i].ABI, list[j].ABI) < 0
	})
	return list, nil
}

// upstreamOf is the upstream part of a Debian version: 6.1.192 of 6.1.192-3,
// 6.12.117 of 6.12.117-1~deb12u1.
func upstreamOf(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}

// candidateVersions returns the highest version apt-cache madison lists for each package.
func candidateVersions(ctx context.Context, pkgs []string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", append([]string{"madison"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache madison: %w", err)
	}
	best := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) < 3 {
			continue
		}
		p, v := strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
		if best[p] == "" || CompareDebianVersions(v, best[p]) > 0 {
			best[p] = v
		}
	}
	return best, nil
}

// ResolveKernel turns what a user gave --kernel into an ABI: "" or "default" is
// the current cloud ABI (linux-image-cloud-amd64's dependency); a series ("6.12")
// or "FLAVOR" / "SERIES-FLAVOR" ("amd64", "6.1-amd64") the newest ABI of it in the
// package lists; anything else must be an ABI the package lists offer.
func ResolveKernel(ctx context.Context, spec string) (string, error) {
	if spec == "" || spec == "default" {
		return ResolveABI(ctx)
	}
	series, flavor := spec, DefaultFlavor
	for _, f := range Flavors {
		if spec == f {
			series, flavor = "", f
			break
		}
		if s, ok := strings.CutSuffix(spec, "-"+f); ok && !strings.Contains(s, "-") && !strings.Contains(s, "+") {
			series, flavor = s, f
			break
		}
	}
	if series == "" || regexp.MustCompile(`^\d+\.\d+$`).MatchString(series) {
		list, err := ListKernels(ctx, "", flavor)
		if err != nil {
			return "", err
		}
		for i := len(list) - 1; i >= 0; i-- {
			if series == "" || Series(list[i].ABI) == series {
				return list[i].ABI, nil
			}
		}
		return "", fmt.Errorf("no %s kernel of series %q in the package lists (kcrash lab kernels lists them)", flavor, series)
	}
	if FlavorOf(spec) == "" {
		return "", fmt.Errorf("--kernel %q: not an ABI such as 6.1.0-57-cloud-amd64, a series such as 6.12, or a flavour (%s)", spec, strings.Join(Flavors, ", "))
	}
	out, err := exec.CommandContext(ctx, "apt-cache", "madison", "linux-image-"+spec).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return "", fmt.Errorf("--kernel %s: the package lists have no linux-image-%s (kcrash lab kernels lists the ones they have)", spec, spec)
	}
	return spec, nil
}

// CompareABIs orders kernel ABIs by their numbers: 6.1.0-47 < 6.1.0-56 < 6.12.38+deb12.
// Runs of digits compare as numbers, everything else byte-wise.
func CompareABIs(a, b string) int {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if isDigit(da[0]) && isDigit(db[0]) {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(na) != len(nb) {
				return cmp(len(na), len(nb))
			}
			if na != nb {
				return strings.Compare(na, nb)
			}
		} else if da != db {
			return strings.Compare(da, db)
		}
		a, b = ra, rb
	}
	return cmp(len(a), len(b))
}

func splitRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cmp(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CompareDebianVersions compares two Debian package versions as dpkg does
// (deb-version(7): epoch, upstream version, revision; '~' sorts before anything).
func CompareDebianVersions(a, b string) int {
	ea, ua, ra := splitDebianVersion(a)
	eb, ub, rb := splitDebianVersion(b)
	if c := verrevcmp(ea, eb); c != 0 {
		return c
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

func splitDebianVersion(v string) (epoch, upstream, revision string) {
	epoch = "0"
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, v = e, rest
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// order is dpkg's lib/dpkg/version.c order(): '~' first, then the end of a part,
// then letters, then other characters.
func order(c byte) int {
	switch {
	case isDigit(c):
		return 0
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp().
func verrevcmp(a, b string) int {
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return cmp(ac, bc)
			}
			i++
			j++
		}
		for at(a, i) == '0' {
			i++
		}
		for at(b, j) == '0' {
			j++
		}
		for isDigit(at(a, i)) && isDigit(at(b, j)) {
			if firstDiff == 0 {
				firstDiff = cmp(int(a[i]), int(b[j]))
			}
			i++
			j++
		}
		if isDigit(at(a, i)) {
			return 1
		}
		if isDigit(at(b, j)) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// CachedKernels lists the ABIs prepared under dir, in ABI order.
func CachedKernels(dir string) []string {
	stamps, _ := filepath.Glob(filepath.Join(dir, "*", "setup.json"))
	var out []string
	for _, s := range stamps {
		d := filepath.Dir(s)
		if st, err := os.Lstat(d); err != nil || st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		out = append(out, filepath.Base(d))
	}
	sort.Slice(out, func(i, j int) bool { return CompareABIs(out[i], out[j]) < 0 })
	return out
}
