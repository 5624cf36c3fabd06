//go:build turbojpeg

// Package turbo encodes with libjpeg-turbo's TurboJPEG API through cgo. It
// exists only to compare the hand-written encoder against
// (go test -tags turbojpeg); the agent does not use it.
package turbo

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>
*/
import "C"

import (
	"errors"
	"unsafe"

	"atelier/internal/agent/jpegenc"
)

// Encoder is one TurboJPEG compressor; not safe for concurrent use.
type Encoder struct{ h C.tjhandle }

// New returns an encoder; Close frees it.
func New() (*Encoder, error) {
	h := C.tjInitCompress()
	if h == nil {
		return nil, errors.New("tjInitCompress failed")
	}
	return &Encoder{h}, nil
}

// Close frees the compressor.
func (e *Encoder) Close() { C.tjDestroy(e.h) }

// Encode compresses p (BGRX or RGBX, top-down) at quality with 4:2:0
// chroma, as the hand-written encoder does.
func (e *Encoder) Encode(p jpegenc.Pixels, quality int) ([]byte, error) {
	format := C.TJPF_BGRX
	if p.R == 0 {
		format = C.TJPF_RGBX
	}
	var out *C.uchar
	var size C.ulong
	if C.tjCompress2(e.h, (*C.uchar)(unsafe.Pointer(&p.Pix[0])), C.int(p.Width), C.int(p.Stride), C.int(p.Height),
		C.int(format), &out, &size, C.TJSAMP_420, C.int(quality), C.TJFLAG_FASTDCT) != 0 {
		return nil, errors.New(C.GoString(C.tjGetErrorStr2(e.h)))
	}
	defer C.tjFree(out)
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}
