module github.com/kcrash/kcrash

go 1.26.8

require github.com/ianlancetaylor/demangle v0.0.0-20260724033716-83e58baca724 // indirect
