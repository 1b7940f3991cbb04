package dump

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdErr  error
)

// decompressPage fills page (one block) from a page's stored bytes, by the
// page_desc flags (makedumpfile/diskdump_mod.h: DUMP_DH_COMPRESSED_*). Output
// is bounded by len(page): a stream that would produce more is an error.
func decompressPage(page, data []byte, flags uint32) error {
	switch {
	case flags&dumpZlib != 0:
		// makedumpfile compresses with zlib's compress2(): a zlib stream.
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("zlib: %w", err)
		}
		if _, err := io.ReadFull(zr, page); err != nil {
			return fmt.Errorf("zlib: %w", err)
		}
		var one [1]byte
		if n, _ := zr.Read(one[:]); n != 0 {
			return fmt.Errorf("zlib: more than %d bytes", len(page))
		}
		return nil
	case flags&dumpLZO != 0:
		// lzo1x_1_compress output; the decoder stops at len(page).
		n, err := lzo.Decompress(data, page)
		if err != nil {
			return fmt.Errorf("lzo: %w", err)
		}
		if n != len(page) {
			return fmt.Errorf("lzo: %d bytes, want %d", n, len(page))
		}
		return nil
	case flags&dumpSnappy != 0:
		// snappy's raw block format, which s2 decodes.
		n, err := s2.DecodedLen(data)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		if n != len(page) {
			return fmt.Errorf("snappy: %d bytes, want %d", n, len(page))
		}
		out, err := s2.Decode(page, data)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		if &out[0] != &page[0] {
			copy(page, out)
		}
		return nil
	case flags&dumpZstd != 0:
		zstdOnce.Do(func() {
			zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBlockSize*2))
		})
		if zstdErr != nil {
			return zstdErr
		}
		out, err := zstdDec.DecodeAll(data, page[:0:len(page)])
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		if len(out) != len(page) {
			return fmt.Errorf("zstd: %d bytes, want %d", len(out), len(page))
		}
		if &out[0] != &page[0] {
			copy(page, out)
		}
		return nil
	default:
		if len(data) != len(page) {
			return fmt.Errorf("uncompressed page of %d bytes, want %d", len(data), len(page))
		}
		copy(page, data)
	}
	return nil
}
