package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// seedKD101 is the "Kernel Debugging 101" oops as the web page printed it.
const seedKD101 = "../../internal/oops/testdata/wild/seed-kd101.log"

// TestDecodeSeedFromStdin: the seed oops pasted into `kcrash decode -` is explained as a
// kernel engineer would, and the output says what had to be repaired.
func TestDecodeSeedFromStdin(t *testing.T) {
	in, err := os.ReadFile(seedKD101)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, string(in), "decode", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"BUG: unable to handle kernel NULL pointer dereference in __netif_receive_skb",
		"Repaired: ", "14 frame addresses missing",
		"cmp %rax,0x60(%r12)\t\t<-- trapping instruction",
		"R12 is NULL, loaded by `mov 0x20(%rbx),%r12` from offset 0x20 of the struct in RBX, the function's first argument",
		"the fault reads offset 0x60",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("decode output lacks %q:\n%s", want, out)
		}
	}
}

// TestParseRepairsJSON: --json carries the repairs next to every existing field.
func TestParseRepairsJSON(t *testing.T) {
	code, out, errOut := runCmd(t, "", "parse", "--json", seedKD101)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Reports []map[string]json.RawMessage `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Reports) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	var rep struct {
		MissingAddresses int `json:"missing_addresses"`
		Rejoined         int `json:"rejoined"`
	}
	if err := json.Unmarshal(doc.Reports[0]["repairs"], &rep); err != nil || rep.MissingAddresses != 14 || rep.Rejoined == 0 {
		t.Errorf("repairs %s (%v)", doc.Reports[0]["repairs"], err)
	}
	for _, field := range []string{"title", "kind", "frames", "code", "registers", "start", "end"} {
		if _, ok := doc.Reports[0][field]; !ok {
			t.Errorf("field %q missing", field)
		}
	}
	code, out, _ = runCmd(t, "", "parse", seedKD101)
	if code != 0 || !strings.Contains(out, "repaired:  ") {
		t.Errorf("text output: exit %d:\n%s", code, out)
	}
}
