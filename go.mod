module github.com/kcrash/kcrash

go 1.26.8

require (
	github.com/anchore/go-lzo v0.1.1
	github.com/ianlancetaylor/demangle v0.0.0-20260724033716-83e58baca724
	github.com/klauspost/compress v1.20.3
)

require (
	golang.org/x/arch v0.32.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
