module github.com/kcrash/kcrash

go 1.26.8
