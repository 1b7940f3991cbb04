package oops

import "testing"

// TestMCETitles: a fatal machine check is titled by its exception (and the function
// of its RIP), even when the poller's notice of earlier corrected errors starts the
// report; a log of corrected errors alone keeps its title.
func TestMCETitles(t *testing.T) {
	corrected := "[    4.282959] mce: [Hardware Error]: Machine check events logged\n" +
		"[    4.283322] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 1: 9c0000000000009f\n" +
		"[    4.283416] mce: [Hardware Error]: TSC 0 ADDR 2a5f000 MISC 86 \n"
	fatal := "[    6.532154] mce: [Hardware Error]: CPU 0: Machine Check Exception: 6 Bank 0: be0000000000009f\n" +
		"[    6.534363] mce: [Hardware Error]: RIP 10:<ffffffff9789fd34> {copy_process+0xef4/0x1ae0}\n" +
		"[    6.535648] mce: [Hardware Error]: TSC 617b57416 ADDR 2a5f000 MISC 86 \n" +
		"[    6.536459] mce: [Hardware Error]: Machine check: Processor Context Corrupt\n" +
		"[    6.536590] Kernel panic - not syncing: Fatal local machine check\n"
	for _, tc := range []struct{ name, log, want string }{
		{"corrected then fatal", corrected + fatal, "MCE: Machine Check Exception in copy_process"},
		{"fatal alone", fatal, "MCE: Machine Check Exception in copy_process"},
		{"corrected alone", corrected, "MCE: Machine check events logged"},
	} {
		reps := Parse([]byte(tc.log))
		if len(reps) == 0 {
			t.Errorf("%s: no report", tc.name)
			continue
		}
		if reps[0].Title != tc.want || reps[0].Kind != KindMCE {
			t.Errorf("%s: %q (%s), want %q (mce)", tc.name, reps[0].Title, reps[0].Kind, tc.want)
		}
	}
}
