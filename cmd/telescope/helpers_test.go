package main

import (
	"compress/gzip"
	"io"
	"net/netip"

	"github.com/telescope-dev/telescope/configs"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addr4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

func gzipTo(w io.WriteCloser, data []byte) error {
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return w.Close()
}

func mustDefault() []byte { return configs.DefaultYAML }
