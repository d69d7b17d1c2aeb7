package uitest

// Reading what a device is given at enrolment: the QR code of its
// configuration bundle, read back with a QR decoder of its own (gozxing,
// a port of ZXing, not the library that drew it), and a CA certificate
// for the bundle to carry.

import (
	"bytes"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vigilarc/vigil/provisioning"
)

// MustDecodeQR decodes the PNG b and returns the text of the QR code in
// it. The image is read as a pure symbol (the modules found from its
// edges, then sampled, error-corrected and decoded): ZXing's camera
// detector, which places its sampling grid by one alignment pattern,
// misreads a good share of perfect codes of the versions a bundle needs
// (29 and more), so it would test the detector, not the code.
func MustDecodeQR(t testing.TB, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the QR code is not a PNG: %v", err)
	}
	return mustReadQR(t, img)
}

func mustReadQR(t testing.TB, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("cannot read the QR code's image: %v", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("no QR code found in the %v image: %v", img.Bounds().Size(), err)
	}
	return res.GetText()
}

// MustCACertPEM returns the certificate (PEM) of a new throwaway
// installation CA, as provisioning makes one.
func MustCACertPEM(t testing.TB) []byte {
	t.Helper()
	ca, err := provisioning.NewCA("uitest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM()
}
