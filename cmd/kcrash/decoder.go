package main

import "github.com/kcrash/kcrash/internal/web"

// reportDecoder returns the decoder the dashboard's report pages use.
//
// DECODER HOOK: this is the single place to plug kcrash decode in. Return a value
// implementing web.Decoder (Decode(ctx, *oops.Report, vmlinux string) (string, error));
// web.FindVmlinux picks the vmlinux from --symbols by the report's release. Until
// then report pages show the parsed frames, registers and code only.
func reportDecoder() web.Decoder { return nil }
