//go:build turbojpeg

package agent

import (
	"atelier/internal/agent/jpegenc"
	"atelier/internal/agent/jpegenc/turbo"
)

// With -tags turbojpeg, BenchmarkEncode also runs libjpeg-turbo at the
// agent's default quality (needs libturbojpeg0-dev).
func init() {
	moreEncoders = append(moreEncoders, struct {
		name string
		enc  func(jpegenc.Pixels) ([]byte, error)
	}{"turbojpeg", func(p jpegenc.Pixels) ([]byte, error) {
		e, err := turbo.New()
		if err != nil {
			return nil, err
		}
		defer e.Close()
		return e.Encode(p, DefaultJPEGQuality)
	}})
}
